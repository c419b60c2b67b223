"""bot-trigger's domain: from a webhook payload to one job per bot.

Counted (shared.metrics): WebhooksReceived, JobsQueued, RecordsSkipped
(a webhook with nothing to answer), and DatabaseUnavailable when the
delivery could not be acknowledged."""

from __future__ import annotations

import logging
from typing import NamedTuple

from shared import metrics
from shared.auth.principal import SERVICE
from shared.bots.models import BotJob, WebhookPayload
from shared.db.port import Database
from shared.errors import ServiceUnavailable
from shared.queue import JobQueue

logger = logging.getLogger(__name__)


class TriggerResult(NamedTuple):
    queued: int = 0
    ignored: str | None = None


def _is_new_intention(payload: WebhookPayload) -> bool:
    return (payload.type, payload.schema_, payload.table) == ("INSERT", "public", "intentions")


def jobs_for(payload: WebhookPayload, db: Database) -> tuple[list[BotJob], str | None]:
    """The jobs to send, or why there are none."""
    record = payload.record
    if not _is_new_intention(payload):
        return [], "not an insert into public.intentions"
    if record is None:
        return [], "no record"
    # The row is read back from the database: the payload only names it.
    found = db.call("bots_for_utterance", {"_intention_id": record.id}, SERVICE)
    if not found.get("found"):
        return [], "intention not found"
    if found.get("type") != "utterance":
        return [], "not an utterance"
    if found.get("speaker_is_bot"):
        return [], "spoken by a bot"
    space = str(found["space_id"])
    return [
        BotJob(bot_id=str(b["id"]), space_id=space, trigger_id=record.id) for b in found["bots"]
    ], None


def trigger(payload: WebhookPayload, db: Database, queue: JobQueue) -> TriggerResult:
    """Queues the jobs, then acknowledges the utterance's delivery record so the
    database stops re-sending it. Nothing is acknowledged before the queue has
    the jobs: a failure on the way leaves the record due, and the database
    sends the webhook again. Only the insert's own webhook acknowledges: any
    other event naming the row (an UPDATE from a webhook set to all events)
    is ignored and leaves the record due."""
    metrics.count("WebhooksReceived")
    jobs, ignored = jobs_for(payload, db)
    if jobs:
        queue.send([job.model_dump_json() for job in jobs])
        metrics.count("JobsQueued", len(jobs))
    if payload.record is not None and _is_new_intention(payload):
        _acknowledge(db, payload.record.id)
    if ignored:
        metrics.count("RecordsSkipped")
        return TriggerResult(ignored=ignored)
    return TriggerResult(queued=len(jobs))


def _acknowledge(db: Database, intention_id: str) -> None:
    try:
        db.call("ack_bot_delivery", {"_intention_id": intention_id}, SERVICE)
    except ServiceUnavailable as exc:
        metrics.dependency_failed(exc.code)
        # The jobs are queued: the database will send the webhook again and
        # the duplicate jobs find the replies already written (one per bot).
        logger.warning(
            "delivery of %s not acknowledged (%s): it will be sent again", intention_id, exc.code
        )
