"""What a function writes while it serves: every line one JSON object (its
own, FastAPI's, Mangum's, httpx's), naming the function and the request's
id, for a 200, a 4xx, a 503 because the database is down and an unhandled
error; a 5xx names its cause; no token or cookie; requests served at once in
threads each keep their own id. thread-ensure, through its Lambda entry
point, against Supabase's edge on loopback (JWKS and PostgREST), whose RPC
answer each test chooses."""

from __future__ import annotations

import json
import threading
import uuid
from collections.abc import Callable, Iterator
from typing import Any, ClassVar

import pytest

from infra.local.cluster import free_port
from shared import container
from tests.support.events import LambdaContext, http_event, parse
from tests.support.loopback import JsonHandler, serve
from tests.support.rpc_answers import THREAD
from tests.support.tokens import SigningKeys

pytestmark = pytest.mark.unit

KEYS = SigningKeys()
RpcAnswer = Callable[[dict[str, Any]], tuple[int, Any]]


class _Edge(JsonHandler):
    answer: ClassVar[RpcAnswer] = staticmethod(lambda _: (200, THREAD))

    def do_GET(self) -> None:
        self.reply_json(200, KEYS.jwks())

    def do_POST(self) -> None:
        args = json.loads(self.rfile.read(int(self.headers.get("Content-Length") or 0)))
        self.reply_json(*type(self).answer(args))


@pytest.fixture
def edge(monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    with serve(_Edge) as url:
        KEYS.serve_at(url)
        for name, value in {
            "SUPABASE_URL": url,
            "SUPABASE_ANON_KEY": KEYS.anon_key(),
            "ALLOWED_ORIGINS": "https://app.example.test",
            "SECRETS_SOURCE": "env",
            "LOG_LEVEL": "INFO",
        }.items():
            monkeypatch.setenv(name, value)
        monkeypatch.delenv("DATABASE_URL", raising=False)
        container.reset()
        yield url
        container.reset()
        _Edge.answer = staticmethod(lambda _: (200, THREAD))


def _handler() -> Any:
    from functions.thread_ensure.handler import handler

    return handler


def _ensure(token: str | None, body: Any, request_id: str) -> tuple[Any, dict[str, Any]]:
    event = http_event(
        "POST",
        "/chat/threads/ensure",
        body=body,
        headers={"authorization": f"Bearer {token}"} if token else {},
        cookies=["sb-127-auth-token=base64-session-cookie-value"],
    )
    event["requestContext"]["requestId"] = request_id
    raw = _handler()(event, LambdaContext())
    return parse(raw), raw


def _written(capsys: pytest.CaptureFixture[str]) -> list[dict[str, Any]]:
    """Every line written, each of which must be one JSON object; nothing on stderr."""
    captured = capsys.readouterr()
    assert captured.err == ""
    lines = [json.loads(line) for line in captured.out.splitlines()]
    assert all(isinstance(line, dict) for line in lines)
    return lines


def _of(lines: list[dict[str, Any]], request_id: str) -> list[dict[str, Any]]:
    mine = [line for line in lines if line.get("correlation_id") == request_id]
    for line in mine:
        assert {"timestamp", "level", "message", "logger"} <= line.keys()
        assert line["function"] == "thread-ensure"
    return mine


def _token() -> str:
    return KEYS.token(uuid.uuid4(), mongo_id="amy")


@pytest.mark.usefixtures("edge")
def test_a_200_writes_its_access_line_and_its_outbound_calls(
    capsys: pytest.CaptureFixture[str],
) -> None:
    _handler()
    capsys.readouterr()
    token = _token()
    result, _ = _ensure(token, {"other_mongo_id": "bob"}, "req-ok")

    assert result.status == 200
    assert result.headers["x-request-id"] == "req-ok"
    lines = _of(_written(capsys), "req-ok")
    assert [(x["level"], x["status"]) for x in lines if "status" in x] == [("INFO", 200)]
    assert any(x["logger"] == "httpx" and "rpc/ensure_chat_thread" in x["message"] for x in lines)
    assert token not in json.dumps(lines)


@pytest.mark.usefixtures("edge")
@pytest.mark.parametrize(
    ("token", "body", "status"),
    [(None, {"other_mongo_id": "bob"}, 401), ("valid", {"other": 1}, 422)],
    ids=["no token", "bad body"],
)
def test_a_4xx_writes_one_access_line_and_no_error(
    capsys: pytest.CaptureFixture[str], token: str | None, body: Any, status: int
) -> None:
    _handler()
    capsys.readouterr()
    result, _ = _ensure(_token() if token else None, body, "req-4xx")

    assert result.status == status
    lines = _of(_written(capsys), "req-4xx")
    assert [x["status"] for x in lines if "status" in x] == [status]
    assert all(x["level"] == "INFO" for x in lines)


def _assert_names_the_cause(lines: list[dict[str, Any]], cause: str) -> None:
    warnings = [x for x in lines if x["level"] in ("WARNING", "ERROR")]
    assert [x["message"] for x in warnings] == ["503 database_unavailable: database unavailable"]
    assert cause in warnings[0]["cause"]
    assert [x["status"] for x in lines if "status" in x] == [503]


@pytest.mark.usefixtures("edge")
def test_a_503_because_postgrest_cannot_reach_the_database_names_it(
    capsys: pytest.CaptureFixture[str],
) -> None:
    # Given PostgREST up and its database down (PostgREST's PGRST001, a 503)
    _Edge.answer = staticmethod(
        lambda _: (503, {"code": "PGRST001", "message": "Database client error. Retrying"})
    )
    _handler()
    capsys.readouterr()
    token = _token()
    # When a request needs it
    result, _ = _ensure(token, {"other_mongo_id": "bob"}, "req-db-down")
    # Then the client gets 503, and the log a warning naming the dependency and its error
    assert (result.status, result.error_code) == (503, "database_unavailable")
    lines = _of(_written(capsys), "req-db-down")
    _assert_names_the_cause(lines, "postgrest.exceptions.APIError")
    assert "PGRST001" in json.dumps(lines)
    logged = json.dumps(lines)
    assert token not in logged
    assert "base64-session-cookie-value" not in logged


@pytest.mark.usefixtures("edge")
def test_a_503_because_the_direct_database_is_down_names_it(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(
        "DATABASE_URL", f"postgresql://authenticator:pw-not-logged@127.0.0.1:{free_port()}/postgres"
    )
    container.reset()
    _handler()
    capsys.readouterr()
    result, _ = _ensure(_token(), {"other_mongo_id": "bob"}, "req-direct-down")

    assert (result.status, result.error_code) == (503, "database_unavailable")
    lines = _of(_written(capsys), "req-direct-down")
    _assert_names_the_cause(lines, "psycopg.OperationalError")
    assert "pw-not-logged" not in json.dumps(lines)


@pytest.mark.usefixtures("edge")
def test_an_unhandled_error_is_one_json_line_with_its_traceback_and_a_500(
    capsys: pytest.CaptureFixture[str],
) -> None:
    # Given PostgREST answering something the function cannot read
    _Edge.answer = staticmethod(lambda _: (200, {"unexpected": "shape"}))
    _handler()
    capsys.readouterr()
    # When a request gets it
    result, raw = _ensure(_token(), {"other_mongo_id": "bob"}, "req-boom")
    # Then the client gets the JSON 500 with its request id
    assert (result.status, result.error_code) == (500, "internal_error")
    assert result.headers["x-request-id"] == "req-boom"
    # and the log one error, its traceback inside the object, once
    lines = _of(_written(capsys), "req-boom")
    errors = [x for x in lines if x["level"] == "ERROR"]
    assert len(errors) == 1, errors
    assert errors[0]["exception"]["type"] == "pydantic_core._pydantic_core.ValidationError"
    assert "Traceback (most recent call last)" in errors[0]["exception"]["traceback"]
    assert [x["status"] for x in lines if "status" in x] == [500]
    assert "Traceback" not in raw["body"]


@pytest.mark.usefixtures("edge")
def test_requests_served_at_once_in_threads_keep_their_own_ids(
    capsys: pytest.CaptureFixture[str],
) -> None:
    # Given eight requests in flight together, each failing with its own cause
    together = threading.Barrier(8, timeout=30)

    def down(args: dict[str, Any]) -> tuple[int, Any]:
        together.wait()  # answered only once all eight are waiting
        return 503, {"code": "PGRST001", "message": f"down for {args['_other_mongo_id']}"}

    _Edge.answer = staticmethod(down)
    _handler()
    capsys.readouterr()
    results: dict[int, Any] = {}

    def one(number: int) -> None:
        results[number], _ = _ensure(_token(), {"other_mongo_id": f"bob{number}"}, f"req-{number}")

    threads = [threading.Thread(target=one, args=(n,)) for n in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)

    # Then each request's lines carry its own id: its warning names its own cause
    lines = _written(capsys)
    for number in range(8):
        assert results[number].headers["x-request-id"] == f"req-{number}"
        mine = _of(lines, f"req-{number}")
        _assert_names_the_cause(mine, f"down for bob{number}")


@pytest.mark.usefixtures("edge")
@pytest.mark.parametrize(
    ("sent", "kept"),
    [
        ("client-req-42", True),
        ("r\u00e9q-\u2713", False),  # not latin-1: the header could not carry it back
        ("caf\u00e9", False),  # latin-1, but not ASCII
        ("req\x7f", False),
        ("x" * 129, False),
    ],
)
def test_a_request_id_header_is_used_only_when_it_is_printable_ascii(
    capsys: pytest.CaptureFixture[str], sent: str, kept: bool
) -> None:
    # Given a hand-made event (no API Gateway request id) with the caller's x-request-id
    event = http_event("POST", "/chat/threads/ensure", body={}, headers={"x-request-id": sent})
    del event["requestContext"]["requestId"]

    # When it is served
    result = parse(_handler()(event, LambdaContext()))

    # Then it is answered as any request without credentials: JSON, never a 500
    assert (result.status, result.error_code) == (401, "missing_token")
    returned = result.headers["x-request-id"]
    assert (returned == sent) is kept
    assert returned.isascii()
    assert returned.isprintable()
    lines = _written(capsys)
    assert {line.get("correlation_id") for line in lines} == {returned}
