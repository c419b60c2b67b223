"""A minimal HTTP/1.1 keep-alive client on asyncio streams, for the load
generator only.

Why not httpx: on this machine httpx's async client spent 3.3-4.4 ms of CPU
per request (its models, httpcore, anyio), as much as make dev's whole
process spent serving it, so on 2 shared cores the generator reached its
share of the CPU before the server did and the "saturation" it found was its
own (make dev's process at 0.3 cores while latency exploded). This client
writes a request in one call and reads the status line, the headers and a
Content-Length body: what make dev's server always sends. It follows no
redirect, speaks no TLS, no chunked encoding (it refuses one), and sends to
loopback only. tests/unit/test_load_client.py holds it to httpx's reading
of the same responses.
"""

from __future__ import annotations

import asyncio
import json
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit


class ProtocolError(Exception):
    """A response this client does not read (the request counts as failed)."""


@dataclass(frozen=True)
class Response:
    status: int
    headers: dict[str, str]  # names lower-cased; a repeated header keeps its last value
    body: bytes

    def json(self) -> Any:
        return json.loads(self.body)


class Client:
    """Up to `connections` keep-alive connections to one loopback origin."""

    def __init__(self, origin: str, connections: int = 200, timeout: float = 30.0) -> None:
        url = urlsplit(origin)
        if url.scheme != "http" or not (
            url.hostname == "localhost" or (url.hostname or "").startswith("127.")
        ):
            raise ValueError(f"loopback http:// origins only, not {origin!r}")
        self.host, self.port = url.hostname or "127.0.0.1", url.port or 80
        self.timeout = timeout
        self._idle: list[tuple[asyncio.StreamReader, asyncio.StreamWriter]] = []
        self._slots = asyncio.Semaphore(connections)

    async def request(
        self, method: str, path: str, headers: dict[str, str], body: Any = None
    ) -> Response:
        data = b"" if body is None else json.dumps(body).encode()
        head = [f"{method} {path} HTTP/1.1", f"Host: {self.host}:{self.port}",
                f"Content-Length: {len(data)}"]  # fmt: skip
        head += [f"{k}: {v}" for k, v in headers.items()]
        payload = ("\r\n".join(head) + "\r\n\r\n").encode("latin-1") + data
        async with self._slots:
            reader, writer = self._idle.pop() if self._idle else await self._connect()
            try:
                writer.write(payload)
                response, keep = await asyncio.wait_for(self._read(reader), self.timeout)
            except BaseException:
                writer.close()
                raise
            if keep:
                self._idle.append((reader, writer))
            else:
                writer.close()
            return response

    async def _connect(self) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
        return await asyncio.wait_for(asyncio.open_connection(self.host, self.port), self.timeout)

    @staticmethod
    async def _read(reader: asyncio.StreamReader) -> tuple[Response, bool]:
        status_line = await reader.readline()
        parts = status_line.split(b" ", 2)
        if len(parts) < 2 or not parts[0].startswith(b"HTTP/1.") or not parts[1].isdigit():
            raise ProtocolError(f"not an HTTP/1.x status line: {status_line[:80]!r}")
        headers: dict[str, str] = {}
        while (line := await reader.readline()) not in (b"\r\n", b"\n", b""):
            name, _, value = line.decode("latin-1").partition(":")
            headers[name.strip().lower()] = value.strip()
        if "chunked" in headers.get("transfer-encoding", "").lower():
            raise ProtocolError("chunked responses are not read by this client")
        body = await reader.readexactly(int(headers.get("content-length", "0")))
        keep = headers.get("connection", "").lower() != "close" and parts[0] == b"HTTP/1.1"
        return Response(int(parts[1]), headers, body), keep

    async def close(self) -> None:
        for _, writer in self._idle:
            writer.close()
        self._idle.clear()
