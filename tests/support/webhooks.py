"""A loopback HTTP receiver for what pg_net's worker sends."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler
from typing import Any

import psycopg

from tests.support.loopback import serve


@dataclass(frozen=True)
class Received:
    method: str
    path: str
    headers: dict[str, str]
    body: bytes

    def json(self) -> Any:
        return json.loads(self.body)


@dataclass
class Receiver:
    """Records each request and answers `status` with `reply`."""

    status: int = 200
    reply: bytes = b'{"ok": true}'
    received: list[Received] = field(default_factory=list)
    url: str = ""
    _arrived: threading.Condition = field(default_factory=threading.Condition)

    @contextmanager
    def serving(self) -> Iterator[Receiver]:
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, format: str, *args: Any) -> None:  # noqa: ARG002
                return

            def _record(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                with receiver._arrived:
                    receiver.received.append(
                        Received(
                            self.command,
                            self.path,
                            {k.lower(): v for k, v in self.headers.items()},
                            body,
                        )
                    )
                    receiver._arrived.notify_all()
                self.send_response(receiver.status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(receiver.reply)))
                self.end_headers()
                self.wfile.write(receiver.reply)

            do_GET = do_POST = do_DELETE = _record

        with serve(Handler) as url:
            self.url = url
            yield self

    def wait_for(self, count: int, timeout: float = 10) -> list[Received]:
        """The first `count` requests, once they have arrived."""
        with self._arrived:
            if not self._arrived.wait_for(lambda: len(self.received) >= count, timeout):
                raise AssertionError(f"expected {count} request(s), got {len(self.received)}")
            return list(self.received[:count])


def responses(
    admin: psycopg.Connection[Any], count: int, timeout: float = 10
) -> list[tuple[Any, ...]]:
    """net._http_response rows (id, status_code, error_msg), once `count` are recorded."""
    deadline = time.monotonic() + timeout
    while True:
        rows = admin.execute(
            "select id, status_code, error_msg from net._http_response order by id"
        ).fetchall()
        if len(rows) >= count or time.monotonic() > deadline:
            return rows
        time.sleep(0.02)
