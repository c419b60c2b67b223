"""The 1:1 chat's operations: each is one RPC as the caller."""

from __future__ import annotations

from shared.auth.principal import Principal
from shared.chat.models import (
    EnsureThreadRequest,
    Message,
    PostMessageRequest,
    StoredMessage,
    Thread,
)
from shared.db.port import Database
from shared.errors import Forbidden


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


def post_message(db: Database, caller: Principal, request: PostMessageRequest) -> StoredMessage:
    args: dict[str, str] = {"_thread_id": request.thread_id, "_body": request.body}
    if request.client_id is not None:
        args["_client_id"] = str(request.client_id)
    row = dict(db.call("insert_chat_message", args, caller))
    replayed = bool(row.pop("replayed", False))
    return StoredMessage(message=Message.model_validate(row), replayed=replayed)
