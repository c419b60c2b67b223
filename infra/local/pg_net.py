"""The pg_net worker, played by a thread: it takes each request off
net.http_request_queue as soon as it is queued (LISTEN on the stand-in's
wake-up channel, with a short poll as a fallback), sends it, and records the
outcome in net._http_response, as pg_net's background worker does.

Like pg_net's worker it outlives the database it serves: when PostgreSQL
goes away (shutdown, restart, network) it logs, retries with a bounded
backoff, and resumes where the queue stands. Requests are taken off the
queue before they are sent, so a crash loses at most the ones in flight
(pg_net delivers at most once too).
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import httpx
import psycopg
from psycopg.types.json import Jsonb

logger = logging.getLogger("pg_net")

WAKE_CHANNEL = "pg_net_wake"
_TAKE = """
delete from net.http_request_queue
where id in (select id from net.http_request_queue order by id limit %s for update skip locked)
returning id, method, url, headers, body, timeout_milliseconds
"""
_RECORD = """
insert into net._http_response
  (id, status_code, content_type, headers, content, timed_out, error_msg)
values (%s, %s, %s, %s, %s, %s, %s)
"""


@dataclass(frozen=True)
class Outcome:
    """What pg_net records for one request."""

    status_code: int | None = None
    content_type: str | None = None
    headers: dict[str, str] | None = None
    content: str | None = None
    timed_out: bool = False
    error_msg: str | None = None


def send(
    http: httpx.Client, method: str, url: str, headers: Any, body: Any, timeout_ms: int
) -> Outcome:
    try:
        response = http.request(
            str(method).upper(),
            url,
            headers=dict(headers or {}),
            content=bytes(body) if body is not None else None,
            timeout=timeout_ms / 1000,
        )
    except httpx.TimeoutException:
        return Outcome(timed_out=True, error_msg=f"Timeout of {timeout_ms} ms reached")
    except httpx.HTTPError as exc:
        return Outcome(error_msg=f"{type(exc).__name__}: {exc}")
    return Outcome(
        status_code=response.status_code,
        content_type=response.headers.get("content-type"),
        headers=dict(response.headers.items()),
        content=response.text,
    )


def deliver_queued(conn: psycopg.Connection[Any], http: httpx.Client, batch_size: int = 200) -> int:
    """Takes one batch off the queue, sends it, records each outcome;
    returns how many requests it took (0 when the queue is empty)."""
    rows = conn.execute(_TAKE, (batch_size,)).fetchall()
    for request_id, method, url, headers, body, timeout_ms in sorted(rows):
        outcome = send(http, method, url, headers, body, timeout_ms)
        conn.execute(
            _RECORD,
            (
                request_id,
                outcome.status_code,
                outcome.content_type,
                Jsonb(outcome.headers) if outcome.headers else None,
                outcome.content,
                outcome.timed_out,
                outcome.error_msg,
            ),
        )
        logger.info("pg_net %s %s -> %s", method, url, outcome.status_code or outcome.error_msg)
    return len(rows)


class PgNetWorker(threading.Thread):
    """Delivers every request queued in the database at `dsn` until stopped."""

    def __init__(
        self,
        dsn: str,
        *,
        http: httpx.Client | None = None,
        poll_interval: float = 0.5,
        batch_size: int = 200,
        max_backoff: float = 2.0,
    ) -> None:
        super().__init__(name="pg_net-worker", daemon=True)
        self.dsn = dsn
        self.http = http or httpx.Client()
        self.poll_interval = poll_interval
        self.batch_size = batch_size
        self.max_backoff = max_backoff
        self.stopping = threading.Event()
        self.connected = threading.Event()
        self.delivered = 0
        self.reconnects = 0

    def stop(self, timeout: float = 10) -> None:
        self.stopping.set()
        self.join(timeout)

    def run(self) -> None:
        backoff = 0.05
        failures = 0  # in the current outage
        while not self.stopping.is_set():
            try:
                with psycopg.connect(
                    self.dsn, autocommit=True, connect_timeout=2, application_name="pg_net worker"
                ) as conn:
                    conn.execute(f"listen {WAKE_CHANNEL}")
                    if failures:
                        logger.warning(
                            "pg_net worker: database is back after %d attempt(s), resuming",
                            failures,
                        )
                    self.connected.set()
                    backoff, failures = 0.05, 0
                    self._serve(conn)
            except psycopg.OperationalError as exc:
                self.connected.clear()
                self.reconnects += 1
                failures += 1
                # One line per outage, not one per retry.
                log = logger.warning if failures == 1 else logger.debug
                first_line = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
                log("pg_net worker: database unavailable (%s); retrying every %.2fs at most",
                    first_line, self.max_backoff)  # fmt: skip
            except Exception:  # a bug must not end delivery for good
                self.connected.clear()
                self.reconnects += 1
                failures += 1
                logger.exception("pg_net worker: unexpected error; retrying")
            self.stopping.wait(backoff)
            backoff = min(backoff * 2, self.max_backoff)

    def _serve(self, conn: psycopg.Connection[Any]) -> None:
        while not self.stopping.is_set():
            while taken := deliver_queued(conn, self.http, self.batch_size):
                self.delivered += taken
            # Woken by net.wake() (NOTIFY at commit), else poll.
            for _ in conn.notifies(timeout=self.poll_interval, stop_after=1):
                pass


@contextmanager
def running(dsn: str, **options: Any) -> Iterator[PgNetWorker]:
    """A worker for the duration of the block, connected before it yields."""
    with running_worker(PgNetWorker(dsn, **options)) as worker:
        yield worker


@contextmanager
def running_worker(worker: PgNetWorker) -> Iterator[PgNetWorker]:
    """Starts `worker`, waits until it is connected, stops it after the block."""
    worker.start()
    try:
        if not worker.connected.wait(10):
            raise RuntimeError("pg_net worker could not connect to the database")
        yield worker
    finally:
        worker.stop()
