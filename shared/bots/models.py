"""The shapes the bot pipeline receives and passes on."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field


class IntentionRecord(BaseModel):
    """A row of public.intentions as the webhook carries it."""

    model_config = ConfigDict(extra="allow")

    id: str = Field(min_length=1, max_length=255)
    type: str
    owner_id: str = Field(min_length=1)
    location_id: str = Field(min_length=1)
    state: str | None = None
    content: dict[str, Any] | None = None


class WebhookPayload(BaseModel):
    """Supabase's database webhook body."""

    type: Literal["INSERT", "UPDATE", "DELETE"]
    table: str
    schema_: str = Field(alias="schema")
    record: IntentionRecord | None = None
    old_record: dict[str, Any] | None = None


class BotJob(BaseModel):
    """One bot answering one utterance: the body of one queue message."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    bot_id: str = Field(min_length=1)
    space_id: str = Field(min_length=1)
    trigger_id: str = Field(min_length=1)
