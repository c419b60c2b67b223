"""Input no client should send, from anyone: text PostgreSQL cannot store,
JSON nested past Python's recursion limit in a token header or a session
cookie. Each is a 4xx with a JSON error, through both adapters, never a 500."""

from __future__ import annotations

import base64
import importlib
import json
import logging
from collections.abc import Callable
from typing import Any

import psycopg
import pytest

from shared import container
from shared.auth.principal import SERVICE
from shared.db.direct import DirectDatabase
from shared.errors import BadRequest
from tests.integration.conftest import Invoke
from tests.support.database import User, create_user
from tests.support.events import LambdaContext, http_event, parse
from tests.support.pipeline import webhook_event
from tests.support.tokens import SigningKeys

pytestmark = pytest.mark.integration

SECRET = "test-webhook-secret-0123456789"
DEPTH = 5000  # well past the interpreter's recursion limit (1000)


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _nested(depth: int = DEPTH) -> list[bytes]:
    return [b"[" * depth + b"]" * depth, b'{"a":' * depth + b"1" + b"}" * depth]


@pytest.fixture
def amy(admin: psycopg.Connection[Any]) -> User:
    create_user(admin, "bob")
    return create_user(admin, "amy")


@pytest.fixture
def no_tracebacks(caplog: pytest.LogCaptureFixture) -> Callable[[], None]:
    caplog.set_level(logging.INFO)

    def check() -> None:
        failures = [r for r in caplog.records if r.exc_info or r.levelno >= logging.ERROR]
        assert failures == [], [r.getMessage() for r in failures]

    return check


@pytest.mark.parametrize(
    ("path", "body"),
    [
        ("/chat/messages", {"thread_id": "amy__bob", "body": "hi\u0000there"}),
        ("/chat/messages", {"thread_id": "amy__bob\u0000", "body": "hi"}),
        ("/chat/messages", {"thread_id": "amy__bob", "body": "lone \ud800 surrogate"}),
        ("/chat/threads/ensure", {"other_mongo_id": "bob\u0000"}),
        ("/chat/threads/ensure", {"user_a_mongo_id": "amy", "user_b_mongo_id": "\u0000"}),
    ],
)
def test_text_postgres_cannot_store_is_a_4xx_through_both_adapters(
    chat_message: Invoke,
    thread_ensure: Invoke,
    amy: User,
    bearer: Callable[..., dict[str, str]],
    admin: psycopg.Connection[Any],
    no_tracebacks: Callable[[], None],
    path: str,
    body: dict[str, Any],
) -> None:
    invoke = chat_message if path == "/chat/messages" else thread_ensure
    # JSON's own escape, as a browser's JSON.stringify sends it
    raw = json.dumps(body)
    result = invoke(
        "POST", path, raw_body=raw, headers={**bearer(amy), "content-type": "application/json"}
    )

    assert 400 <= result.status < 500, (result.status, result.body)
    assert isinstance(result.error_code, str)
    assert admin.execute("select count(*) from public.chat_messages").fetchone() == (0,)
    no_tracebacks()


@pytest.mark.parametrize("adapter", ["direct"], indirect=True)
def test_the_direct_adapter_maps_unstorable_text_to_400(
    environment: None, authenticator_dsn: str
) -> None:
    # Behind the models, defense in depth: psycopg refuses NUL before sending
    db = DirectDatabase(authenticator_dsn)
    try:
        for value in ("a\u0000b", "lone \udc00"):
            with pytest.raises(BadRequest) as refused:
                db.call("bots_for_utterance", {"_intention_id": value}, SERVICE)
            assert refused.value.code == "invalid_text"
        # The connection it used is still good
        assert db.call("bots_for_utterance", {"_intention_id": "x"}, SERVICE) == {"found": False}
    finally:
        db.close()


@pytest.mark.parametrize("adapter", ["direct"], indirect=True)
def test_a_webhook_record_with_unstorable_text_is_400(
    environment: None,
    aws_credentials: None,
    monkeypatch: pytest.MonkeyPatch,
    no_tracebacks: Callable[[], None],
) -> None:
    monkeypatch.setenv("WEBHOOK_SECRET", SECRET)
    monkeypatch.setenv("BOT_QUEUE_URL", "https://sqs.eu-west-1.amazonaws.com/1/never-used")
    container.reset()
    trigger = importlib.import_module("functions.bot_trigger.handler").handler
    body = {"type": "INSERT", "table": "intentions", "schema": "public", "old_record": None}
    for record in ({"id": "/msg-\u0000"}, {"id": "/msg-\ud800"}):
        event = webhook_event(json.dumps({**body, "record": record}), {"x-webhook-secret": SECRET})
        result = parse(trigger(event, LambdaContext()))
        assert (result.status, result.error_code) == (400, "invalid_payload")
    no_tracebacks()


def test_a_deeply_nested_token_header_is_401(
    thread_ensure: Invoke, keys: SigningKeys, amy: User, no_tracebacks: Callable[[], None]
) -> None:
    valid = keys.token(amy.id, mongo_id="amy")
    _, payload, signature = valid.split(".")
    # Shallow enough to pass a size bound, deep enough for recursion: 1200 levels
    forged = [f"{_b64(h)}.{payload}.{signature}" for h in [*_nested(1200), *_nested()]]
    forged.append(f"{_b64(b'{' + b' ' * 5000 + b'}')}.{payload}.{signature}")  # oversized
    forged.append(f"{valid.split('.')[0]}.{payload}{'A' * 20000}.{signature}")  # oversized token
    for token in forged:
        result = thread_ensure(
            "POST",
            "/chat/threads/ensure",
            body={"other_mongo_id": "bob"},
            headers={"authorization": f"Bearer {token}"},
        )
        assert (result.status, result.error_code) == (401, "invalid_token")
    no_tracebacks()


@pytest.mark.parametrize("adapter", ["direct"], indirect=True)
def test_a_deeply_nested_session_cookie_is_no_session(
    environment: None, no_tracebacks: Callable[[], None]
) -> None:
    module = importlib.import_module("functions.token.handler")
    module.token_settings.cache_clear()
    name = f"sb-{container.settings().project_ref}-auth-token"
    values = []
    for nested in _nested(1200):
        values += [nested.decode(), "base64-" + _b64(nested)]
    values.append("base64-" + _b64(b'{"access_token": "' + b"a" * 40_000 + b'"}'))  # oversized
    for value in values:
        cookies = [f"{name}={value}"] if len(value) < 3000 else [
            f"{name}.{i}={value[start : start + 3000]}"
            for i, start in enumerate(range(0, len(value), 3000))
        ]  # fmt: skip
        event = http_event("GET", "/auth/token", headers={"cookie": "; ".join(cookies)})
        result = parse(module.handler(event, LambdaContext()))
        assert (result.status, result.error_code) == (401, "no_session")
    no_tracebacks()


@pytest.mark.parametrize("other", ["_b", "b_", "a__b"])
def test_an_ambiguous_mongo_id_is_refused_at_the_model(
    thread_ensure: Invoke, amy: User, bearer: Callable[..., dict[str, str]], other: str
) -> None:
    result = thread_ensure(
        "POST", "/chat/threads/ensure", body={"other_mongo_id": other}, headers=bearer(amy)
    )
    assert (result.status, result.error_code) == (422, "invalid_request")
    assert "other_mongo_id" in result.body["error"]["message"]
