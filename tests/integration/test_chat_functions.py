"""thread-ensure and chat-message through their Lambda entry points, with
both database adapters (every test runs twice: direct and PostgREST)."""

from __future__ import annotations

import uuid
from collections.abc import Callable
from typing import Any

import psycopg
import pytest

from tests.integration.conftest import ORIGIN, Invoke
from tests.support.database import User, create_user

pytestmark = pytest.mark.integration

Bearer = Callable[..., dict[str, str]]


@pytest.fixture
def amy(admin: psycopg.Connection[Any]) -> User:
    return create_user(admin, "amy")


@pytest.fixture
def bob(admin: psycopg.Connection[Any]) -> User:
    return create_user(admin, "bob")


def test_ensure_returns_the_same_thread_to_both_users(
    thread_ensure: Invoke, amy: User, bob: User, bearer: Bearer
) -> None:
    # When amy ensures a thread with bob, then bob with amy
    first = thread_ensure(
        "POST", "/chat/threads/ensure", body={"other_mongo_id": "bob"}, headers=bearer(amy)
    )
    second = thread_ensure(
        "POST", "/chat/threads/ensure", body={"other_mongo_id": "amy"}, headers=bearer(bob)
    )

    # Then both get the same thread with both participants
    assert first.status == 200, first.body
    assert first.body == second.body
    assert first.body["thread_id"] == "amy__bob"
    assert first.body["user_a_supabase_id"] == str(amy.id)
    assert first.body["user_b_supabase_id"] == str(bob.id)
    assert first.body["last_message_at"] is None


def test_ensure_accepts_the_seed_body_when_the_caller_is_one_of_the_two(
    thread_ensure: Invoke, amy: User, bob: User, bearer: Bearer, admin: psycopg.Connection[Any]
) -> None:
    create_user(admin, "eve")
    ok = thread_ensure(
        "POST",
        "/chat/threads/ensure",
        body={"user_a_mongo_id": "bob", "user_b_mongo_id": "amy"},
        headers=bearer(amy),
    )
    assert (ok.status, ok.body["thread_id"]) == (200, "amy__bob")

    other_people = thread_ensure(
        "POST",
        "/chat/threads/ensure",
        body={"user_a_mongo_id": "bob", "user_b_mongo_id": "eve"},
        headers=bearer(amy),
    )
    assert (other_people.status, other_people.error_code) == (403, "not_participant")


@pytest.mark.parametrize(
    ("other", "status", "code"),
    [("nobody", 404, "unknown_user"), ("amy", 400, "self_thread")],
)
def test_ensure_refusals(
    thread_ensure: Invoke, amy: User, bearer: Bearer, other: str, status: int, code: str
) -> None:
    result = thread_ensure(
        "POST", "/chat/threads/ensure", body={"other_mongo_id": other}, headers=bearer(amy)
    )
    assert (result.status, result.error_code) == (status, code)
    assert result.body["error"]["message"]


def test_a_user_without_a_chat_link_is_forbidden(
    thread_ensure: Invoke, bob: User, bearer: Bearer, admin: psycopg.Connection[Any]
) -> None:
    unlinked = create_user(admin, None)
    result = thread_ensure(
        "POST", "/chat/threads/ensure", body={"other_mongo_id": "bob"}, headers=bearer(unlinked)
    )
    assert (result.status, result.error_code) == (403, "no_chat_identity")


def _thread(thread_ensure: Invoke, caller: User, other: str, bearer: Bearer) -> str:
    result = thread_ensure(
        "POST", "/chat/threads/ensure", body={"other_mongo_id": other}, headers=bearer(caller)
    )
    assert result.status == 200, result.body
    return str(result.body["thread_id"])


def test_post_message_stores_it_as_the_caller(
    thread_ensure: Invoke,
    chat_message: Invoke,
    amy: User,
    bob: User,
    bearer: Bearer,
    admin: psycopg.Connection[Any],
) -> None:
    thread_id = _thread(thread_ensure, amy, "bob", bearer)

    result = chat_message(
        "POST",
        "/chat/messages",
        body={"thread_id": thread_id, "body": " hi bob "},
        headers=bearer(amy),
    )

    assert result.status == 201, result.body
    assert result.body["sender_supabase_id"] == str(amy.id)
    assert (result.body["sender_mongo_id"], result.body["recipient_mongo_id"]) == ("amy", "bob")
    assert result.body["body"] == "hi bob"
    assert "replayed" not in result.body
    stored = admin.execute("select id::text, body from public.chat_messages").fetchall()
    assert stored == [(result.body["id"], "hi bob")]


def test_a_retry_with_the_same_client_id_returns_200_and_the_same_row(
    thread_ensure: Invoke,
    chat_message: Invoke,
    amy: User,
    bob: User,
    bearer: Bearer,
    admin: psycopg.Connection[Any],
) -> None:
    thread_id = _thread(thread_ensure, amy, "bob", bearer)
    body = {"thread_id": thread_id, "body": "once", "client_id": str(uuid.uuid4())}

    first = chat_message("POST", "/chat/messages", body=body, headers=bearer(amy))
    retry = chat_message("POST", "/chat/messages", body=body, headers=bearer(amy))

    assert (first.status, retry.status) == (201, 200)
    assert retry.body == first.body
    assert admin.execute("select count(*) from public.chat_messages").fetchone() == (1,)


def test_a_stranger_cannot_post(
    thread_ensure: Invoke,
    chat_message: Invoke,
    amy: User,
    bob: User,
    bearer: Bearer,
    admin: psycopg.Connection[Any],
) -> None:
    thread_id = _thread(thread_ensure, amy, "bob", bearer)
    eve = create_user(admin, "eve")
    result = chat_message(
        "POST", "/chat/messages", body={"thread_id": thread_id, "body": "hi"}, headers=bearer(eve)
    )
    # Refused as for a thread that does not exist: she cannot learn that amy and bob talk
    assert (result.status, result.error_code) == (404, "unknown_thread")
    missing = chat_message(
        "POST", "/chat/messages", body={"thread_id": "amy__zzz", "body": "hi"}, headers=bearer(eve)
    )
    assert (missing.status, missing.body) == (result.status, result.body)
    assert admin.execute("select count(*) from public.chat_messages").fetchone() == (0,)


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"thread_id": "amy__bob", "body": ""}, "body"),
        ({"thread_id": "amy__bob", "body": "   "}, "body"),
        ({"thread_id": "amy__bob", "body": "x" * 4001}, "body"),
        ({"thread_id": "amy__bob", "body": 42}, "body"),
        ({"thread_id": "amy__bob", "body": "hi", "client_id": "not-a-uuid"}, "client_id"),
        ({"thread_id": "amy__bob", "body": "hi", "sender_mongo_id": "bob"}, "sender_mongo_id"),
        ({"body": "hi"}, "thread_id"),
    ],
)
def test_bad_message_bodies_name_the_field(
    chat_message: Invoke, amy: User, bearer: Bearer, body: dict[str, Any], field: str
) -> None:
    result = chat_message("POST", "/chat/messages", body=body, headers=bearer(amy))
    assert (result.status, result.error_code) == (422, "invalid_request")
    assert field in result.body["error"]["message"]


def test_malformed_json_too_large_and_wrong_type_are_refused(
    chat_message: Invoke, amy: User, bearer: Bearer
) -> None:
    broken = chat_message(
        "POST",
        "/chat/messages",
        raw_body="{not json",
        headers={"content-type": "application/json", **bearer(amy)},
    )
    assert (broken.status, broken.error_code) == (400, "invalid_json")

    huge = chat_message(
        "POST",
        "/chat/messages",
        body={"thread_id": "a__b", "body": "x" * 70_000},
        headers=bearer(amy),
    )
    assert (huge.status, huge.error_code) == (413, "payload_too_large")

    form = chat_message(
        "POST",
        "/chat/messages",
        raw_body="thread_id=a__b&body=hi",
        headers={"content-type": "application/x-www-form-urlencoded", **bearer(amy)},
    )
    assert (form.status, form.error_code) == (415, "unsupported_media_type")


def test_unknown_routes_and_methods_answer_json(
    chat_message: Invoke, amy: User, bearer: Bearer
) -> None:
    assert chat_message("GET", "/chat/messages", headers=bearer(amy)).status == 405
    missing = chat_message("POST", "/nowhere", body={}, headers=bearer(amy))
    assert (missing.status, missing.error_code) == (404, "not_found")


def test_cors_for_allowed_origins_only(
    chat_message: Invoke, thread_ensure: Invoke, amy: User, bob: User, bearer: Bearer
) -> None:
    allowed = thread_ensure(
        "POST",
        "/chat/threads/ensure",
        body={"other_mongo_id": "bob"},
        headers={"origin": ORIGIN, **bearer(amy)},
    )
    assert allowed.headers["access-control-allow-origin"] == ORIGIN
    assert allowed.headers["access-control-allow-credentials"] == "true"
    assert "Origin" in allowed.headers["vary"]

    other = thread_ensure(
        "POST",
        "/chat/threads/ensure",
        body={"other_mongo_id": "bob"},
        headers={"origin": "https://evil.example", **bearer(amy)},
    )
    assert "access-control-allow-origin" not in other.headers

    preflight = chat_message(
        "OPTIONS",
        "/chat/messages",
        headers={
            "origin": ORIGIN,
            "access-control-request-method": "POST",
            "access-control-request-headers": "authorization, content-type",
        },
    )
    # Starlette's CORSMiddleware answers 200 (browsers accept any 2xx).
    assert preflight.status == 200
    assert "POST" in preflight.headers["access-control-allow-methods"]
    assert "authorization" in preflight.headers["access-control-allow-headers"]
    refused = chat_message(
        "OPTIONS",
        "/chat/messages",
        headers={"origin": "https://evil.example", "access-control-request-method": "POST"},
    )
    # and 400 to a refused preflight: the browser acts on the missing allow-origin.
    assert refused.status == 400
    assert "access-control-allow-origin" not in refused.headers


def test_each_function_publishes_its_openapi(chat_message: Invoke, thread_ensure: Invoke) -> None:
    spec = chat_message("GET", "/openapi.json").body
    assert "/chat/messages" in spec["paths"]
    assert "/chat/threads/ensure" in thread_ensure("GET", "/openapi.json").body["paths"]


def test_one_warm_container_never_mixes_identities(
    thread_ensure: Invoke, chat_message: Invoke, admin: psycopg.Connection[Any], bearer: Bearer
) -> None:
    # Given three users and two threads that share amy
    amy, bob, cat = create_user(admin, "amy"), create_user(admin, "bob"), create_user(admin, "cat")
    ab = _thread(thread_ensure, amy, "bob", bearer)
    bc = _thread(thread_ensure, bob, "cat", bearer)

    # When the same warm handlers serve the users alternately
    senders = []
    for i in range(12):
        user, thread = [(amy, ab), (bob, bc), (cat, bc), (bob, ab)][i % 4]
        result = chat_message(
            "POST",
            "/chat/messages",
            body={"thread_id": thread, "body": f"m{i}"},
            headers=bearer(user),
        )
        assert result.status == 201, result.body
        senders.append((result.body["body"], result.body["sender_supabase_id"]))

    # Then each message is stored as the user who sent it
    expected = [(f"m{i}", str([amy, bob, cat, bob][i % 4].id)) for i in range(12)]
    assert senders == expected
    stored = admin.execute(
        "select body, sender_supabase_id::text from public.chat_messages order by body"
    ).fetchall()
    assert sorted(stored) == sorted(expected)


def test_no_token_reaches_the_logs(
    thread_ensure: Invoke,
    chat_message: Invoke,
    amy: User,
    bob: User,
    keys: Any,
    capsys: pytest.CaptureFixture[str],
    caplog: pytest.LogCaptureFixture,
) -> None:
    import logging

    caplog.set_level(logging.DEBUG)
    token = keys.token(amy.id, mongo_id="amy")
    headers = {"authorization": f"Bearer {token}"}
    thread = thread_ensure(
        "POST", "/chat/threads/ensure", body={"other_mongo_id": "bob"}, headers=headers
    )
    chat_message(
        "POST",
        "/chat/messages",
        body={"thread_id": thread.body["thread_id"], "body": "hi"},
        headers=headers,
    )
    chat_message(
        "POST",
        "/chat/messages",
        body={"thread_id": "x", "body": "hi"},
        headers={"authorization": "Bearer forged.token.value"},
    )
    captured = capsys.readouterr()
    logged = captured.out + captured.err + caplog.text
    assert "POST /chat/messages" in logged
    for secret in (token, token.split(".")[2], "forged.token.value", keys.service_key()):
        assert secret not in logged
