"""A message in a 1:1 thread: what chat-message receives and answers, and
the one RPC that stores it as the caller."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Annotated, NamedTuple

from pydantic import BaseModel, ConfigDict, StringConstraints

from shared.auth.principal import Principal
from shared.db.port import Database
from shared.validation import Storable


class PostMessageRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    thread_id: Annotated[str, StringConstraints(min_length=3, max_length=300), Storable]
    # Trimmed and measured again by the database; checked here to fail fast.
    body: Annotated[
        str, StringConstraints(strip_whitespace=True, min_length=1, max_length=4000), Storable
    ]
    client_id: uuid.UUID | None = None


class Message(BaseModel):
    id: uuid.UUID
    thread_id: str
    sender_supabase_id: uuid.UUID
    sender_mongo_id: str
    recipient_mongo_id: str
    body: str
    created_at: datetime
    client_id: uuid.UUID | None = None


class StoredMessage(NamedTuple):
    message: Message
    replayed: bool  # client_id had been used: `message` is the first row


def post_message(db: Database, caller: Principal, request: PostMessageRequest) -> StoredMessage:
    args: dict[str, str] = {"_thread_id": request.thread_id, "_body": request.body}
    if request.client_id is not None:
        args["_client_id"] = str(request.client_id)
    row = dict(db.call("insert_chat_message", args, caller))
    replayed = bool(row.pop("replayed", False))
    return StoredMessage(message=Message.model_validate(row), replayed=replayed)
