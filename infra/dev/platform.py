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

from infra.local.pg_net import PgNetWorker

logger = logging.getLogger("dev")


class WebhookDeliverer(PgNetWorker):
    """pg_net's worker for make dev (infra/local/pg_net.py): delivers each
    queued webhook at once, records the response, and survives database
    outages. Stops with make dev's stop event."""

    def __init__(self, dsn: str, stop: threading.Event, interval: float = 0.5) -> None:
        super().__init__(dsn, poll_interval=interval)
        self.name = "webhooks"
        self.stopping = stop


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
