"""The shapes the bot pipeline receives and passes on."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from shared.validation import PgText, Storable

IntentionId = Annotated[str, Field(min_length=1, max_length=255), Storable]


class IntentionRecord(BaseModel):
    """The new row, as the webhook names it. Our trigger sends only its
    identity, `{"id": ...}` (bot-trigger reads the row back from the table);
    a full row, as Supabase's generic webhooks send, is accepted and its other
    fields are ignored."""

    model_config = ConfigDict(extra="ignore")

    id: IntentionId


class WebhookPayload(BaseModel):
    """Supabase's database webhook body: {type, table, schema, record, old_record}."""

    type: Literal["INSERT", "UPDATE", "DELETE"]
    table: PgText
    schema_: PgText = Field(alias="schema")
    record: IntentionRecord | None = None
    old_record: dict[str, Any] | None = None


class BotJob(BaseModel):
    """One bot answering one utterance: the body of one queue message."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    bot_id: Annotated[str, Field(min_length=1), Storable]
    space_id: Annotated[str, Field(min_length=1), Storable]
    trigger_id: IntentionId
