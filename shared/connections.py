"""http.client connections that resolve their host as ASCII bytes.

Given a str host, `socket.getaddrinfo` (and `ssl`, for the name it verifies
and sends as SNI) runs it through the idna codec, whose first use imports
encodings.idna and stringprep: about 2.7 ms of a cold start, for names that
are ASCII already (httpx has IDNA-encoded the URL's host; the secrets
extension is `localhost`). Every connection our code opens is one of these
(boto3's, on its own paths, are botocore's).
"""

from __future__ import annotations

import http.client
import socket
import ssl
import sys
from typing import Any


class Connection(http.client.HTTPConnection):
    """http.client's connection to an ASCII host (no proxy tunnel)."""

    def connect(self) -> None:
        sys.audit("http.client.connect", self, self.host, self.port)
        # getaddrinfo takes bytes (typeshed says str only).
        address: tuple[Any, int] = (self.host.encode("ascii"), self.port)
        self.sock = socket.create_connection(address, self.timeout)
        self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)


class TlsConnection(Connection):
    """TLS on `context`, which verifies the host (certificate and name)."""

    def __init__(
        self, host: str, port: int, timeout: float | None, context: ssl.SSLContext
    ) -> None:
        super().__init__(host, port, timeout=timeout)
        self._tls_context = context

    def connect(self) -> None:
        super().connect()
        self.sock = self._tls_context.wrap_socket(
            self.sock, server_hostname=self.host.encode("ascii")
        )
