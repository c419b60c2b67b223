"""bot-trigger's domain: from a webhook payload to one job per bot."""

from __future__ import annotations

from typing import NamedTuple

from shared.auth.principal import SERVICE
from shared.bots.models import BotJob, WebhookPayload
from shared.db.port import Database
from shared.queue import JobQueue


class TriggerResult(NamedTuple):
    queued: int = 0
    ignored: str | None = None


def jobs_for(payload: WebhookPayload, db: Database) -> tuple[list[BotJob], str | None]:
    """The jobs to send, or why there are none."""
    record = payload.record
    if (payload.type, payload.schema_, payload.table) != ("INSERT", "public", "intentions"):
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
    jobs, ignored = jobs_for(payload, db)
    if ignored:
        return TriggerResult(ignored=ignored)
    if jobs:
        queue.send([job.model_dump_json() for job in jobs])
    return TriggerResult(queued=len(jobs))
