"""The 1:1 thread of two users: what thread-ensure receives and answers, and
the one RPC that creates or returns it as the caller."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Annotated

from pydantic import BaseModel, ConfigDict, StringConstraints, model_validator

from shared.auth.principal import Principal
from shared.db.port import Database
from shared.errors import Forbidden
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


class EnsureThreadRequest(BaseModel):
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


class Thread(BaseModel):
    thread_id: str
    user_a_mongo_id: str
    user_b_mongo_id: str
    user_a_supabase_id: uuid.UUID
    user_b_supabase_id: uuid.UUID
    created_at: datetime
    last_message_at: datetime | None


def other_participant(request: EnsureThreadRequest, caller: Principal) -> str:
    """The other user's mongo id; with the seed's pair, the one that is not the caller."""
    if request.other_mongo_id is not None:
        return request.other_mongo_id
    mine = caller.mongo_user_id
    if mine is None:
        raise Forbidden("your account is not linked to a chat user", code="no_chat_identity")
    pair = [request.user_a_mongo_id, request.user_b_mongo_id]
    if mine not in pair:
        raise Forbidden("one of the two users must be you", code="not_participant")
    pair.remove(mine)
    other = pair[0]
    assert other is not None  # the request model requires both
    return other


def ensure_thread(db: Database, caller: Principal, request: EnsureThreadRequest) -> Thread:
    row = db.call(
        "ensure_chat_thread", {"_other_mongo_id": other_participant(request, caller)}, caller
    )
    return Thread.model_validate(row)
