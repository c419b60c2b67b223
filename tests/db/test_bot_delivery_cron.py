"""The redelivery runs on the real pg_cron (Debian's postgresql-15-cron),
scheduled by the migration itself in the database pg_cron serves, as on
hosted Supabase (where that is the project's `postgres` database)."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import psycopg
import pytest

from infra.local import pg_net
from infra.local.cluster import CRON_DATABASE, PgCluster
from infra.local.schema import apply_schema
from tests.support.spaces import make_world, say
from tests.support.webhooks import Receiver

pytestmark = pytest.mark.db

COMMAND = "call private.redeliver_all_bot_webhooks()"


@pytest.fixture
def cron_database(pg_cluster: PgCluster) -> Iterator[psycopg.Connection[Any]]:
    """The cluster's `postgres` database with the complete schema: the one
    database where pg_cron may be created (cron.database_name)."""
    apply_schema(pg_cluster.dsn(CRON_DATABASE))
    with psycopg.connect(pg_cluster.dsn(CRON_DATABASE), autocommit=True) as admin:
        yield admin
        admin.execute("select cron.unschedule('redeliver-bot-webhooks')")


def test_the_migration_schedules_the_redelivery_and_pg_cron_runs_it(
    pg_cluster: PgCluster, cron_database: psycopg.Connection[Any], webhook_receiver: Receiver
) -> None:
    admin = cron_database
    # The migration created pg_cron as postgres and scheduled the job, every minute
    jobs = admin.execute(
        "select schedule, command, username, database, active from cron.job"
    ).fetchall()
    assert jobs == [("* * * * *", COMMAND, "postgres", CRON_DATABASE, True)]
    # as on hosted: created as the superuser, postgres granted the schema and
    # only select on cron.job (Supabase's grant_pg_cron_access)
    rights = admin.execute(
        "select e.extowner::regrole::text, has_schema_privilege('postgres', 'cron', 'usage'),"
        " has_table_privilege('postgres', 'cron.job', 'select'),"
        " has_table_privilege('postgres', 'cron.job', 'insert')"
        " from pg_extension e where e.extname = 'pg_cron'"
    ).fetchone()
    assert rights == ("supabase_admin", True, True, False)

    # Given bot-trigger answering 503, and redelivery due at once
    webhook_receiver.status = 503
    make_world(admin)
    admin.execute(
        "insert into private.settings (key, value) values ('bot_trigger_url', %s),"
        " ('bot_trigger_secret', 's3cret'), ('bot_delivery_retry_seconds', '0')",
        (webhook_receiver.url + "/webhooks/bot-trigger",),
    )
    with pg_net.running(pg_cluster.dsn(CRON_DATABASE), poll_interval=0.2):
        # When a user speaks, the first webhook fails
        said = say(admin, "@guest", "#lounge", "hello bots")
        [first] = webhook_receiver.wait_for(1)
        assert first.json()["record"] == {"id": said}

        # Then pg_cron's next run (at the next minute) sends it again
        _, second = webhook_receiver.wait_for(2, timeout=150)
    assert second.body == first.body
    runs = admin.execute(
        "select status from cron.job_run_details where command = %s", (COMMAND,)
    ).fetchall()
    assert ("succeeded",) in runs
    attempts = admin.execute(
        "select attempts, last_error from private.bot_deliveries where intention_id = %s", (said,)
    ).fetchone()
    assert attempts is not None
    assert attempts[0] >= 2
    assert attempts[1] == "bot-trigger answered 503"


def test_no_other_database_gets_the_job(admin: psycopg.Connection[Any]) -> None:
    # A test's own database (a copy of the template) has no pg_cron: whoever
    # runs such a database calls the function on its own schedule
    assert admin.execute(
        "select count(*) from pg_extension where extname = 'pg_cron'"
    ).fetchone() == (0,)
    assert admin.execute(COMMAND).fetchone() == (
        {"sent": 0, "gave_up": 0, "set_aside": 0, "failed": 0, "batches": 1},
    )
