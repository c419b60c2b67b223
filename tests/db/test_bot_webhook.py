"""The database webhook that hands new utterances to bot-trigger."""

from __future__ import annotations

import json
from typing import Any

import psycopg
import pytest

from tests.support.spaces import make_world, say

pytestmark = pytest.mark.db


def _configure(admin: psycopg.Connection[Any]) -> None:
    admin.execute(
        "insert into private.settings (key, value) values"
        " ('bot_trigger_url', 'http://127.0.0.1:9/webhooks/bot-trigger'),"
        " ('bot_trigger_secret', 's3cret')"
    )


def _queued(admin: psycopg.Connection[Any]) -> list[tuple[Any, ...]]:
    return admin.execute(
        "select method, url, headers, convert_from(body, 'UTF8')::jsonb, timeout_milliseconds"
        " from net.http_request_queue order by id"
    ).fetchall()


def test_an_utterance_queues_one_webhook_with_secret_and_payload(
    admin: psycopg.Connection[Any],
) -> None:
    make_world(admin)
    _configure(admin)

    said = say(admin, "@guest", "#lounge", "hi bots")

    queued = _queued(admin)
    assert len(queued) == 1
    method, url, headers, body, _ = queued[0]
    assert (method, url) == ("POST", "http://127.0.0.1:9/webhooks/bot-trigger")
    assert headers == {"Content-Type": "application/json", "x-webhook-secret": "s3cret"}
    assert (body["type"], body["schema"], body["table"]) == ("INSERT", "public", "intentions")
    assert body["old_record"] is None
    assert body["record"]["id"] == said
    assert body["record"]["content"] == {"text": "hi bots"}


def test_non_utterances_and_bot_speech_queue_nothing(admin: psycopg.Connection[Any]) -> None:
    make_world(admin)
    _configure(admin)
    say(admin, "@guest", "#lounge", "oops", type_="error")
    say(admin, "@echo", "#lounge", "a bot speaking")
    assert _queued(admin) == []


def test_unconfigured_webhook_queues_nothing_and_the_insert_succeeds(
    admin: psycopg.Connection[Any],
) -> None:
    make_world(admin)
    notices: list[str] = []
    admin.add_notice_handler(lambda diag: notices.append(str(diag.message_primary)))
    said = say(admin, "@guest", "#lounge", "anyone?")
    assert admin.execute(
        "select count(*) from public.intentions where id = %s", (said,)
    ).fetchone() == (1,)
    assert _queued(admin) == []
    assert any("not configured" in n for n in notices)


def test_header_name_is_configurable(admin: psycopg.Connection[Any]) -> None:
    make_world(admin)
    _configure(admin)
    admin.execute("insert into private.settings values ('bot_trigger_secret_header', 'x-hook-key')")
    say(admin, "@guest", "#lounge", "hi")
    assert json.dumps(_queued(admin)[0][2], sort_keys=True) == json.dumps(
        {"Content-Type": "application/json", "x-hook-key": "s3cret"}, sort_keys=True
    )
