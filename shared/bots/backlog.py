"""The undelivered-utterance backlog as metrics: bot-trigger's scheduled
job (EventBridge, every minute, serverless.yml) asks the database once
(`bot_delivery_backlog`, service role only) and writes what it says:
UndeliveredUtterances (records bot-trigger has not acknowledged),
OldestUndeliveredAge (seconds; 0 when there are none), DeliveriesFailed and
DeliveriesUnreadable (given up on, or set aside, in the last hour).

Measured from AWS on a schedule, not by the webhook itself: when webhooks
stop reaching bot-trigger, bot-trigger is exactly what cannot report it.
"""

from __future__ import annotations

import logging
from typing import Any

from shared import metrics
from shared.auth.principal import SERVICE
from shared.db.port import Database
from shared.errors import ServiceUnavailable

logger = logging.getLogger(__name__)


def report_backlog(db: Database) -> dict[str, Any]:
    """Records the backlog's metrics and returns what the database said, or
    {"error": code} when it could not be asked (then no backlog metric is
    written: its alarm treats a missing minute as breaching)."""
    try:
        backlog: dict[str, Any] = db.call("bot_delivery_backlog", {}, SERVICE)
    except ServiceUnavailable as exc:
        metrics.dependency_failed(exc.code)
        logger.warning("backlog not measured: %s", exc.code, extra={"error_code": exc.code})
        return {"error": exc.code}
    metrics.count("UndeliveredUtterances", int(backlog["pending"]))
    metrics.seconds("OldestUndeliveredAge", float(backlog["oldest_pending_seconds"]))
    metrics.count("DeliveriesFailed", int(backlog["failed_last_hour"]))
    metrics.count("DeliveriesUnreadable", int(backlog["unreadable_last_hour"]))
    logger.info("undelivered utterances: %s", backlog["pending"], extra={"backlog": backlog})
    return backlog
