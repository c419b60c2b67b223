"""The runbook's SQL (docs/runbook.md), run as written by the SQL editor's
`postgres` on the migrated schema (pg_cron's tables in the database pg_cron
serves): every table, column and function it names exists, and its procedures do what it
says (send what is waiting now, replay an utterance given up on, switch the
secret the database sends)."""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import psycopg
import pytest

from infra.local.cluster import CRON_DATABASE, PgCluster
from infra.local.schema import apply_schema
from tests.support.spaces import make_world, say

pytestmark = pytest.mark.db

RUNBOOK = Path(__file__).resolve().parents[2] / "docs" / "runbook.md"
NEW_SECRET = "a-new-webhook-secret-of-32-chars"


def _runbook_sql() -> tuple[list[str], list[str]]:
    """The fenced ```sql blocks, and the inline `select ...` spans."""
    text = RUNBOOK.read_text()
    blocks = re.findall(r"```sql\n(.*?)```", text, flags=re.DOTALL)
    inline = re.findall(r"`(select [^`]+)`", text)
    return blocks, inline


def _block(blocks: list[str], start: str) -> str:
    (found,) = [b for b in blocks if b.startswith(start)]
    return found


def _filled(sql: str, intention_id: str) -> str:
    return sql.replace("<intention id>", intention_id).replace("<NEW>", NEW_SECRET)


@pytest.fixture
def cron_database(pg_cluster: PgCluster) -> Iterator[psycopg.Connection[Any]]:
    """The cluster's `postgres` database with the complete schema, where
    pg_cron's job and its run details are: only read here, and the job left
    as it was found (test_bot_delivery_cron owns it)."""
    apply_schema(pg_cluster.dsn(CRON_DATABASE))
    with psycopg.connect(pg_cluster.dsn(CRON_DATABASE), autocommit=True) as admin:
        yield admin


def _delivery(admin: psycopg.Connection[Any], intention_id: str) -> tuple[str, int, int]:
    """(state, attempts, webhooks queued in pg_net for it)."""
    state, attempts = admin.execute(
        "select state, attempts from private.bot_deliveries where intention_id = %s",
        (intention_id,),
    ).fetchone() or ("gone", 0)
    bodies = admin.execute(
        "select convert_from(body, 'UTF8')::jsonb from net.http_request_queue"
    ).fetchall()
    queued = sum(1 for (body,) in bodies if body["record"] == {"id": intention_id})
    return state, attempts, queued


def test_the_runbooks_sql_names_what_exists_and_does_what_it_says(
    admin: psycopg.Connection[Any], cron_database: psycopg.Connection[Any]
) -> None:
    blocks, inline = _runbook_sql()
    assert len(blocks) >= 4, "the runbook's SQL blocks are gone"
    # Given an utterance whose webhook bot-trigger has not acknowledged
    make_world(admin)
    admin.execute(
        "insert into private.settings (key, value) values"
        " ('bot_trigger_url', 'http://127.0.0.1:9/webhooks/bot-trigger'),"
        " ('bot_trigger_secret', 'the-old-webhook-secret-16+')"
    )
    said = say(admin, "@guest", "#lounge", "is anyone there?")
    assert _delivery(admin, said) == ("pending", 1, 1)

    # "Confirm": every query runs; the backlog is the one utterance
    confirm = _block(blocks, "select public.bot_delivery_backlog();")
    backlog = admin.execute(confirm.split(";")[0]).fetchone()[0]  # type: ignore[index]
    assert backlog["pending"] == 1, backlog
    for statement in filter(str.strip, confirm.split(";")[1:]):
        # pending records, pg_net, settings; pg_cron's job where pg_cron is
        (cron_database if "cron." in statement else admin).execute(statement)

    # "To send them at once": one more webhook, now
    admin.execute(_block(blocks, "update private.bot_deliveries set next_attempt_at"))
    assert _delivery(admin, said) == ("pending", 2, 2)

    # "To replay utterances given up on": given up after six deliveries...
    admin.execute(
        "update private.bot_deliveries set state = 'failed', attempts = 6, settled_at = now()"
        " where intention_id = %s",
        (said,),
    )
    replay = _block(blocks, "update private.bot_deliveries set state = 'pending'")
    admin.execute(_filled(replay, said))
    # ...it is pending again, counted from its first new delivery, and sent
    assert _delivery(admin, said) == ("pending", 1, 3)

    # "Rotate the webhook secret", step 2: the next webhook carries the new one
    admin.execute(_filled(_block(blocks, "update private.settings"), said))
    later = say(admin, "@guest", "#lounge", "hello again")
    headers = admin.execute(
        "select headers from net.http_request_queue order by id desc limit 1"
    ).fetchone()[0]  # type: ignore[index]
    headers = headers if isinstance(headers, dict) else json.loads(headers)
    assert headers["x-webhook-secret"] == NEW_SECRET, (later, headers)

    # Every inline query runs too
    assert inline, "the runbook's inline queries are gone"
    for statement in inline:
        admin.execute(_filled(statement, said))

    # and the procedure it says to call on its own (it commits: outside any transaction)
    calls = re.findall(r"`(call [^`]+)`", RUNBOOK.read_text())
    assert calls, "the runbook's procedure call is gone"
    for statement in calls:
        admin.execute(statement)
