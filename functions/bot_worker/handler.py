"""bot worker: SQS jobs, each a bot answering an utterance. Returns
`batchItemFailures` so only the failed records are retried, each after the
delay its receive count calls for (BOT_RETRY_DELAYS), not after the queue's
visibility timeout.

Time: the model's reply must be complete FINISH_RESERVE_SECONDS before the
function's own timeout, and LLM_TIMEOUT_SECONDS after it started at most,
so every attempt has the time to close its reply, write its error notice
and delay its retry (README, "Deploy")."""

from __future__ import annotations

import contextvars
import logging
import time
from typing import Any

from aws_lambda_powertools.utilities.batch import (
    BatchProcessor,
    EventType,
    process_partial_response,
)
from aws_lambda_powertools.utilities.batch.types import PartialItemFailureResponse
from aws_lambda_powertools.utilities.data_classes.sqs_event import SQSRecord
from pydantic import ValidationError

from shared import container, init_gc, logs, metrics, snapstart
from shared.bots.models import BotJob
from shared.bots.worker import RetryLater, answer
from shared.errors import ServiceUnavailable
from shared.llm.client import ChatModel, EchoModel, OpenAICompatible
from shared.logs import get_logger
from shared.queue import SqsQueue, queue_url
from shared.tracing import traced

container.configured(container.bot_worker_settings)  # fail at cold start, naming it

logger = get_logger("bot-worker")
errors = logging.getLogger(__name__)
processor = BatchProcessor(event_type=EventType.SQS, raise_on_entire_batch_failure=False)
PRIMING_MESSAGE_ID = "snapstart-priming"  # SnapStart's synthetic job (`prime`)


def model_for(bot_key: str | None) -> ChatModel:
    config = container.bot_worker_settings()
    default = config.openrouter_api_key.get_secret_value() if config.openrouter_api_key else None
    key = bot_key or default
    if not key:
        return EchoModel(config.echo_word_delay_seconds)
    return OpenAICompatible(
        config.llm_base_url,
        key,
        container.llm_http(),
        deadline_seconds=config.llm_timeout_seconds,
        max_tokens=config.bot_max_reply_tokens,
        max_tokens_parameter=config.llm_max_tokens_parameter,
    )


FINISH_RESERVE_SECONDS = 20.0


def deadline_for(lambda_context: Any) -> float:
    """When the model's reply must be complete (time.monotonic())."""
    config = container.bot_worker_settings()
    budget = config.llm_timeout_seconds
    if lambda_context is not None:
        left = lambda_context.get_remaining_time_in_millis() / 1000 - FINISH_RESERVE_SECONDS
        budget = max(min(budget, left), 1.0)
    return time.monotonic() + budget


def retry_in(record: SQSRecord, seconds: int) -> None:
    """The failed message comes back in `seconds`; if the queue cannot be
    told, it comes back after its visibility timeout instead."""
    url = container.bot_worker_settings().bot_queue_url or queue_url(record.event_source_arn)
    try:
        SqsQueue(container.sqs(), url).delay(record.receipt_handle, seconds)
    except ServiceUnavailable:
        logger.warning("retry not delayed: the queue's visibility timeout applies")


def record_handler(record: SQSRecord, lambda_context: Any = None) -> str:
    config = container.bot_worker_settings()
    logger.set_correlation_id(record.message_id)
    receives = int(record.attributes.approximate_receive_count or 1)
    try:
        job = BotJob.model_validate_json(record.body)
    except ValidationError:
        # Never readable, so never answered: it fails each receive (no delay
        # asked, no other call made) and reaches the dead-letter queue after
        # maxReceiveCount, for an operator to see. SnapStart's priming job is
        # unreadable on purpose: at every init, so neither an error nor counted.
        if record.message_id == PRIMING_MESSAGE_ID:
            errors.debug("unreadable job %s (receive %d)", record.message_id, receives)
        else:
            errors.error("unreadable job %s (receive %d)", record.message_id, receives)
            metrics.count("JobsUnreadable")
        raise
    try:
        outcome = answer(
            job,
            container.database(),
            model_for,
            history=config.bot_history,
            prompt_bytes=config.bot_prompt_max_bytes,
            interval=config.stream_write_interval_seconds,
            final_attempt=receives >= config.bot_max_receives,
            deadline=deadline_for(lambda_context),
        )
    except (RetryLater, ServiceUnavailable) as exc:
        delay = config.retry_delay(receives, getattr(exc, "retry_after", None))
        logger.warning(
            f"job failed, retried in {delay}s",
            extra={"bot_id": job.bot_id, "receives": receives, "error": str(exc)},
        )
        retry_in(record, delay)
        raise
    except Exception:
        # Unforeseen (a bug, a reply the database refuses): retried like a
        # provider failure; the last attempt has written the error notice
        # (shared.bots.worker), so this one failed writing it too.
        delay = config.retry_delay(receives)
        errors.error(
            "job %s failed (bot %s, utterance %s, receive %d): retried in %ds",
            record.message_id, job.bot_id, job.trigger_id, receives, delay, exc_info=True,
            extra={"bot_id": job.bot_id, "trigger_id": job.trigger_id, "receives": receives},
        )  # fmt: skip
        retry_in(record, delay)
        raise
    logger.info("job done", extra={"bot_id": job.bot_id, "outcome": outcome.status})
    return outcome.status


def _process(event: dict[str, Any], context: Any) -> PartialItemFailureResponse:
    # The metrics line is written when the batch (one job) is done, with the
    # job's message id as its correlation id.
    with logs.invocation("bot-worker", None), metrics.collecting("bot-worker"):
        return process_partial_response(
            event=event, record_handler=record_handler, processor=processor, context=context
        )


def _handle(event: dict[str, Any], context: Any) -> PartialItemFailureResponse:
    # In a copy of the context: the correlation id each record sets
    # (shared.logs) ends with the invocation.
    return contextvars.copy_context().run(_process, event, context)


PRIMING_EVENT = {
    "Records": [
        {
            "messageId": PRIMING_MESSAGE_ID,
            "receiptHandle": PRIMING_MESSAGE_ID,
            "body": "{}",  # not a job: refused by validation, before any I/O
            "attributes": {"ApproximateReceiveCount": "1"},
            "messageAttributes": {},
            "md5OfBody": "",
            "eventSource": "aws:sqs",
            "eventSourceARN": "arn:aws:sqs:us-east-1:000000000000:snapstart-priming",
            "awsRegion": "us-east-1",
        }
    ]
}


def prime() -> PartialItemFailureResponse:
    """SnapStart: the clients built and one synthetic, invalid job run through
    the batch processor and the job model (it fails before the database)."""
    container.database()
    container.llm_http()
    with metrics.suppressed():
        return _handle(PRIMING_EVENT, None)


if snapstart.enabled():
    prime()
handler = traced(_handle, "bot-worker")
init_gc.resume()  # last: tracing's imports (when on) are init's too
