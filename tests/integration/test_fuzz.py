"""Whatever anyone sends to any function (bodies, bearer tokens, session
cookies, the webhook's record), the answer is 2xx or 4xx with a JSON error
body, and the log holds no error and no traceback.

The inputs mix ordinary JSON with what hostile callers send: nesting past
the interpreter's recursion limit, control characters and NUL (valid JSON,
not storable in PostgreSQL text), lone surrogates, oversized segments.
"""

from __future__ import annotations

import base64
import importlib
import json
import logging
from collections.abc import Callable
from typing import Any

import psycopg
import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from shared import container
from tests.integration.conftest import Invoke
from tests.support.database import User, create_user
from tests.support.events import HttpResult, LambdaContext, http_event, parse
from tests.support.pipeline import webhook_event
from tests.support.tokens import SigningKeys

pytestmark = pytest.mark.integration

SECRET = "test-webhook-secret-0123456789"

# Text with the characters that broke things: NUL and other controls, and
# (only reachable through JSON escapes) lone surrogates.
hostile_chars = st.characters(min_codepoint=0, max_codepoint=0x1F) | st.characters()
hostile_text = st.one_of(
    st.text(hostile_chars, max_size=40),
    st.tuples(st.text(max_size=20), st.sampled_from(["\x00", "\ud800", "\x1b"])).map("x".join),
    st.integers(1_000, 70_000).map(lambda n: "A" * n),  # oversized
)


def _nested(depth: int, kind: str) -> str:
    if kind == "list":
        return "[" * depth + "]" * depth
    return '{"a":' * depth + "1" + "}" * depth


# Raw JSON text nested up to well past the recursion limit (1000).
depths = st.sampled_from([2, 999, 1_001, 5_000]) | st.integers(1, 5_000)
deep_json = st.builds(_nested, depths, st.sampled_from(["list", "object"]))

json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | hostile_text,
    lambda inner: (
        st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=20), inner, max_size=4)
    ),
    max_leaves=12,
)
# A JSON document as text: ordinary, or with a deeply nested value spliced in.
json_documents = st.one_of(
    json_values.map(json.dumps),
    deep_json,
    st.tuples(st.sampled_from(["body", "thread_id", "other_mongo_id", "record"]), deep_json).map(
        lambda pair: f'{{"{pair[0]}": {pair[1]}}}'
    ),
)
field_names = st.sampled_from(
    [
        "thread_id",
        "body",
        "client_id",
        "other_mongo_id",
        "user_a_mongo_id",
        "user_b_mongo_id",
        "extra",
    ]
)
bodies = st.one_of(
    # well-formed requests with one hostile string, so they reach the database
    st.fixed_dictionaries(
        {"thread_id": st.just("amy__bob") | hostile_text, "body": hostile_text}
    ).map(json.dumps),
    st.fixed_dictionaries({"other_mongo_id": hostile_text}).map(json.dumps),
    st.dictionaries(field_names, json_values, max_size=4).map(json.dumps),
    json_documents,
    st.text(max_size=200),
    st.binary(max_size=100).map(lambda b: b.decode("latin-1")),
)
content_types = st.sampled_from(
    ["application/json", "application/json; charset=utf-8", "text/plain", ""]
)


def _b64(text: str) -> str:
    return base64.urlsafe_b64encode(text.encode("utf-8", "surrogatepass")).rstrip(b"=").decode()


segments = st.one_of(json_documents.map(_b64), hostile_text, st.just(""))
FUZZ = settings(
    max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)


@pytest.fixture
def amy(admin: psycopg.Connection[Any]) -> User:
    create_user(admin, "bob")
    return create_user(admin, "amy")


@pytest.fixture
def clean_log(caplog: pytest.LogCaptureFixture) -> Callable[[HttpResult], None]:
    """Checks one answer, and that nothing was logged as an error since the last."""
    caplog.set_level(logging.INFO)

    def check(result: HttpResult) -> None:
        assert 200 <= result.status < 500, (result.status, result.body)
        if result.status >= 400:
            assert isinstance(result.body, dict)
            assert isinstance(result.body["error"]["code"], str)
        failures = [r for r in caplog.records if r.exc_info or r.levelno >= logging.ERROR]
        assert failures == [], [r.getMessage() for r in failures]
        caplog.clear()

    return check


def _header_safe(value: str) -> str:
    """What can travel in an HTTP header at all: no line breaks, and bytes
    that decode (API Gateway hands over text, never a lone surrogate)."""
    text = value.replace("\r", "").replace("\n", "")
    return text.encode("utf-8", "ignore").decode("utf-8")


@pytest.mark.parametrize("path", ["/chat/messages", "/chat/threads/ensure"])
@pytest.mark.parametrize("adapter", ["direct"], indirect=True)
def test_any_body_gets_a_client_answer(
    chat_message: Invoke,
    thread_ensure: Invoke,
    amy: User,
    bearer: Callable[..., dict[str, str]],
    clean_log: Callable[[HttpResult], None],
    path: str,
) -> None:
    invoke = chat_message if path == "/chat/messages" else thread_ensure
    auth = bearer(amy)

    @FUZZ
    @given(body=bodies, content_type=content_types)
    @example(body='{"thread_id": "amy__bob", "body": "a\\u0000b"}', content_type="application/json")
    @example(body='{"other_mongo_id": "b\\u0000"}', content_type="application/json")
    def run(body: str, content_type: str) -> None:
        headers = {**auth, "content-type": content_type} if content_type else dict(auth)
        clean_log(invoke("POST", path, raw_body=body, headers=headers))

    run()


@pytest.mark.parametrize("adapter", ["direct"], indirect=True)
def test_any_authorization_header_gets_a_401(
    chat_message: Invoke, keys: SigningKeys, clean_log: Callable[[HttpResult], None]
) -> None:
    real_header, real_payload, real_signature = keys.token("x").split(".")

    @FUZZ
    @given(
        value=st.one_of(
            st.text(max_size=300),
            st.tuples(segments, segments, segments).map(lambda s: "Bearer " + ".".join(s)),
            # a real payload and signature under a hostile header, or the reverse
            deep_json.map(lambda d: f"Bearer {_b64(d)}.{real_payload}.{real_signature}"),
            segments.map(lambda s: f"Bearer {s}.{real_payload}.{real_signature}"),
            segments.map(lambda s: f"Bearer {real_header}.{s}.{real_signature}"),
        )
    )
    def run(value: str) -> None:
        result = chat_message(
            "POST",
            "/chat/messages",
            body={"thread_id": "a__b", "body": "x"},
            headers={"authorization": _header_safe(value)},
        )
        assert result.status == 401
        clean_log(result)

    run()


@pytest.mark.parametrize("adapter", ["direct"], indirect=True)
def test_any_session_cookie_gets_a_client_answer(
    environment: None, clean_log: Callable[[HttpResult], None]
) -> None:
    module = importlib.import_module("functions.token.handler")
    module.token_settings.cache_clear()
    name = f"sb-{container.settings().project_ref}-auth-token"
    values = st.one_of(
        deep_json,
        deep_json.map(lambda d: "base64-" + _b64(d)),
        json_documents,
        json_documents.map(lambda d: "base64-" + _b64(d)),
        hostile_text,
    )

    @FUZZ
    @given(value=values, chunked=st.booleans())
    def run(value: str, chunked: bool) -> None:
        value = _header_safe(value)
        if chunked:
            parts = [value[i : i + 3000] for i in range(0, len(value), 3000)] or [""]
            cookie = "; ".join(f"{name}.{i}={part}" for i, part in enumerate(parts))
        else:
            cookie = f"{name}={value}"
        event = http_event("GET", "/auth/token", headers={"cookie": cookie})
        result = parse(module.handler(event, LambdaContext()))
        assert result.status == 401
        clean_log(result)

    run()


@pytest.mark.parametrize("adapter", ["direct"], indirect=True)
def test_any_webhook_with_the_secret_gets_a_client_answer(
    environment: None,
    aws_credentials: None,
    monkeypatch: pytest.MonkeyPatch,
    clean_log: Callable[[HttpResult], None],
) -> None:
    monkeypatch.setenv("WEBHOOK_SECRET", SECRET)
    monkeypatch.setenv("BOT_QUEUE_URL", "https://sqs.eu-west-1.amazonaws.com/1/never-used")
    container.reset()
    trigger = importlib.import_module("functions.bot_trigger.handler").handler
    envelope = {"type": "INSERT", "table": "intentions", "schema": "public", "old_record": None}
    records = st.one_of(
        json_values.map(json.dumps),
        deep_json,
        st.dictionaries(st.sampled_from(["id", "type", "owner_id"]), json_values).map(json.dumps),
        hostile_text.map(lambda t: json.dumps({"id": t})),
    )

    @FUZZ
    @given(record=records, whole=st.one_of(st.none(), bodies))
    @example(record='{"id": "/m\\u0000", "type": "utterance", "owner_id": "@a"}', whole=None)
    def run(record: str, whole: str | None) -> None:
        # The record spliced in as raw text, so deep nesting survives
        body = whole if whole is not None else json.dumps(envelope)[:-1] + f', "record": {record}}}'
        event = webhook_event(body, {"x-webhook-secret": SECRET})
        # None of these names an existing intention: nothing is queued
        clean_log(parse(trigger(event, LambdaContext())))

    run()
