"""The load generator's HTTP client reads what httpx reads: the same
responses from one loopback server, through both."""

from __future__ import annotations

import asyncio
import json
from http.server import BaseHTTPRequestHandler
from typing import Any

import httpx
import pytest

from benchmarks.load_client import Client, ProtocolError
from tests.support.loopback import serve

pytestmark = pytest.mark.unit

CASES = {
    "/created": (201, {"Content-Type": "application/json", "Server-Timing": "lambda;dur=4.21"}, b'{"id": 1}'),
    "/limited": (429, {"Retry-After": "12", "Content-Type": "application/json"},
                 b'{"error": {"code": "rate_limited"}}'),
    "/empty": (204, {}, b""),
    "/close": (200, {"Connection": "close"}, b"bye"),
    "/unicode": (400, {"Content-Type": "application/json"}, json.dumps({"m": "é ✓"}).encode()),
}  # fmt: skip


class Canned(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    connections: set[int] = set()  # noqa: RUF012 (the test reads it)

    def log_message(self, format: str, *args: Any) -> None:
        pass

    def do_POST(self) -> None:
        Canned.connections.add(id(self.connection))
        received = self.rfile.read(int(self.headers.get("Content-Length") or 0))
        if self.path == "/echo":
            self._answer(200, {"Content-Type": "application/json"}, json.dumps({
                "body": json.loads(received), "auth": self.headers["Authorization"]}).encode())  # fmt: skip
            return
        if self.path == "/chunked":
            self.send_response(200)
            self.send_header("Transfer-Encoding", "chunked")
            self.end_headers()
            self.wfile.write(b"0\r\n\r\n")
            return
        self._answer(*CASES[self.path])

    def _answer(self, status: int, headers: dict[str, str], body: bytes) -> None:
        self.send_response(status)
        for key, value in headers.items():
            self.send_header(key, value)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)
        if headers.get("Connection") == "close":
            self.close_connection = True


def test_each_response_reads_as_httpx_reads_it() -> None:
    with serve(Canned) as origin:

        async def ours() -> list[tuple[int, dict[str, str], bytes]]:
            client = Client(origin, connections=2)
            got = []
            for path in [*CASES, *CASES]:  # twice: kept-alive and reopened connections too
                r = await client.request("POST", path, {"Content-Type": "application/json"}, {})
                got.append((r.status, r.headers, r.body))
            await client.close()
            return got

        with httpx.Client() as http:
            theirs = [http.post(f"{origin}{path}", json={}) for path in [*CASES, *CASES]]
        for (status, headers, body), reference in zip(asyncio.run(ours()), theirs, strict=True):
            assert status == reference.status_code
            assert body == reference.content
            for name in ("content-type", "server-timing", "retry-after", "connection"):
                assert headers.get(name) == reference.headers.get(name)


def test_a_json_body_and_headers_arrive_and_connections_are_reused() -> None:
    Canned.connections.clear()
    with serve(Canned) as origin:

        async def send() -> list[Any]:
            client = Client(origin, connections=1)
            answers = [(await client.request("POST", "/echo", {"Authorization": "Bearer t"},
                                             {"n": n, "text": "ünï"})).json() for n in range(3)]  # fmt: skip
            await client.close()
            return answers

        answers = asyncio.run(send())
    assert answers == [{"body": {"n": n, "text": "ünï"}, "auth": "Bearer t"} for n in range(3)]
    assert len(Canned.connections) == 1  # one keep-alive connection for the three


def test_what_it_cannot_read_is_an_error_and_it_sends_to_loopback_only() -> None:
    with serve(Canned) as origin:

        async def chunked() -> None:
            await Client(origin).request("POST", "/chunked", {}, {})

        with pytest.raises(ProtocolError):
            asyncio.run(chunked())
    for origin in ("http://10.0.0.1:80", "https://127.0.0.1:443", "http://example.com"):
        with pytest.raises(ValueError, match="loopback"):
            Client(origin)
