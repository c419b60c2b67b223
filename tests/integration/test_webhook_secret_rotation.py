"""Rotating the webhook secret without losing a webhook (docs/runbook.md):
bot-trigger first accepts the new secret beside the old (WEBHOOK_SECRET
"new,old"), then the database is switched to the new one, then the old is
dropped. Every utterance written along the way reaches the queue at its
first delivery, through the real SQL and pg_net's worker."""

from __future__ import annotations

import logging
from typing import Any

import psycopg
import pytest

from shared import container
from shared.bots.settings import BotTriggerSettings
from shared.errors import ConfigurationError
from shared.settings import load
from tests.integration import test_bot_pipeline as bot_pipeline
from tests.support.events import LambdaContext, parse
from tests.support.pipeline import deliver_webhooks, webhook_event
from tests.support.spaces import make_world, say

pytestmark = pytest.mark.integration

adapter, llm, queues, pipeline = (
    bot_pipeline.adapter,
    bot_pipeline.llm,
    bot_pipeline.queues,
    bot_pipeline.pipeline,
)
Handler = bot_pipeline.Handler
OLD = bot_pipeline.SECRET
NEW = "the-new-webhook-secret-after-rotation"


def _bot_trigger_accepts(monkeypatch: pytest.MonkeyPatch, secrets: str) -> None:
    """bot-trigger's containers recycled with WEBHOOK_SECRET = `secrets`."""
    monkeypatch.setenv("WEBHOOK_SECRET", secrets)
    container.reset()


def _database_sends(admin: psycopg.Connection[Any], secret: str) -> None:
    admin.execute(
        "update private.settings set value = %s where key = 'bot_trigger_secret'", (secret,)
    )


def test_rotating_in_the_documented_order_loses_no_webhook(
    pipeline: tuple[Handler, Handler],
    admin: psycopg.Connection[Any],
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.INFO)
    make_world(admin)
    trigger = pipeline[0]

    def first_delivery(text: str) -> tuple[int, bool]:
        """Writes an utterance; bot-trigger's answer to its first webhook, and
        whether bot-trigger said an older secret was used."""
        caplog.clear()
        say(admin, "@guest", "#lounge", text)
        [result] = deliver_webhooks(admin, trigger)
        older = any(getattr(r, "event", None) == "webhook_older_secret" for r in caplog.records)
        return result.status, older

    # Before: both sides have the old secret
    assert first_delivery("before") == (202, False)
    # 1. bot-trigger accepts the new secret first, the old one still
    _bot_trigger_accepts(monkeypatch, f"{NEW},{OLD}")
    assert first_delivery("during, database still old") == (202, True)
    # 2. the database sends the new one
    _database_sends(admin, NEW)
    assert first_delivery("during, database new") == (202, False)
    # 3. the old one is dropped
    _bot_trigger_accepts(monkeypatch, NEW)
    assert first_delivery("after") == (202, False)

    # Nothing is waiting for redelivery, and the old secret is refused now
    assert admin.execute(
        "select count(*) from private.bot_deliveries where state = 'pending'"
    ).fetchone() == (0,)
    stale = webhook_event({"type": "INSERT"}, {"x-webhook-secret": OLD})
    assert parse(trigger(stale, LambdaContext())).error_code == "invalid_webhook_secret"


def test_switching_the_database_first_is_refused_until_redelivery(
    pipeline: tuple[Handler, Handler], admin: psycopg.Connection[Any]
) -> None:
    # The wrong order: the database sends a secret bot-trigger does not know yet
    make_world(admin)
    _database_sends(admin, NEW)
    say(admin, "@guest", "#lounge", "too early")
    [result] = deliver_webhooks(admin, pipeline[0])
    # Then the webhook is refused, and its record waits for a redelivery
    assert (result.status, result.error_code) == (401, "invalid_webhook_secret")
    assert admin.execute(
        "select count(*) from private.bot_deliveries where state = 'pending'"
    ).fetchone() == (1,)


@pytest.mark.parametrize("secrets", [f"{NEW},", f"{NEW},short", ","])
def test_every_accepted_secret_must_be_strong(
    monkeypatch: pytest.MonkeyPatch, secrets: str
) -> None:
    monkeypatch.setenv("WEBHOOK_SECRET", secrets)
    monkeypatch.setenv("BOT_QUEUE_URL", "https://sqs.eu-west-1.amazonaws.com/1/q")
    with pytest.raises(ConfigurationError, match="WEBHOOK_SECRET"):
        load(BotTriggerSettings)
