"""Over a rate limit, chat-message and thread-ensure answer 429 with
Retry-After and a JSON error body, through both database adapters (every
test runs twice: direct, and PostgREST's stand-in answering PT429 as 429
with the hint); the other user is not affected."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import psycopg
import pytest

from tests.integration.conftest import Invoke
from tests.support.database import User, create_user
from tests.support.events import HttpResult
from tests.support.fake_supabase import FakeSupabase
from tests.support.limits import set_rate_limit

pytestmark = pytest.mark.integration

Bearer = Callable[..., dict[str, str]]


def _assert_rate_limited(result: HttpResult, *, at_most: int) -> None:
    assert (result.status, result.error_code) == (429, "rate_limited"), result.body
    seconds = int(result.headers["retry-after"])
    assert 1 <= seconds <= at_most
    assert result.body["error"]["retry_after"] == seconds
    assert f"try again in {seconds} s" in result.body["error"]["message"]
    assert result.headers["content-type"] == "application/json"


def test_messages_over_the_limit_are_429_with_retry_after(
    thread_ensure: Invoke,
    chat_message: Invoke,
    admin: psycopg.Connection[Any],
    bearer: Bearer,
    supabase: FakeSupabase,
    adapter: str,
) -> None:
    amy, bob = create_user(admin, "amy"), create_user(admin, "bob")
    set_rate_limit(admin, "chat_message", burst=2, rate=1, per="1 minute")
    thread = thread_ensure(
        "POST", "/chat/threads/ensure", body={"other_mongo_id": "bob"}, headers=bearer(amy)
    ).body["thread_id"]

    def post(user: User, text: str) -> HttpResult:
        body = {"thread_id": thread, "body": text}
        return chat_message("POST", "/chat/messages", body=body, headers=bearer(user))

    # When amy posts three times in a row
    statuses = [post(amy, f"m{i}").status for i in range(2)]
    refused = post(amy, "one too many")

    # Then the third is refused, saying when to retry, and not stored
    assert statuses == [201, 201]
    _assert_rate_limited(refused, at_most=60)
    assert admin.execute("select count(*) from public.chat_messages").fetchone() == (2,)
    # And bob, in the same thread, is not affected
    assert post(bob, "hi amy").status == 201
    if adapter == "postgrest":
        assert [c["function"] for c in supabase.rpc_calls].count("insert_chat_message") == 4


def test_new_threads_over_the_limit_are_429(
    thread_ensure: Invoke, admin: psycopg.Connection[Any], bearer: Bearer
) -> None:
    amy = create_user(admin, "amy")
    for other in ("bob", "cat"):
        create_user(admin, other)
    set_rate_limit(admin, "chat_thread", burst=1, rate=1, per="1 hour")

    def ensure(other: str) -> HttpResult:
        body = {"other_mongo_id": other}
        return thread_ensure("POST", "/chat/threads/ensure", body=body, headers=bearer(amy))

    assert ensure("bob").status == 200
    assert ensure("bob").status == 200  # the same thread again: nothing new is written
    _assert_rate_limited(ensure("cat"), at_most=3600)
