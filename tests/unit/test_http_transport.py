"""The transport under every outbound httpx client (the container's, as the
functions build it), against real HTTP/1.1 servers on loopback, some of them
hostile: keep-alive, interim responses, connections the server closed,
early answers, streaming, cut and malformed bodies, per-phase timeouts, and
never a request sent twice or an answer given to the wrong request."""

from __future__ import annotations

import gzip
import json
import socket
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import httpx
import pytest

from scripts.package_functions import write_ca_directory
from shared import container
from shared.http_transport import Outbound
from shared.tls import client_context
from tests.unit.test_tls import _https, project_ca  # noqa: F401 (fixture)

pytestmark = pytest.mark.unit

Respond = Callable[["_Handler"], None]
PROXY_VARIABLES = ("HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY", "NO_PROXY")


class _Server(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self, respond: Respond) -> None:
        super().__init__(("127.0.0.1", 0), _Handler)
        self.respond = respond
        self.requests: list[tuple[str, str, bytes]] = []
        self.connections = 0
        self.closed = threading.Semaphore(0)  # released once each connection's socket is closed

    def shutdown_request(self, request: Any) -> None:
        super().shutdown_request(request)  # the socket is closed: the FIN is on its way
        self.closed.release()


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server: _Server

    def setup(self) -> None:
        super().setup()
        self.server.connections += 1

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


@pytest.fixture(autouse=True)
def _container_without_proxies(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    for name in PROXY_VARIABLES:
        monkeypatch.delenv(name, raising=False)
        monkeypatch.delenv(name.lower(), raising=False)
    container.reset()
    yield
    container.reset()


def _client(timeout: float = 5.0, *, connect: float | None = None) -> httpx.Client:
    """A client exactly as the functions build theirs."""
    return container.http_client(timeout, connect=connect)


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


def test_interim_responses_are_skipped_and_each_request_gets_its_own_answer() -> None:
    # Given an upstream that sends 103 Early Hints and 102 Processing before
    # each real answer, on a kept-alive connection
    def hints_first(handler: _Handler) -> None:
        _, path, _ = handler.server.requests[-1]
        handler.send_response_only(103)
        handler.send_header("link", "</style.css>; rel=preload")
        handler.end_headers()
        handler.send_response_only(102)
        handler.end_headers()
        handler.wfile.flush()
        handler.reply(200, json.dumps({"answer_to": path}).encode())

    with _serving(hints_first) as server, _client() as client:
        # When two users' requests go out one after the other
        first = client.post(_url(server, "/rpc/user_a_secret"), json={})
        second = client.post(_url(server, "/rpc/user_b"), json={})

        # Then each gets the final answer to its own request, over one connection
        assert (first.status_code, first.json()) == (200, {"answer_to": "/rpc/user_a_secret"})
        assert (second.status_code, second.json()) == (200, {"answer_to": "/rpc/user_b"})
        assert server.connections == 1


def test_a_response_with_more_than_a_hundred_headers_is_accepted() -> None:
    # (http.client refuses more than 100; HTTP sets no such limit)
    headers = {f"x_header_{i}": str(i) for i in range(150)}
    with (
        _serving(lambda h: h.reply(200, b"ok", **headers)) as server,
        _client() as client,
    ):
        response = client.get(_url(server))

    assert response.text == "ok"
    assert [response.headers[f"x-header-{i}"] for i in range(150)] == [str(i) for i in range(150)]


def test_an_early_answer_to_an_upload_is_the_answer_not_a_reset() -> None:
    # Given a server that answers 413 as soon as it has read the headers of an
    # upload, and closes without reading the body (the client is still sending)
    listener = socket.create_server(("127.0.0.1", 0))
    seen: list[bytes] = []

    def refuse_after_headers() -> None:
        connection, _ = listener.accept()
        head = b""
        while b"\r\n\r\n" not in head:
            head += connection.recv(65536)
        seen.append(head.split(b"\r\n", 1)[0])
        body = b'{"message":"payload too large"}'
        connection.sendall(
            b"HTTP/1.1 413 Payload Too Large\r\nContent-Type: application/json\r\n"
            b"Connection: close\r\nContent-Length: %d\r\n\r\n%s" % (len(body), body)
        )
        connection.close()  # unread data: the kernel resets the connection

    server = threading.Thread(target=refuse_after_headers, daemon=True)
    server.start()
    port = listener.getsockname()[1]
    # When the client uploads more than the sockets' buffers hold
    with _client() as client:
        response = client.post(f"http://127.0.0.1:{port}/upload", content=b"x" * (32 << 20))
    server.join(5)
    listener.close()

    # Then it reports the server's answer
    assert seen == [b"POST /upload HTTP/1.1"]
    assert (response.status_code, response.json()) == (413, {"message": "payload too large"})


def test_a_connection_the_server_closed_while_idle_is_not_written_to() -> None:
    def answer_then_hang_up(handler: _Handler) -> None:
        handler.reply(200, b"ok")  # no `Connection: close`: looks reusable
        handler.close_connection = True  # an idle timeout, server side

    with _serving(answer_then_hang_up) as server, _client() as client:
        assert client.post(_url(server), content=b"one").text == "ok"
        assert server.closed.acquire(timeout=5)  # the server's socket is closed

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


def test_a_post_on_a_reused_connection_that_dies_is_not_resent() -> None:
    # Given a kept-alive connection whose server dies after reading the next request
    def first_answers_then_hang_up(handler: _Handler) -> None:
        if len(handler.server.requests) == 1:
            handler.reply(200, b"ok")
        else:
            handler.close_connection = True

    with _serving(first_answers_then_hang_up) as server, _client() as client:
        assert client.post(_url(server), json={"n": 1}).text == "ok"
        # When the second request reaches it and gets no answer
        with pytest.raises(httpx.RemoteProtocolError):
            client.post(_url(server), json={"n": 2})
        # Then it was sent once: the caller decides whether to try again
        assert [body for *_, body in server.requests] == [b'{"n":1}', b'{"n":2}']


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


def _raw(answer: bytes) -> Respond:
    def respond(handler: _Handler) -> None:
        handler.wfile.write(answer)
        handler.close_connection = True

    return respond


@pytest.mark.parametrize(
    "answer",
    [
        b"HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\nabc",
        b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nabcde\r\n",
        b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\nabc\r\n0\r\n\r\n",
        b"HTTP/1.1 two hundred OK\r\nContent-Length: 2\r\n\r\nok",
        b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\nContent-Length: 3\r\n\r\nok!",
        b"HTTP/1.1 200 OK\r\nbad header line\r\nContent-Length: 2\r\n\r\nok",
        b"SSH-2.0-OpenSSH_9.2\r\n",
        b"",
    ],
    ids=[
        "body cut short",
        "chunked body without its last chunk",
        "chunk size not hex",
        "status not a number",
        "two lengths",
        "header without colon",
        "not HTTP",
        "no answer",
    ],
)
def test_a_cut_or_malformed_answer_is_an_error_not_a_short_answer(answer: bytes) -> None:
    with (
        _serving(_raw(answer)) as server,
        _client() as client,
        pytest.raises(httpx.RemoteProtocolError),
    ):
        client.get(_url(server))


def test_each_phase_has_its_own_timeout() -> None:
    never = threading.Event()

    def silent(_: _Handler) -> None:
        never.wait(5)

    # read: the server never answers
    with _serving(silent) as server, _client(0.2) as client:
        with pytest.raises(httpx.ReadTimeout):
            client.get(_url(server))
        never.set()
    # refused: nothing listens any more
    with _client() as client, pytest.raises(httpx.ConnectError):
        client.get(_url(server))

    # connect: a listener whose accept queue is full drops new handshakes
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(0)
    queued = []
    for _ in range(3):
        pending = socket.socket()
        pending.setblocking(False)
        pending.connect_ex(listener.getsockname())
        queued.append(pending)
    try:
        with _client(5.0, connect=0.2) as client, pytest.raises(httpx.ConnectTimeout):
            client.get(f"http://127.0.0.1:{listener.getsockname()[1]}/")
    finally:
        for pending in queued:
            pending.close()

    listener.close()

    # write: a server that takes the connection but never reads the upload
    with (
        socket.create_server(("127.0.0.1", 0)) as deaf,
        _client(0.2) as client,
        pytest.raises(httpx.WriteTimeout),
    ):
        client.post(f"http://127.0.0.1:{deaf.getsockname()[1]}/", content=b"x" * (64 << 20))


def test_compressed_bodies_are_decoded() -> None:
    def compressed(handler: _Handler) -> None:
        handler.reply(200, gzip.compress(b'{"ok": true}'), content_encoding="gzip")

    with _serving(compressed) as server, _client() as client:
        assert client.get(_url(server)).json() == {"ok": True}


def test_closing_the_pool_closes_its_sockets_and_the_clients_stay_usable() -> None:
    with _serving(_echo) as server, _client() as client:
        client.get(_url(server))

        container.close_connections()  # SnapStart's before-snapshot hook

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


def _on(cas: Path) -> httpx.Client:
    return Outbound(client_context(cas)).client(httpx.Timeout(5.0))


def test_https_trusts_only_the_context_s_authorities(
    https_server: tuple[Path, int], tmp_path: Path
) -> None:
    cas, port = https_server
    (tmp_path / "none").mkdir()

    url = f"https://127.0.0.1:{port}/"
    assert _on(cas).get(url).text == "ok"
    with pytest.raises(httpx.ConnectError):
        _on(tmp_path / "none").get(url)


def test_a_https_name_the_certificate_does_not_carry_is_refused(
    https_server: tuple[Path, int],
) -> None:
    # Given a server whose certificate, from a trusted CA, names 127.0.0.1 only
    cas, port = https_server

    # When it is reached as localhost, Then the handshake fails
    with pytest.raises(httpx.ConnectError, match=r"[Mm]ismatch"):
        _on(cas).get(f"https://localhost:{port}/")
    # and as the name it carries, it answers
    assert _on(cas).get(f"https://127.0.0.1:{port}/").text == "ok"


def test_an_internationalised_host_is_resolved_as_its_idna_name(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # Given the network edge, recording what is resolved and refusing it
    resolved: list[tuple[object, int]] = []

    def refuse(address: tuple[object, int], *_: object, **__: object) -> None:
        resolved.append(address)
        raise ConnectionRefusedError("refused")

    monkeypatch.setattr(socket, "create_connection", refuse)

    # When a client asks for a host written in Unicode
    with _client() as client, pytest.raises(httpx.ConnectError):
        client.get("http://bücher.example:8080/")

    # Then DNS is asked for the name the Host header carries (IDNA 2008)
    assert resolved == [("xn--bcher-kva.example", 8080)]
