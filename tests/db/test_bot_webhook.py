"""The database webhook that hands new utterances to bot-trigger, delivered
by pg_net's worker to a loopback receiver."""

from __future__ import annotations

import json
from typing import Any

import psycopg
import pytest

from infra.local.pg_net import PgNetWorker
from tests.support.database import warnings_of
from tests.support.spaces import make_world, say
from tests.support.webhooks import Receiver, responses

pytestmark = pytest.mark.db


def _configure(admin: psycopg.Connection[Any], url: str) -> None:
    admin.execute(
        "insert into private.settings (key, value) values"
        " ('bot_trigger_url', %s), ('bot_trigger_secret', 's3cret')",
        (url + "/webhooks/bot-trigger",),
    )


def _stored(admin: psycopg.Connection[Any], intention_id: str) -> bool:
    row = admin.execute("select count(*) from public.intentions where id = %s", (intention_id,))
    return row.fetchone() == (1,)


def test_an_utterance_is_posted_once_with_the_secret_and_only_its_identity(
    admin: psycopg.Connection[Any], webhook_receiver: Receiver, pg_net_worker: PgNetWorker
) -> None:
    # Given a configured webhook
    make_world(admin)
    _configure(admin, webhook_receiver.url)

    # When a user speaks
    said = say(admin, "@guest", "#lounge", "hi bots")

    # Then bot-trigger receives one POST in Supabase's webhook shape, naming the row only
    [request] = webhook_receiver.wait_for(1)
    assert (request.method, request.path) == ("POST", "/webhooks/bot-trigger")
    assert request.headers["content-type"] == "application/json"
    assert request.headers["x-webhook-secret"] == "s3cret"
    assert request.json() == {
        "type": "INSERT",
        "table": "intentions",
        "schema": "public",
        "record": {"id": said},
        "old_record": None,
    }
    # And pg_net records the response
    assert [r[1] for r in responses(admin, 1)] == [200]


def test_the_webhook_size_does_not_grow_with_the_utterance(
    admin: psycopg.Connection[Any], webhook_receiver: Receiver, pg_net_worker: PgNetWorker
) -> None:
    # Given a short and a long utterance (the long one well past what a
    # whole-row body could carry in a small request)
    make_world(admin)
    _configure(admin, webhook_receiver.url)
    short = say(admin, "@guest", "#lounge", "hi")
    long = say(admin, "@guest", "#lounge", "x" * 15_000)

    # Then both webhooks are the same few bytes, naming the row only
    small, big = webhook_receiver.wait_for(2)
    assert [small.json()["record"], big.json()["record"]] == [{"id": short}, {"id": long}]
    assert len(big.body) == len(small.body) < 200


def test_non_utterances_and_bot_speech_are_not_posted(
    admin: psycopg.Connection[Any], webhook_receiver: Receiver, pg_net_worker: PgNetWorker
) -> None:
    make_world(admin)
    _configure(admin, webhook_receiver.url)
    say(admin, "@guest", "#lounge", "oops", type_="error")
    say(admin, "@echo", "#lounge", "a bot speaking")
    said = say(admin, "@guest", "#lounge", "a person speaking")
    webhook_receiver.wait_for(1)
    assert len(responses(admin, 1)) == 1
    assert [r.json()["record"]["id"] for r in webhook_receiver.received] == [said]


def test_unconfigured_webhook_posts_nothing_and_the_insert_succeeds(
    admin: psycopg.Connection[Any], webhook_receiver: Receiver, pg_net_worker: PgNetWorker
) -> None:
    make_world(admin)
    warnings = warnings_of(admin)
    said = say(admin, "@guest", "#lounge", "anyone?")
    assert _stored(admin, said)
    assert any("not configured" in w for w in warnings)
    admin.execute("select net.http_get(%s)", (webhook_receiver.url + "/after",))
    assert [r.path for r in webhook_receiver.wait_for(1)] == ["/after"]


def test_header_name_is_configurable(
    admin: psycopg.Connection[Any], webhook_receiver: Receiver, pg_net_worker: PgNetWorker
) -> None:
    make_world(admin)
    _configure(admin, webhook_receiver.url)
    admin.execute("insert into private.settings values ('bot_trigger_secret_header', 'x-hook-key')")
    say(admin, "@guest", "#lounge", "hi")
    [request] = webhook_receiver.wait_for(1)
    assert request.headers["x-hook-key"] == "s3cret"
    assert "x-webhook-secret" not in request.headers


def test_without_pg_net_the_utterance_is_kept_and_a_warning_logged(
    admin: psycopg.Connection[Any],
) -> None:
    # Given the webhook is configured on a project where pg_net is off
    make_world(admin)
    _configure(admin, "http://127.0.0.1:9")
    admin.execute("drop extension pg_net")
    warnings = warnings_of(admin)

    # When a user speaks, the insert commits and says why nothing was sent
    said = say(admin, "@guest", "#lounge", "is this lost?")
    assert _stored(admin, said)
    assert any(
        "bot webhook not queued" in w and 'schema "net" does not exist' in w for w in warnings
    )


def test_a_malformed_url_keeps_the_utterance_and_logs_a_warning(
    admin: psycopg.Connection[Any],
) -> None:
    make_world(admin)
    admin.execute(
        "insert into private.settings (key, value) values"
        " ('bot_trigger_url', 'not a url'), ('bot_trigger_secret', 's3cret')"
    )
    warnings = warnings_of(admin)
    said = say(admin, "@guest", "#lounge", "still here?")
    assert _stored(admin, said)
    assert any("invalid URL" in w for w in warnings)
    assert json.dumps(warnings).count("s3cret") == 0
