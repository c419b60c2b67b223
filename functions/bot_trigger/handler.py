"""bot-trigger: POST /webhooks/bot-trigger, the database webhook for new
utterances. Validates and enqueues one job per bot; the slow part is the
worker's (a webhook waits a second or two and pg_net never retries).
On its EventBridge schedule (every minute) it reports the backlog of
utterances it has not acknowledged (shared/bots/backlog.py)."""

from __future__ import annotations

import hmac
import logging
from collections.abc import Sequence
from typing import Annotated, Any

from fastapi import Depends, Request
from fastapi.responses import JSONResponse
from pydantic import ValidationError

from shared import container
from shared.bots.backlog import report_backlog
from shared.bots.models import WebhookPayload
from shared.bots.trigger import trigger
from shared.errors import BadRequest, Unauthorized
from shared.http.app import create_app, lambda_handler

# Fail at cold start, naming any bad setting; the database client built in init.
container.configured(container.bot_trigger_settings, container.database)

app = create_app("bot-trigger", methods="POST")
logger = logging.getLogger(__name__)


async def webhook_secret(request: Request) -> None:
    """The shared secret, compared in constant time with each accepted one
    (during a rotation, the new and the old: README, docs/runbook.md)."""
    config = container.bot_trigger_settings()
    sent = request.headers.get(config.webhook_secret_header, "").encode()
    matches = [hmac.compare_digest(sent, secret.encode()) for secret in config.webhook_secrets]
    if not any(matches):
        raise Unauthorized("wrong or missing webhook secret", code="invalid_webhook_secret")
    if not matches[0]:
        logger.info(
            "webhook sent with an older accepted secret: the database still has it",
            extra={"event": "webhook_older_secret"},
        )


class _Queue:
    """The SQS client is built (and boto3 imported, ~150 ms) only when there
    is a job to send: a webhook for a space without bots never pays it."""

    def send(self, bodies: Sequence[str]) -> None:
        container.queue().send(bodies)


@app.post("/webhooks/bot-trigger", status_code=202)
async def bot_trigger(request: Request, _: Annotated[None, Depends(webhook_secret)]) -> Any:
    """Queues one job per bot in the utterance's space: 202 {"queued": n}."""
    try:
        payload = WebhookPayload.model_validate_json(await request.body())
    except ValidationError as exc:
        fields = ", ".join(
            sorted({".".join(str(p) for p in e["loc"]) or "body" for e in exc.errors()})
        )
        raise BadRequest(f"invalid webhook payload: {fields}", code="invalid_payload") from None
    result = trigger(payload, container.database(), _Queue())
    if result.ignored:
        return JSONResponse({"ignored": result.ignored}, status_code=200)
    return {"queued": result.queued}


handler = lambda_handler(
    app,
    prime_also=[container.queue],
    scheduled=lambda: report_backlog(container.database()),
)
