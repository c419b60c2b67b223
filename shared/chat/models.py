"""Request and response shapes of the 1:1 chat functions."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Annotated

from pydantic import BaseModel, ConfigDict, Field, StringConstraints, model_validator

from shared.validation import Storable

# As the database checks it (private.is_valid_mongo_id): no whitespace, no
# '__' and no '_' at either end, so that in a thread id `a__b` the first '__'
# is the separator and ("A_", "b") and ("A", "_b") cannot meet as "A___b".
MONGO_ID_PATTERN = r"^[^\s_]+(?:_[^\s_]+)*$"
MongoId = Annotated[
    str,
    StringConstraints(
        strip_whitespace=True, min_length=1, max_length=128, pattern=MONGO_ID_PATTERN
    ),
    Storable,
]


class _Model(BaseModel):
    # Each function uses two or three of these: a schema is built when
    # FastAPI first binds the model (at cold start), not for every model here.
    model_config = ConfigDict(defer_build=True)


class EnsureThreadRequest(_Model):
    """`{"other_mongo_id"}`, or the seed's `{"user_a_mongo_id", "user_b_mongo_id"}`
    where one of the two is the caller."""

    model_config = ConfigDict(extra="forbid")

    other_mongo_id: MongoId | None = None
    user_a_mongo_id: MongoId | None = None
    user_b_mongo_id: MongoId | None = None

    @model_validator(mode="after")
    def _one_form(self) -> EnsureThreadRequest:
        pair = (self.user_a_mongo_id, self.user_b_mongo_id)
        if self.other_mongo_id is not None and any(pair):
            raise ValueError("send other_mongo_id, or user_a_mongo_id and user_b_mongo_id")
        if self.other_mongo_id is None and not all(pair):
            raise ValueError("other_mongo_id is required")
        return self


class Thread(_Model):
    thread_id: str
    user_a_mongo_id: str
    user_b_mongo_id: str
    user_a_supabase_id: uuid.UUID
    user_b_supabase_id: uuid.UUID
    created_at: datetime
    last_message_at: datetime | None


class PostMessageRequest(_Model):
    model_config = ConfigDict(extra="forbid")

    thread_id: Annotated[str, StringConstraints(min_length=3, max_length=300), Storable]
    # Trimmed and measured again by the database; checked here to fail fast.
    body: Annotated[
        str, StringConstraints(strip_whitespace=True, min_length=1, max_length=4000), Storable
    ]
    client_id: uuid.UUID | None = None


class Message(_Model):
    id: uuid.UUID
    thread_id: str
    sender_supabase_id: uuid.UUID
    sender_mongo_id: str
    recipient_mongo_id: str
    body: str
    created_at: datetime
    client_id: uuid.UUID | None = None


class StoredMessage(_Model):
    message: Message
    replayed: bool = Field(description="true when client_id had been used: the first row")
