"""make dev's queue through SQS's own JSON API (infra/dev/sqs.py), as the
functions reach it from their own process and `make invoke` from sls: jobs
sent land in the queue, and a received job's retry is delayed as the worker
asks (ChangeMessageVisibility)."""

from __future__ import annotations

import json
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler
from typing import Any, ClassVar

import httpx
import pytest

from infra.dev import sqs
from infra.dev.platform import LocalSqs, QueueSettings
from shared.queue import SqsQueue
from tests.support.loopback import serve

pytestmark = pytest.mark.unit


class _Api(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    queue: ClassVar[SqsQueue]

    def log_message(self, *_: object) -> None:
        pass

    def do_POST(self) -> None:
        sqs.answer(self, lambda: type(self).queue)


@pytest.fixture
def local(aws_credentials: None) -> Iterator[tuple[LocalSqs, str]]:
    queue = LocalSqs(QueueSettings(visibility_timeout=60)).start()
    _Api.queue = SqsQueue(queue.client, queue.url)
    try:
        with serve(_Api) as url:
            yield queue, f"{url}{sqs.PATH}"
    finally:
        queue.stop()


def call(endpoint: str, action: str, **body: Any) -> httpx.Response:
    return httpx.post(endpoint, content=json.dumps(body), timeout=10, headers={
        "X-Amz-Target": f"AmazonSQS.{action}", "Content-Type": "application/x-amz-json-1.0"})  # fmt: skip


def received(queue: LocalSqs) -> list[dict[str, Any]]:
    messages: list[dict[str, Any]] = queue.client.receive_message(
        QueueUrl=queue.url, MaxNumberOfMessages=10, WaitTimeSeconds=0
    ).get("Messages", [])
    return messages


def test_jobs_sent_through_the_api_land_in_the_queue_and_a_retry_is_delayed(
    local: tuple[LocalSqs, str],
) -> None:
    queue, endpoint = local
    url = f"http://127.0.0.1/local/sqs{sqs.QUEUE_PATH}"
    entries = [{"Id": "0", "MessageBody": "job-a"}, {"Id": "1", "MessageBody": "job-b"}]
    sent = call(endpoint, "SendMessageBatch", QueueUrl=url, Entries=entries)
    assert sent.status_code == 200, sent.text
    assert [e["Id"] for e in sent.json()["Successful"]] == ["0", "1"]

    # A received job is invisible for the queue's 60 s, unless the worker
    # asks for its retry sooner
    jobs = received(queue)
    assert sorted(m["Body"] for m in jobs) == ["job-a", "job-b"]
    retry = next(m for m in jobs if m["Body"] == "job-a")
    delayed = call(endpoint, "ChangeMessageVisibility", QueueUrl=url,
                   ReceiptHandle=retry["ReceiptHandle"], VisibilityTimeout=0)  # fmt: skip
    assert delayed.status_code == 200, delayed.text
    assert [m["Body"] for m in received(queue)] == ["job-a"]


def test_another_queue_or_a_bad_receipt_is_refused_as_sqs_refuses_it(
    local: tuple[LocalSqs, str],
) -> None:
    _, endpoint = local
    other = call(endpoint, "SendMessage", QueueUrl="http://127.0.0.1/1/other", MessageBody="x")
    assert (other.status_code, other.json()["__type"]) == (
        400, "com.amazonaws.sqs#QueueDoesNotExist"
    )  # fmt: skip
    url = f"http://127.0.0.1/local/sqs{sqs.QUEUE_PATH}"
    bad = call(endpoint, "ChangeMessageVisibility", QueueUrl=url,
               ReceiptHandle="not-a-receipt", VisibilityTimeout=5)  # fmt: skip
    assert bad.status_code == 400
    assert bad.json()["__type"] == "com.amazonaws.sqs#ReceiptHandleIsInvalid"
    missing = call(endpoint, "ChangeMessageVisibility", QueueUrl=url, VisibilityTimeout=5)
    assert (missing.status_code, missing.json()["__type"]) == (
        400, "com.amazonaws.sqs#MissingParameter"
    )  # fmt: skip
