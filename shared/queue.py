"""The job queue (SQS), sent to in batches of at most 10."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Protocol

from shared.errors import ServiceUnavailable

SQS_BATCH = 10


class JobQueue(Protocol):
    def send(self, bodies: Sequence[str]) -> None:
        """Enqueues every body or raises ServiceUnavailable."""
        ...


class SqsQueue:
    def __init__(self, client: Any, url: str) -> None:
        self._client = client
        self._url = url

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
