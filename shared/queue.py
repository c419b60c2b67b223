"""The job queue (SQS): sent to in batches of at most 10; a received job
that failed is delayed (its visibility changed) so the retry comes after a
chosen wait, not after the queue's whole visibility timeout."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Protocol

from shared.errors import ServiceUnavailable

SQS_BATCH = 10


class JobQueue(Protocol):
    def send(self, bodies: Sequence[str]) -> None:
        """Enqueues every body or raises ServiceUnavailable."""
        ...


def sqs_client() -> Any:
    """boto3's SQS client with timeouts that fit inside a function's own (its
    defaults wait a minute per attempt)."""
    import boto3
    from botocore.config import Config

    config = Config(
        connect_timeout=2, read_timeout=5, retries={"mode": "standard", "max_attempts": 2}
    )
    return boto3.client("sqs", config=config)


def queue_url(queue_arn: str) -> str:
    """A queue's URL from its ARN (arn:<partition>:sqs:<region>:<account>:<name>),
    as Lambda's SQS events name the queue: the worker needs no setting, and no
    call, to reach the queue its jobs came from."""
    parts = queue_arn.split(":")
    if len(parts) != 6 or parts[2] != "sqs":
        raise ValueError(f"not an SQS queue ARN: {queue_arn!r}")
    _, partition, _, region, account, name = parts
    domain = "amazonaws.com.cn" if partition == "aws-cn" else "amazonaws.com"
    return f"https://sqs.{region}.{domain}/{account}/{name}"


class SqsQueue:
    def __init__(self, client: Any, url: str) -> None:
        self._client = client
        self._url = url

    def delay(self, receipt_handle: str, seconds: int) -> None:
        """The received message comes back after `seconds` (ChangeMessageVisibility)."""
        from botocore.exceptions import BotoCoreError, ClientError

        try:
            self._client.change_message_visibility(
                QueueUrl=self._url, ReceiptHandle=receipt_handle, VisibilityTimeout=seconds
            )
        except (BotoCoreError, ClientError) as exc:
            raise ServiceUnavailable(
                "the job queue refused the new visibility", code="queue_unavailable"
            ) from exc

    def send(self, bodies: Sequence[str]) -> None:
        from botocore.exceptions import BotoCoreError, ClientError

        for start in range(0, len(bodies), SQS_BATCH):
            batch = bodies[start : start + SQS_BATCH]
            entries = [{"Id": str(i), "MessageBody": body} for i, body in enumerate(batch)]
            try:
                result = self._client.send_message_batch(QueueUrl=self._url, Entries=entries)
            except (BotoCoreError, ClientError) as exc:
                raise ServiceUnavailable(
                    "the job queue refused the jobs", code="queue_unavailable"
                ) from exc
            if result.get("Failed"):
                raise ServiceUnavailable(
                    f"the job queue refused {len(result['Failed'])} jobs", code="queue_unavailable"
                )
