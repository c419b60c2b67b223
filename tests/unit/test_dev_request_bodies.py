"""make dev's HTTP servers (the functions' API, the local Supabase's auth,
PostgREST, Realtime broadcast and queue endpoints, the demo page) and a
request's declared body length: one that is not a length, or over the
server's limit, is a JSON 400, 411 or 413 and the connection closed; never a
traceback, a dropped connection or a server waiting for bytes that never come."""

from __future__ import annotations

import json
import socket
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest

from infra.dev import auth, postgrest, sqs
from infra.dev.auth import LocalAuth
from infra.dev.postgrest import RpcEndpoint
from infra.dev.realtime import rest
from infra.dev.realtime.server import ApiKeys, RealtimeServer
from infra.dev.server import MAX_REQUEST_BYTES, InProcess, make_handler
from infra.dev.web import server as page
from shared.auth.verifier import TokenVerifier

ANON_KEY = "anon-key-for-these-tests"
UNUSED_DSN = "postgresql://nobody@127.0.0.1:1/none"  # never connected: refusals come first


def _no_verifier() -> TokenVerifier:
    raise AssertionError("no request here gets as far as a token")


@dataclass(frozen=True)
class Endpoint:
    """One route that reads a body, a body it answers without a database,
    and what it answers to that body."""

    handler: Callable[[], type[BaseHTTPRequestHandler]]
    request_line: str
    headers: dict[str, str]
    good_body: bytes
    good_status: int
    limit: int


def _auth_with_endpoints() -> type[BaseHTTPRequestHandler]:
    local = LocalAuth()
    keys = ApiKeys(ANON_KEY, "")
    local.postgrest = RpcEndpoint(UNUSED_DSN, keys, _no_verifier)
    local.realtime = RealtimeServer(UNUSED_DSN, keys, _no_verifier)
    return local.handler()


ENDPOINTS = {
    "functions' API": Endpoint(
        lambda: make_handler(InProcess({})),
        "GET / HTTP/1.1",
        {},
        b'{"x": 1}',
        200,
        MAX_REQUEST_BYTES,
    ),
    "auth refresh": Endpoint(
        _auth_with_endpoints,
        "POST /auth/v1/token?grant_type=refresh_token HTTP/1.1",
        {},
        b'{"refresh_token": "unknown"}',
        400,
        auth.MAX_BODY_BYTES,
    ),
    "postgrest": Endpoint(
        _auth_with_endpoints,
        "POST /rest/v1/rpc/not-a-function-name HTTP/1.1",
        {"apikey": ANON_KEY},
        b"{}",
        404,
        postgrest.MAX_BODY_BYTES,
    ),
    "realtime broadcast": Endpoint(
        _auth_with_endpoints,
        "POST /realtime/v1/api/broadcast HTTP/1.1",
        {"apikey": ANON_KEY},
        b'{"messages": []}',
        422,
        rest.MAX_BODY_BYTES,
    ),
    "queue": Endpoint(
        _auth_with_endpoints,
        "POST /local/sqs HTTP/1.1",
        {"X-Amz-Target": "AmazonSQS.SendMessage"},
        b'{"QueueUrl": "http://elsewhere/1/other", "MessageBody": "x"}',
        400,
        sqs.MAX_BODY_BYTES,
    ),
    "demo page sign-in": Endpoint(
        lambda: page.page_handler({}, LocalAuth().sign_in, _no_say, "sb-t-auth-token", ["ada"]),
        "POST /dev/sign-in HTTP/1.1",
        {},
        b'{"user": "nobody"}',
        400,
        page.MAX_BODY_BYTES,
    ),
}


def _no_say(_token: str, _text: str) -> dict[str, Any]:
    raise AssertionError("nothing is said here")


@pytest.fixture(scope="module", params=list(ENDPOINTS))
def endpoint(request: pytest.FixtureRequest) -> Iterator[tuple[Endpoint, int]]:
    chosen = ENDPOINTS[request.param]
    server = ThreadingHTTPServer(("127.0.0.1", 0), chosen.handler())
    server.daemon_threads = True
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        yield chosen, server.server_port
    finally:
        server.shutdown()
        server.server_close()


@dataclass
class Answer:
    status: int
    headers: dict[str, str]
    body: Any


def _request(endpoint: Endpoint, extra: list[str], body: bytes = b"") -> bytes:
    lines = [endpoint.request_line, "Host: 127.0.0.1"]
    lines += [f"{name}: {value}" for name, value in endpoint.headers.items()]
    return ("\r\n".join([*lines, *extra]) + "\r\n\r\n").encode("latin-1") + body


def _read_answer(stream: Any) -> Answer:
    status_line = stream.readline()
    assert status_line, "the connection was dropped without an answer"
    status = int(status_line.split()[1])
    headers: dict[str, str] = {}
    while (line := stream.readline().decode("latin-1").strip()) != "":
        name, _, value = line.partition(":")
        headers[name.strip().lower()] = value.strip()
    data = stream.read(int(headers.get("content-length", "0")))
    return Answer(status, headers, json.loads(data) if data else None)


def _exchange(port: int, raw: bytes) -> tuple[Answer, bool]:
    """The answer, and whether the server closed the connection after it."""
    with socket.create_connection(("127.0.0.1", port), timeout=15) as sock:
        sock.sendall(raw)
        stream = sock.makefile("rb")
        answer = _read_answer(stream)
        try:
            closed = stream.read(1) == b""
        except TimeoutError:
            closed = False
        return answer, closed


@pytest.mark.parametrize(
    ("content_length", "status"),
    [
        (["abc"], 400),
        (["-1"], 400),
        (["+5"], 400),
        (["0x10"], 400),
        (["\u00b2"], 400),  # '²': str.isdigit() says yes, int() says no
        (["3", "4"], 400),  # two lengths: which one is the body's?
        (["3, 4"], 400),
        (["1" * 5000], 413),  # past int()'s 4,300 digits
        (["LIMIT+1"], 413),
    ],
    ids=["letters", "negative", "signed", "hex", "superscript", "two", "list", "huge", "over"],
)
def test_a_bad_content_length_is_a_json_4xx_and_the_connection_closed(
    endpoint: tuple[Endpoint, int], content_length: list[str], status: int
) -> None:
    chosen, port = endpoint
    values = [str(chosen.limit + 1) if v == "LIMIT+1" else v for v in content_length]

    answer, closed = _exchange(port, _request(chosen, [f"Content-Length: {v}" for v in values]))

    assert answer.status == status, answer.body
    assert "json" in answer.headers["content-type"]  # SQS's: application/x-amz-json-1.0
    assert isinstance(answer.body, dict)
    assert closed  # its body, if any, is never read as a next request
    # and the server goes on serving
    assert _exchange(port, _good(chosen, "Connection: close"))[0].status == chosen.good_status


def test_a_chunked_body_is_a_411_never_read_as_the_next_request(
    endpoint: tuple[Endpoint, int],
) -> None:
    chosen, port = endpoint
    chunked = b"%x\r\n%s\r\n0\r\n\r\n" % (len(chosen.good_body), chosen.good_body)

    answer, closed = _exchange(port, _request(chosen, ["Transfer-Encoding: chunked"], chunked))

    assert answer.status == 411, answer.body
    assert isinstance(answer.body, dict)
    assert closed


def _good(chosen: Endpoint, *extra: str) -> bytes:
    length = f"Content-Length: {len(chosen.good_body)}"
    return _request(chosen, [length, *extra], chosen.good_body)


def test_well_framed_requests_share_a_connection(endpoint: tuple[Endpoint, int]) -> None:
    chosen, port = endpoint
    with socket.create_connection(("127.0.0.1", port), timeout=15) as sock:
        sock.sendall(_good(chosen) + _good(chosen))
        stream = sock.makefile("rb")
        answers = [_read_answer(stream), _read_answer(stream)]
    assert [a.status for a in answers] == [chosen.good_status] * 2
