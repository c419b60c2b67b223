"""Session-wide private PostgreSQL cluster; a fresh database per test.

Roles as on hosted Supabase: `admin` is `postgres` (what the dashboard and
`supabase db push` use, not a superuser); `superuser` is the platform's
`supabase_admin`, for tests that must play the platform itself.
"""

from __future__ import annotations

import itertools
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import psycopg
import pytest

from infra.local import pg_net
from infra.local.cluster import BOOTSTRAP_SUPERUSER, PgCluster, free_port
from infra.local.schema import apply_schema
from tests.support.webhooks import Receiver

TEMPLATE = "chat_template"
_counter = itertools.count()


@pytest.fixture(scope="session")
def pg_cluster() -> Iterator[PgCluster]:
    root = Path(tempfile.mkdtemp(prefix="chat-tests-pg-"))
    cluster = PgCluster(root / "cluster", free_port(), durable=False)
    try:
        cluster.start()
        with psycopg.connect(cluster.dsn(user=BOOTSTRAP_SUPERUSER), autocommit=True) as conn:
            conn.execute(f"create database {TEMPLATE}")
        # Stand-ins as the superuser, migrations as postgres; also makes
        # realtime.messages' partitions around today, which every copy keeps.
        apply_schema(cluster.dsn(TEMPLATE))
        yield cluster
    finally:
        cluster.stop()
        shutil.rmtree(root, ignore_errors=True)


@pytest.fixture
def database(pg_cluster: PgCluster) -> Iterator[str]:
    """The name of a fresh database with the complete schema, dropped afterwards."""
    name = f"test_{next(_counter)}"
    with psycopg.connect(pg_cluster.dsn(), autocommit=True) as conn:
        conn.execute(f"create database {name} template {TEMPLATE}")
    yield name
    # As the superuser: only it may end the sessions other roles (authenticator,
    # the PostgREST stand-in's pool) still hold on the database.
    with psycopg.connect(pg_cluster.dsn(user=BOOTSTRAP_SUPERUSER), autocommit=True) as conn:
        conn.execute(f"drop database {name} with (force)")


@pytest.fixture
def admin_dsn(pg_cluster: PgCluster, database: str) -> str:
    return pg_cluster.dsn(database)


@pytest.fixture
def authenticator_dsn(pg_cluster: PgCluster, database: str) -> str:
    """How PostgREST connects: as authenticator, switching role per request."""
    return pg_cluster.dsn(database, user="authenticator")


@pytest.fixture
def admin(admin_dsn: str) -> Iterator[psycopg.Connection[Any]]:
    with psycopg.connect(admin_dsn, autocommit=True) as conn:
        yield conn


@pytest.fixture
def superuser(pg_cluster: PgCluster, database: str) -> Iterator[psycopg.Connection[Any]]:
    """The platform's bootstrap superuser, for tests that play the platform."""
    with psycopg.connect(
        pg_cluster.dsn(database, user=BOOTSTRAP_SUPERUSER), autocommit=True
    ) as conn:
        yield conn


@pytest.fixture
def webhook_receiver() -> Iterator[Receiver]:
    """A loopback HTTP endpoint that records what it is sent."""
    with Receiver().serving() as receiver:
        yield receiver


@pytest.fixture
def pg_net_worker(admin_dsn: str) -> Iterator[pg_net.PgNetWorker]:
    """pg_net's worker on this test's database: queued requests go out at once."""
    with pg_net.running(admin_dsn, poll_interval=0.2) as worker:
        yield worker


@pytest.fixture
def api(authenticator_dsn: str) -> Iterator[psycopg.Connection[Any]]:
    with psycopg.connect(authenticator_dsn, autocommit=True) as conn:
        yield conn


@pytest.fixture
def aws_credentials(monkeypatch: pytest.MonkeyPatch) -> None:
    """Fake credentials for moto: nothing can reach a real AWS account."""
    for name, value in {
        "AWS_DEFAULT_REGION": "eu-west-1",
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
    }.items():
        monkeypatch.setenv(name, value)
