"""bot worker: SQS jobs, each a bot answering an utterance. Returns
`batchItemFailures` so only the failed records are retried."""

from __future__ import annotations

from typing import Any

from aws_lambda_powertools.utilities.batch import (
    BatchProcessor,
    EventType,
    process_partial_response,
)
from aws_lambda_powertools.utilities.batch.types import PartialItemFailureResponse
from aws_lambda_powertools.utilities.data_classes.sqs_event import SQSRecord

from shared import container, init_gc, snapstart
from shared.bots.models import BotJob
from shared.bots.worker import answer
from shared.llm.client import ChatModel, EchoModel, OpenAICompatible
from shared.logs import get_logger
from shared.tracing import traced

container.configured(container.bot_worker_settings)  # fail at cold start, naming it

logger = get_logger("bot-worker")
processor = BatchProcessor(event_type=EventType.SQS, raise_on_entire_batch_failure=False)


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
    )


def record_handler(record: SQSRecord) -> str:
    config = container.bot_worker_settings()
    logger.set_correlation_id(record.message_id)
    job = BotJob.model_validate_json(record.body)
    receives = int(record.attributes.approximate_receive_count or 1)
    outcome = answer(
        job,
        container.database(),
        model_for,
        history=config.bot_history,
        interval=config.stream_write_interval_seconds,
        final_attempt=receives >= config.bot_max_receives,
    )
    logger.info("job done", extra={"bot_id": job.bot_id, "outcome": outcome.status})
    return outcome.status


def _handle(event: dict[str, Any], context: Any) -> PartialItemFailureResponse:
    return process_partial_response(
        event=event, record_handler=record_handler, processor=processor, context=context
    )


PRIMING_EVENT = {
    "Records": [
        {
            "messageId": "snapstart-priming",
            "receiptHandle": "snapstart-priming",
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
    return _handle(PRIMING_EVENT, None)


if snapstart.enabled():
    prime()
handler = traced(_handle, "bot-worker")
init_gc.resume()  # last: tracing's imports (when on) are init's too
