"""make dev's queue is SQS (moto's) fed to the worker as Lambda's event
source mapping does: what the worker sees locally is what it sees on AWS."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable, Iterator
from typing import Any

import pytest

from infra.dev.platform import EventSourceMapping, LocalSqs, QueueSettings
from shared.queue import SqsQueue, queue_url

pytestmark = pytest.mark.unit

Handler = Callable[[dict[str, Any], Any], Any]


class Worker:
    """A function behind the mapping: records what it is given; the test says
    how each body fares."""

    def __init__(self, sqs: LocalSqs) -> None:
        self.sqs = sqs
        self.seen: list[tuple[str, int, float]] = []  # body, receive count, when
        self.fail: set[str] = set()
        self.delay_failed: int | None = None
        self.gates: dict[str, threading.Event] = {}
        self.crash = False
        self._lock = threading.Lock()

    def __call__(self, event: dict[str, Any], context: Any) -> dict[str, Any]:
        assert context.get_remaining_time_in_millis() > 0
        failures = []
        for record in event["Records"]:
            body = record["body"]
            with self._lock:
                self.seen.append(
                    (body, int(record["attributes"]["ApproximateReceiveCount"]), time.monotonic())
                )
            if self.crash:
                self.crash = False  # once
                raise RuntimeError("worker crashed")
            gate = self.gates.get(body)
            if gate is not None:
                gate.wait(10)
            if body in self.fail:
                if self.delay_failed is not None:
                    # the worker finds its queue from the record, as on AWS
                    url = queue_url(record["eventSourceARN"])
                    SqsQueue(self.sqs.client, url).delay(record["receiptHandle"], self.delay_failed)
                failures.append({"itemIdentifier": record["messageId"]})
        return {"batchItemFailures": failures}

    def bodies(self) -> list[str]:
        with self._lock:
            return [body for body, _, _ in self.seen]

    def wait(self, condition: Callable[[], bool], timeout: float = 20) -> None:
        deadline = time.monotonic() + timeout
        while not condition():
            assert time.monotonic() < deadline, self.seen
            time.sleep(0.02)


@pytest.fixture
def stack(aws_credentials: None) -> Iterator[tuple[LocalSqs, Worker, threading.Event]]:
    settings = QueueSettings(visibility_timeout=2, max_receives=3, concurrency=2)
    sqs = LocalSqs(settings).start()
    worker = Worker(sqs)
    stop = threading.Event()
    mapping = EventSourceMapping(sqs, worker, stop)
    mapping.start()
    try:
        yield sqs, worker, stop
    finally:
        for gate in worker.gates.values():
            gate.set()
        stop.set()
        mapping.join(10)
        sqs.stop()


def _send(sqs: LocalSqs, *bodies: str) -> None:
    SqsQueue(sqs.client, sqs.url).send(list(bodies))


def _in_queue(sqs: LocalSqs, url: str) -> int:
    attributes = sqs.client.get_queue_attributes(QueueUrl=url, AttributeNames=["All"])
    values = attributes["Attributes"]
    return int(values["ApproximateNumberOfMessages"]) + int(
        values["ApproximateNumberOfMessagesNotVisible"]
    )


def test_a_job_that_succeeds_is_handed_over_once_and_deleted(
    stack: tuple[LocalSqs, Worker, threading.Event],
) -> None:
    sqs, worker, _ = stack
    _send(sqs, "job-1")
    worker.wait(lambda: worker.bodies() == ["job-1"])
    worker.wait(lambda: _in_queue(sqs, sqs.url) == 0)
    assert worker.seen[0][1] == 1
    time.sleep(2.5)  # past the visibility timeout: it does not come back
    assert worker.bodies() == ["job-1"]


def test_a_failed_job_comes_back_after_the_delay_it_asked_for_then_goes_to_the_dead_letters(
    stack: tuple[LocalSqs, Worker, threading.Event],
) -> None:
    sqs, worker, _ = stack
    worker.fail = {"doomed"}
    worker.delay_failed = 1  # the worker's ChangeMessageVisibility, not the queue's 2 s
    _send(sqs, "doomed")
    # maxReceiveCount: the worker's 3 attempts and 2 receives to spare
    worker.wait(lambda: len(worker.seen) == 5)
    counts = [count for _, count, _ in worker.seen]
    gaps = [b[2] - a[2] for a, b in zip(worker.seen, worker.seen[1:], strict=False)]
    assert counts == [1, 2, 3, 4, 5]
    assert all(0.9 <= gap < 2.0 for gap in gaps), gaps
    # maxReceiveCount reached: SQS moves it to the dead-letter queue, never to the worker again
    worker.wait(lambda: sqs.dead_letters() == 1)
    assert len(worker.seen) == 5
    [dead] = sqs.client.receive_message(QueueUrl=sqs.dead_letter_url)["Messages"]
    assert dead["Body"] == "doomed"


def test_one_stuck_job_does_not_hold_up_the_others(
    stack: tuple[LocalSqs, Worker, threading.Event],
) -> None:
    sqs, worker, _ = stack
    worker.gates["stuck"] = threading.Event()
    _send(sqs, "stuck")
    worker.wait(lambda: worker.bodies() == ["stuck"])
    _send(sqs, "next", "and-next")
    worker.wait(lambda: sorted(worker.bodies()) == ["and-next", "next", "stuck"])
    worker.gates["stuck"].set()
    worker.wait(lambda: _in_queue(sqs, sqs.url) == 0)


def test_a_crashed_invocation_returns_its_batch_after_the_visibility_timeout(
    stack: tuple[LocalSqs, Worker, threading.Event],
) -> None:
    sqs, worker, _ = stack
    worker.crash = True
    _send(sqs, json.dumps({"any": "job"}))
    worker.wait(lambda: len(worker.seen) == 2)
    (_, first, crashed), (_, second, again) = worker.seen
    assert (first, second) == (1, 2)
    assert again - crashed >= 1.9  # the queue's VisibilityTimeout (2 s)
    worker.wait(lambda: _in_queue(sqs, sqs.url) == 0)


def test_a_queue_url_from_its_arn() -> None:
    assert (
        queue_url("arn:aws:sqs:eu-west-1:123456789012:chat-functions-prod-BotQueue-x1")
        == "https://sqs.eu-west-1.amazonaws.com/123456789012/chat-functions-prod-BotQueue-x1"
    )
    assert (
        queue_url("arn:aws-cn:sqs:cn-north-1:1:q") == "https://sqs.cn-north-1.amazonaws.com.cn/1/q"
    )
    with pytest.raises(ValueError, match="not an SQS queue ARN"):
        queue_url("arn:aws:sns:eu-west-1:1:topic")
