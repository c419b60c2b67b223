"""The parts of the platform that plain Postgres and a laptop lack, played
by small local loops: pg_net's delivery of queued webhooks, and a queue in
place of SQS that feeds the worker as the event source mapping does."""

from __future__ import annotations

import json
import logging
import queue
import threading
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import httpx
import psycopg

logger = logging.getLogger("dev")


class WebhookDeliverer(threading.Thread):
    """Drains net.http_request_queue and POSTs each request, recording the
    response in net._http_response as pg_net does."""

    def __init__(self, dsn: str, stop: threading.Event, interval: float = 0.1) -> None:
        super().__init__(name="webhooks", daemon=True)
        self.dsn = dsn
        self.stop_event = stop
        self.interval = interval

    def run(self) -> None:
        with psycopg.connect(self.dsn, autocommit=True) as conn, httpx.Client() as http:
            while not self.stop_event.wait(self.interval):
                rows = conn.execute(
                    "delete from net.http_request_queue returning id, method, url, headers, body,"
                    " timeout_milliseconds"
                ).fetchall()
                for request_id, method, url, headers, body, timeout_ms in sorted(rows):
                    status, content, error = None, None, None
                    try:
                        response = http.request(method, url, headers=headers, content=body,
                                                timeout=timeout_ms / 1000)  # fmt: skip
                        status, content = response.status_code, response.text
                    except httpx.HTTPError as exc:
                        error = type(exc).__name__
                    conn.execute(
                        "insert into net._http_response (id, status_code, content, timed_out, error_msg)"
                        " values (%s, %s, %s, %s, %s)",
                        (request_id, status, content, error == "ReadTimeout", error),
                    )
                    logger.info("webhook %s %s -> %s", method, url, status or error)


@dataclass
class _Message:
    body: str
    message_id: str
    receives: int = 0


class LocalQueue:
    """Stands in for SQS: bot-trigger sends here, a thread feeds the worker
    batches of SQS-shaped records and redelivers failures up to
    `max_receives` times, then keeps them as dead letters."""

    def __init__(self, worker: Callable[[dict[str, Any], Any], Any], max_receives: int = 3) -> None:
        self._queue: queue.Queue[_Message] = queue.Queue()
        self._worker = worker
        self._max_receives = max_receives
        self.dead_letters: list[str] = []

    def send(self, bodies: Sequence[str]) -> None:
        for body in bodies:
            self._queue.put(_Message(body, str(uuid.uuid4())))

    def run(self, stop: threading.Event) -> None:
        while not stop.is_set():
            try:
                message = self._queue.get(timeout=0.2)
            except queue.Empty:
                continue
            message.receives += 1
            record = {
                "messageId": message.message_id, "receiptHandle": message.message_id,
                "body": message.body, "attributes": {"ApproximateReceiveCount": str(message.receives)},
                "messageAttributes": {}, "md5OfBody": "", "eventSource": "aws:sqs",
                "eventSourceARN": "arn:aws:sqs:local:000000000000:bot-jobs", "awsRegion": "local",
            }  # fmt: skip
            try:
                response = self._worker({"Records": [record]}, None)
                failed = bool(response.get("batchItemFailures"))
            except Exception:  # the worker crashing is a failed record too
                logger.exception("worker crashed")
                failed = True
            if failed and message.receives < self._max_receives:
                self._queue.put(message)
            elif failed:
                self.dead_letters.append(message.body)
                logger.warning("job moved to the dead letters: %s", json.loads(message.body))
