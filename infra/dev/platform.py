"""The parts of the platform that plain Postgres and a laptop lack, played
by small local loops: pg_net's delivery of queued webhooks, pg_cron's
schedule of the webhook redelivery, and SQS with Lambda's event source
mapping feeding the worker.

SQS is moto's (in this process): the same SqsQueue code as on AWS sends,
delays and deletes, with SQS's visibility timeout, receive count and
redrive to a dead-letter queue. The event source mapping is played here as
Lambda documents it: long polling, batches, several invocations at once,
partial batch responses (the records that succeeded are deleted, the
failed ones come back when their visibility ends), a whole batch back when
the function fails."""

from __future__ import annotations

import json
import logging
import threading
import time
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

import psycopg

from infra.local.pg_net import PgNetWorker
from shared.bots.settings import SPARE_RECEIVES

logger = logging.getLogger("dev")

Handler = Callable[[dict[str, Any], Any], Any]


class WebhookDeliverer(PgNetWorker):
    """pg_net's worker for make dev (infra/local/pg_net.py): delivers each
    queued webhook at once, records the response, and survives database
    outages. Stops with make dev's stop event."""

    def __init__(self, dsn: str, stop: threading.Event, interval: float = 0.5) -> None:
        super().__init__(dsn, poll_interval=interval)
        self.name = "webhooks"
        self.stopping = stop


class Redeliverer(threading.Thread):
    """Runs the webhook redelivery (private.redeliver_bot_webhooks) every
    `every` seconds, as pg_cron does every minute on hosted Supabase (and
    also does in make dev's database): the same SQL function, on a shorter
    period. A database outage only delays the next run."""

    def __init__(self, dsn: str, stop: threading.Event, every: float = 2.0) -> None:
        super().__init__(name="redelivery", daemon=True)
        self.dsn = dsn
        self.stopping = stop
        self.every = every
        self.runs = 0

    def run(self) -> None:
        while not self.stopping.wait(self.every):
            self.run_once()

    def run_once(self) -> dict[str, int] | None:
        try:
            with psycopg.connect(self.dsn, autocommit=True, connect_timeout=2) as conn:
                row = conn.execute("select private.redeliver_bot_webhooks()").fetchone()
        except psycopg.Error as exc:
            logger.warning("webhook redelivery skipped: %s", str(exc).strip().splitlines()[0])
            return None
        self.runs += 1
        done: dict[str, int] = row[0] if row else {}
        if any(done.values()):
            logger.warning("webhook redelivery: %s", json.dumps(done))
        return done


def sqs_event(messages: Sequence[dict[str, Any]], queue_arn: str) -> dict[str, Any]:
    """ReceiveMessage's messages as Lambda hands them to the function."""
    region = queue_arn.split(":")[3]
    return {
        "Records": [
            {
                "messageId": m["MessageId"],
                "receiptHandle": m["ReceiptHandle"],
                "body": m["Body"],
                "attributes": {k: str(v) for k, v in m.get("Attributes", {}).items()},
                "messageAttributes": {},
                "md5OfBody": m["MD5OfBody"],
                "eventSource": "aws:sqs",
                "eventSourceARN": queue_arn,
                "awsRegion": region,
            }
            for m in messages
        ]
    }


@dataclass
class LambdaContext:
    """What the worker reads of Lambda's context: the time it has left."""

    timeout_seconds: float
    function_name: str = "bot-worker"
    memory_limit_in_mb: int = 512
    invoked_function_arn: str = "arn:aws:lambda:local:000000000000:function:bot-worker"
    aws_request_id: str = "local"
    started: float = field(default_factory=time.monotonic)

    def get_remaining_time_in_millis(self) -> int:
        return max(int((self.started + self.timeout_seconds - time.monotonic()) * 1000), 0)


@dataclass(frozen=True)
class QueueSettings:
    """The queue and its mapping, as serverless.yml sets them on AWS; make dev
    scales them down."""

    visibility_timeout: int = 90
    max_receives: int = 5  # BOT_MAX_RECEIVES: the worker's last attempt
    # maxReceiveCount = max_receives + spare_receives (shared.bots.settings)
    spare_receives: int = SPARE_RECEIVES
    batch_size: int = 1
    concurrency: int = 4
    function_timeout: float = 90.0


class LocalSqs:
    """The bot queue and its dead-letter queue in moto's SQS (in this
    process: `start()` patches boto3 for the whole process, as make dev wants)."""

    def __init__(self, settings: QueueSettings, region: str = "eu-west-1") -> None:
        self.settings = settings
        self.region = region
        self._mock: Any = None
        self.client: Any = None
        self.url = self.arn = self.dead_letter_url = ""

    def start(self) -> LocalSqs:
        import boto3
        from moto import mock_aws

        self._mock = mock_aws()
        self._mock.start()
        self.client = boto3.client("sqs", region_name=self.region)
        self.dead_letter_url = self.client.create_queue(QueueName="bot-jobs-dlq")["QueueUrl"]
        dead_letter_arn = self._arn(self.dead_letter_url)
        redrive = {
            "deadLetterTargetArn": dead_letter_arn,
            "maxReceiveCount": str(self.settings.max_receives + self.settings.spare_receives),
        }
        self.url = self.client.create_queue(
            QueueName="bot-jobs",
            Attributes={
                "VisibilityTimeout": str(self.settings.visibility_timeout),
                "RedrivePolicy": json.dumps(redrive),
            },
        )["QueueUrl"]
        self.arn = self._arn(self.url)
        return self

    def stop(self) -> None:
        if self._mock is not None:
            self._mock.stop()
            self._mock = None

    def dead_letters(self) -> int:
        attributes = self.client.get_queue_attributes(
            QueueUrl=self.dead_letter_url, AttributeNames=["ApproximateNumberOfMessages"]
        )["Attributes"]
        return int(attributes["ApproximateNumberOfMessages"])

    def _arn(self, url: str) -> str:
        attributes = self.client.get_queue_attributes(QueueUrl=url, AttributeNames=["QueueArn"])
        return str(attributes["Attributes"]["QueueArn"])


class EventSourceMapping(threading.Thread):
    """Lambda's SQS event source mapping, played for make dev and the tests:
    up to `concurrency` invocations at once, each of up to `batch_size`
    records, so one stuck job never holds up the others."""

    def __init__(self, sqs: LocalSqs, handler: Handler, stop: threading.Event) -> None:
        super().__init__(name="event-source-mapping", daemon=True)
        self.sqs = sqs
        self.handler = handler
        self.stopping = stop
        self.settings = sqs.settings
        self._slots = threading.Semaphore(self.settings.concurrency)
        self.invocations = 0
        self._dead_letters = 0

    def run(self) -> None:
        with ThreadPoolExecutor(self.settings.concurrency, thread_name_prefix="bot-worker") as pool:
            while not self.stopping.is_set():
                if not self._slots.acquire(timeout=0.2):
                    continue
                try:
                    messages = self._receive()
                except Exception:  # moto or a bug: keep polling, as Lambda's poller does
                    logger.exception("receiving jobs failed")
                    messages = []
                if not messages:
                    self._slots.release()
                    self._report_dead_letters()
                    continue
                pool.submit(self._invoke, messages)

    def _receive(self) -> list[dict[str, Any]]:
        received = self.sqs.client.receive_message(
            QueueUrl=self.sqs.url,
            MaxNumberOfMessages=self.settings.batch_size,
            WaitTimeSeconds=1,
            AttributeNames=["All"],
        )
        messages: list[dict[str, Any]] = received.get("Messages", [])
        return messages

    def _invoke(self, messages: list[dict[str, Any]]) -> None:
        try:
            self.invocations += 1
            event = sqs_event(messages, self.sqs.arn)
            try:
                response = self.handler(event, LambdaContext(self.settings.function_timeout))
                failed = {
                    f["itemIdentifier"] for f in (response or {}).get("batchItemFailures", [])
                }
            except Exception:  # a function error: the whole batch comes back
                logger.exception(
                    "the worker failed: its batch returns after the visibility timeout"
                )
                return
            done = [m for m in messages if m["MessageId"] not in failed]
            if done:
                self.sqs.client.delete_message_batch(
                    QueueUrl=self.sqs.url,
                    Entries=[
                        {"Id": str(i), "ReceiptHandle": m["ReceiptHandle"]}
                        for i, m in enumerate(done)
                    ],
                )
        finally:
            self._slots.release()

    def _report_dead_letters(self) -> None:
        count = self.sqs.dead_letters()
        if count > self._dead_letters:
            logger.warning("%d job(s) in the dead-letter queue (bot-jobs-dlq)", count)
        self._dead_letters = count
