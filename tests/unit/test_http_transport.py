"""The http.client transport under every outbound httpx client, against a real
HTTP/1.1 server on loopback: keep-alive, connections the server closed,
streaming, failures as httpx errors, and never a request sent twice."""

from __future__ import annotations

import gzip
import json
import os
import socket
import subprocess
import sys
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import httpx
import pytest

from scripts.package_functions import write_ca_directory
from shared.http_transport import StdlibTransport
from shared.tls import client_context
from tests.unit.test_tls import _https, project_ca  # noqa: F401 (fixture)

pytestmark = pytest.mark.unit

ROOT = Path(__file__).resolve().parents[2]

Respond = Callable[["_Handler"], None]


class _Server(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self, respond: Respond) -> None:
        super().__init__(("127.0.0.1", 0), _Handler)
        self.respond = respond
        self.requests: list[tuple[str, str, bytes]] = []
        self.connections = 0
        self.closed = threading.Semaphore(0)  # released as each connection ends


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server: _Server

    def setup(self) -> None:
        super().setup()
        self.server.connections += 1

    def finish(self) -> None:
        super().finish()
        self.server.closed.release()

    def _any(self) -> None:
        length = int(self.headers.get("content-length") or 0)
        body = self.rfile.read(length) if length else b""
        self.server.requests.append((self.command, self.path, body))
        self.server.respond(self)

    do_GET = do_POST = _any

    def reply(self, status: int, body: bytes, **headers: str) -> None:
        self.send_response(status)
        self.send_header("content-length", str(len(body)))
        for name, value in headers.items():
            self.send_header(name.replace("_", "-"), value)
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *_: object) -> None:
        pass


@contextmanager
def _serving(respond: Respond) -> Iterator[_Server]:
    server = _Server(respond)
    thread = threading.Thread(target=server.serve_forever, args=(0.05,), daemon=True)
    thread.start()
    try:
        yield server
    finally:
        server.shutdown()
        server.server_close()


def _url(server: _Server, path: str = "/") -> str:
    return f"http://127.0.0.1:{server.server_address[1]}{path}"


def _client(transport: StdlibTransport | None = None, timeout: float = 5.0) -> httpx.Client:
    return httpx.Client(transport=transport or StdlibTransport(client_context()), timeout=timeout)


def _echo(handler: _Handler) -> None:
    _, path, body = handler.server.requests[-1]
    handler.send_response(200)
    handler.send_header("content-type", "application/json")
    handler.send_header("set-cookie", "a=1")
    handler.send_header("set-cookie", "b=2")
    answer = json.dumps({"path": path, "body": body.decode()}).encode()
    handler.send_header("content-length", str(len(answer)))
    handler.end_headers()
    handler.wfile.write(answer)


def test_requests_share_one_kept_alive_connection() -> None:
    with _serving(_echo) as server, _client() as client:
        first = client.get(_url(server, "/rest/v1/rpc?x=1"))
        second = client.post(_url(server, "/rest/v1/rpc/ensure"), json={"a": "é"})

        assert first.json() == {"path": "/rest/v1/rpc?x=1", "body": ""}
        assert second.json()["body"] == '{"a":"é"}'
        assert second.headers.get_list("set-cookie") == ["a=1", "b=2"]
        assert second.extensions["http_version"] == b"HTTP/1.1"
        assert server.connections == 1


def test_a_connection_the_server_closed_while_idle_is_not_written_to() -> None:
    def answer_then_hang_up(handler: _Handler) -> None:
        handler.reply(200, b"ok")  # no `Connection: close`: looks reusable
        handler.close_connection = True  # an idle timeout, server side

    with _serving(answer_then_hang_up) as server, _client() as client:
        assert client.post(_url(server), content=b"one").text == "ok"
        server.closed.acquire(timeout=5)  # the server has hung up

        assert client.post(_url(server), content=b"two").text == "ok"
        assert [body for *_, body in server.requests] == [b"one", b"two"]
        assert server.connections == 2


def test_a_post_is_never_sent_twice() -> None:
    def hang_up(handler: _Handler) -> None:
        handler.close_connection = True  # read the request, answer nothing

    with _serving(hang_up) as server, _client() as client:
        with pytest.raises(httpx.RemoteProtocolError):
            client.post(_url(server), json={"insert": "once"})

        assert len(server.requests) == 1


def test_a_streamed_response_is_read_as_it_arrives() -> None:
    more = threading.Event()

    def events(handler: _Handler) -> None:
        handler.send_response(200)
        handler.send_header("content-type", "text/event-stream")
        handler.send_header("transfer-encoding", "chunked")
        handler.end_headers()
        for chunk in (b"data: one\n\n", b"data: two\n\n"):
            handler.wfile.write(b"%x\r\n%s\r\n" % (len(chunk), chunk))
            handler.wfile.flush()
            more.wait(5)
        handler.wfile.write(b"0\r\n\r\n")

    with _serving(events) as server, _client() as client:
        with client.stream("POST", _url(server), json={}) as response:
            lines = response.iter_lines()
            assert next(lines) == "data: one"  # before the server sends more
            more.set()
            assert [line for line in lines if line] == ["data: two"]
        # read to its end: the connection is reused
        assert client.post(_url(server), json={}).status_code == 200
        assert server.connections == 1


def test_a_response_left_unread_closes_its_connection() -> None:
    with _serving(_echo) as server, _client() as client:
        with client.stream("GET", _url(server)) as response:
            assert response.status_code == 200  # body never read
        assert client.get(_url(server)).status_code == 200
        assert server.connections == 2


def test_a_truncated_body_is_an_error_not_a_short_answer() -> None:
    def truncated(handler: _Handler) -> None:
        handler.send_response(200)
        handler.send_header("content-length", "10")
        handler.end_headers()
        handler.wfile.write(b"abc")
        handler.close_connection = True

    with (
        _serving(truncated) as server,
        _client() as client,
        pytest.raises(httpx.RemoteProtocolError),
    ):
        client.get(_url(server))


def test_timeouts_and_refusals_are_httpx_errors() -> None:
    never = threading.Event()

    def silent(_: _Handler) -> None:
        never.wait(5)

    with _serving(silent) as server, _client(timeout=0.2) as client:
        with pytest.raises(httpx.ReadTimeout):
            client.get(_url(server))
        never.set()
    with _client() as client, pytest.raises(httpx.ConnectError):
        client.get(_url(server))  # the server is gone: nothing listens


def test_compressed_bodies_are_decoded() -> None:
    def compressed(handler: _Handler) -> None:
        handler.reply(200, gzip.compress(b'{"ok": true}'), content_encoding="gzip")

    with _serving(compressed) as server, _client() as client:
        assert client.get(_url(server)).json() == {"ok": True}


def test_close_drops_idle_connections_and_the_transport_stays_usable() -> None:
    transport = StdlibTransport(client_context())
    with _serving(_echo) as server, _client(transport) as client:
        client.get(_url(server))

        transport.close()  # SnapStart's before-snapshot hook

        assert server.closed.acquire(timeout=5)  # the server saw it close
        assert client.get(_url(server)).status_code == 200
        assert server.connections == 2


@pytest.fixture
def https_server(
    tmp_path: Path,
    project_ca: tuple[Path, Path, Path],  # noqa: F811
    monkeypatch: pytest.MonkeyPatch,
) -> Iterator[tuple[Path, int]]:
    """A HTTPS server whose certificate names 127.0.0.1 only, and a CA
    directory (as the artifacts ship) that trusts its CA."""
    monkeypatch.delenv("SSL_CERT_FILE", raising=False)
    monkeypatch.delenv("SSL_CERT_DIR", raising=False)
    bundle, cert_file, key_file = project_ca
    write_ca_directory(bundle, tmp_path / "cas")
    with _https(cert_file, key_file) as port:
        yield tmp_path / "cas", port


def test_https_trusts_only_the_context_s_authorities(
    https_server: tuple[Path, int], tmp_path: Path
) -> None:
    cas, port = https_server
    trusting = StdlibTransport(client_context(cas))
    (tmp_path / "none").mkdir()
    other = StdlibTransport(client_context(tmp_path / "none"))

    url = f"https://127.0.0.1:{port}/"
    assert _client(trusting).get(url).text == "ok"
    with pytest.raises(httpx.ConnectError):
        _client(other).get(url)


def test_a_https_name_the_certificate_does_not_carry_is_refused(
    https_server: tuple[Path, int],
) -> None:
    # Given a server whose certificate, from a trusted CA, names 127.0.0.1 only
    cas, port = https_server
    transport = StdlibTransport(client_context(cas))

    # When it is reached as localhost, Then the handshake fails
    with pytest.raises(httpx.ConnectError, match=r"[Mm]ismatch"):
        _client(transport).get(f"https://localhost:{port}/")
    # and as the name it carries, it answers
    assert _client(transport).get(f"https://127.0.0.1:{port}/").text == "ok"


_FIRST_REQUEST = """
import json, sys
import httpx
from shared.http_transport import StdlibTransport
from shared.tls import client_context
from pathlib import Path
url, cas = sys.argv[1], sys.argv[2]
before = "encodings.idna" in sys.modules
with httpx.Client(transport=StdlibTransport(client_context(Path(cas))), timeout=5) as client:
    text = client.get(url).text
print(json.dumps({"text": text, "before": before, "after": "encodings.idna" in sys.modules}))
"""


def test_the_first_request_does_not_load_the_idna_codec(https_server: tuple[Path, int]) -> None:
    # Given a fresh process (as a cold start is) and servers over HTTP and HTTPS
    cas, port = https_server
    env = {k: v for k, v in os.environ.items() if k not in ("SSL_CERT_FILE", "SSL_CERT_DIR")}

    def first_request(url: str) -> dict[str, object]:
        done = subprocess.run(
            [sys.executable, "-c", _FIRST_REQUEST, url, str(cas)],
            capture_output=True, text=True, check=True, cwd=ROOT, env=env, timeout=60,
        )  # fmt: skip
        return dict(json.loads(done.stdout))

    with _serving(lambda h: h.reply(200, b"ok")) as server:
        # When its first request goes out over each
        answers = [first_request(_url(server)), first_request(f"https://127.0.0.1:{port}/")]

    # Then it is answered without the codec's modules (encodings.idna and
    # stringprep: ~2.7 ms of a cold start) ever being imported
    assert answers == [{"text": "ok", "before": False, "after": False}] * 2


def test_an_internationalised_host_is_resolved_as_its_idna_name(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # Given the network edge, recording what is resolved and refusing it
    resolved: list[tuple[object, int]] = []

    def refuse(address: tuple[object, int], *_: object) -> None:
        resolved.append(address)
        raise ConnectionRefusedError("refused")

    monkeypatch.setattr(socket, "create_connection", refuse)

    # When a client asks for a host written in Unicode
    with pytest.raises(httpx.ConnectError):
        _client().get("http://bücher.example:8080/")

    # Then DNS is asked for the name the Host header carries (IDNA 2008)
    assert resolved == [(b"xn--bcher-kva.example", 8080)]
