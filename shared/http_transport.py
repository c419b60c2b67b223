"""An httpx transport on the standard library's http.client: what every
outbound HTTP client (JWKS, PostgREST through supabase-py's postgrest client,
GoTrue, the model provider) sends through.

Why not httpx's own transport: it loads httpcore and h11, about 27 ms of
every cold start, for features these functions never use (HTTP/2, async,
SOCKS). http.client is already loaded (Starlette imports it), speaks
HTTP/1.1 with keep-alive and chunked bodies, and validates what it sends
(no header or request-line injection). httpx stays the API: clients,
timeouts, redirects, decoding (gzip, ...) and errors are httpx's.

Behaviour kept from httpcore, so callers see no difference:
- keep-alive pooling per (scheme, host, port); an idle connection the server
  has closed (its socket turned readable) is dropped before reuse, never
  written to;
- nothing is retried once a request may have reached the server (a POST is
  never sent twice);
- timeouts per phase (connect, write, read) from httpx's `timeout`;
- OS and protocol failures raised as httpx's exception types;
- streamed responses (the model's server-sent events) are read as they come;
  a connection goes back to the pool only when its response was read to the
  end, and `close()` drops every idle connection (SnapStart: no socket in a
  snapshot) while the transport stays usable.
"""

from __future__ import annotations

import http.client
import select
import socket
import ssl
import threading
from collections.abc import Iterator

import httpx

from shared.connections import Connection, TlsConnection

_Origin = tuple[str, str, int]
_READ_SIZE = 64 * 1024
_MAX_IDLE_PER_ORIGIN = 8


class StdlibTransport(httpx.BaseTransport):
    def __init__(self, ssl_context: ssl.SSLContext) -> None:
        self._ssl_context = ssl_context
        self._idle: dict[_Origin, list[http.client.HTTPConnection]] = {}
        self._lock = threading.Lock()

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        url = request.url
        if url.scheme not in ("http", "https"):
            raise httpx.UnsupportedProtocol(f"unsupported scheme {url.scheme!r}", request=request)
        # raw_host: the host as httpx encoded it (IDNA, ASCII), what is resolved.
        host = url.raw_host.decode("ascii")
        origin = (url.scheme, host, url.port or (443 if url.scheme == "https" else 80))
        timeouts: dict[str, float | None] = request.extensions.get("timeout", {})
        body = request.read()
        connection = self._checkout(origin) or self._connect(origin, timeouts, request)
        phase = "write"
        try:
            _send(connection, request, body, timeouts.get("write"))
            phase = "read"
            connection.sock.settimeout(timeouts.get("read"))
            response = connection.getresponse()
        except BaseException as exc:
            connection.close()
            raise _as_httpx(exc, request, phase) from exc
        return httpx.Response(
            response.status,
            headers=response.getheaders(),
            stream=_ResponseStream(self, origin, connection, response, request),
            extensions={
                "http_version": b"HTTP/1.1" if response.version == 11 else b"HTTP/1.0",
                "reason_phrase": response.reason.encode("latin-1", "replace"),
            },
        )

    def close(self) -> None:
        """Closes every idle connection; later requests open new ones."""
        with self._lock:
            idle, self._idle = self._idle, {}
        for connections in idle.values():
            for connection in connections:
                connection.close()

    def _checkout(self, origin: _Origin) -> http.client.HTTPConnection | None:
        while True:
            with self._lock:
                pool = self._idle.get(origin)
                if not pool:
                    return None
                connection = pool.pop()
            if connection.sock is not None and not _readable(connection.sock):
                return connection
            # Closed by the server while idle (or sent something unasked):
            # never write a request to it.
            connection.close()

    def _checkin(self, origin: _Origin, connection: http.client.HTTPConnection) -> None:
        with self._lock:
            pool = self._idle.setdefault(origin, [])
            if len(pool) < _MAX_IDLE_PER_ORIGIN:
                pool.append(connection)
                return
        connection.close()

    def _connect(
        self, origin: _Origin, timeouts: dict[str, float | None], request: httpx.Request
    ) -> http.client.HTTPConnection:
        scheme, host, port = origin
        connect_timeout = timeouts.get("connect")
        connection: http.client.HTTPConnection
        if scheme == "https":
            connection = TlsConnection(host, port, connect_timeout, self._ssl_context)
        else:
            connection = Connection(host, port, timeout=connect_timeout)
        try:
            connection.connect()
        except BaseException as exc:
            connection.close()
            raise _as_httpx(exc, request, "connect") from exc
        return connection


class _ResponseStream(httpx.SyncByteStream):
    def __init__(
        self,
        transport: StdlibTransport,
        origin: _Origin,
        connection: http.client.HTTPConnection,
        response: http.client.HTTPResponse,
        request: httpx.Request,
    ) -> None:
        self._transport = transport
        self._origin = origin
        self._connection: http.client.HTTPConnection | None = connection
        self._response = response
        self._request = request

    def __iter__(self) -> Iterator[bytes]:
        while True:
            try:
                chunk = self._response.read1(_READ_SIZE)
            except BaseException as exc:
                self.close()
                raise _as_httpx(exc, self._request, "read") from exc
            if not chunk:
                if self._response.length:  # http.client's read1 takes an early EOF as the end
                    self.close()
                    raise httpx.RemoteProtocolError(
                        "peer closed connection without sending complete message body",
                        request=self._request,
                    )
                return
            yield chunk

    def close(self) -> None:
        connection, self._connection = self._connection, None
        if connection is None:
            return
        response = self._response
        # Reusable only when the body was read to its end and neither side
        # asked to close (http.client then has handed the socket over and
        # `sock` is None). Closing the response closes its file, not the socket.
        complete = response.isclosed() or response.length == 0
        reusable = complete and not response.will_close and connection.sock is not None
        response.close()
        if reusable:
            self._transport._checkin(self._origin, connection)
        else:
            connection.close()


def _send(
    connection: http.client.HTTPConnection,
    request: httpx.Request,
    body: bytes,
    write_timeout: float | None,
) -> None:
    connection.sock.settimeout(write_timeout)
    # httpx has set Host, Accept-Encoding and the body's framing; the body is
    # read whole, so a chunked upload is sent with its length instead.
    connection.putrequest(
        request.method,
        request.url.raw_path.decode("ascii"),
        skip_host=True,
        skip_accept_encoding=True,
    )
    chunked = request.headers.get("transfer-encoding", "").lower() == "chunked"
    # The bytes httpx encoded, sent as they are (no second encoding).
    for name, value in request.headers.raw:
        if chunked and name.lower() == b"transfer-encoding":
            continue
        connection.putheader(name.decode("ascii"), value)
    if chunked:
        connection.putheader("Content-Length", str(len(body)))
    connection.endheaders(body or None)


def _readable(sock: socket.socket) -> bool:
    """An idle HTTP/1.1 connection turns readable only when the server closed
    it (or broke the protocol)."""
    poller = select.poll()
    poller.register(sock, select.POLLIN)
    return bool(poller.poll(0))


_TIMEOUTS: dict[str, type[httpx.TimeoutException]] = {
    "connect": httpx.ConnectTimeout,
    "write": httpx.WriteTimeout,
    "read": httpx.ReadTimeout,
}
_NETWORK_ERRORS: dict[str, type[httpx.NetworkError]] = {
    "connect": httpx.ConnectError,
    "write": httpx.WriteError,
    "read": httpx.ReadError,
}


def _as_httpx(exc: BaseException, request: httpx.Request, phase: str) -> BaseException:
    """The httpx error httpcore would have raised in this phase."""
    if isinstance(exc, httpx.HTTPError) or not isinstance(exc, Exception):
        return exc  # KeyboardInterrupt and the like pass through unchanged
    message = str(exc) or type(exc).__name__
    if isinstance(exc, TimeoutError):
        return _TIMEOUTS[phase](message, request=request)
    if phase != "connect" and isinstance(exc, http.client.HTTPException | ConnectionResetError):
        # The server hung up or answered something that is not HTTP/1.1
        # (http.client's RemoteDisconnected is both).
        return httpx.RemoteProtocolError(message, request=request)
    if isinstance(exc, OSError):
        return _NETWORK_ERRORS[phase](message, request=request)
    return httpx.RemoteProtocolError(message, request=request)
