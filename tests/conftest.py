"""Session-wide private PostgreSQL cluster; a fresh database per test."""

from __future__ import annotations

import itertools
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import psycopg
import pytest

from infra.local.cluster import PgCluster, free_port
from infra.local.schema import apply_schema

TEMPLATE = "chat_template"
_counter = itertools.count()


@pytest.fixture(scope="session")
def pg_cluster() -> Iterator[PgCluster]:
    root = Path(tempfile.mkdtemp(prefix="chat-tests-pg-"))
    cluster = PgCluster(root / "cluster", free_port(), durable=False)
    try:
        cluster.start()
        with psycopg.connect(cluster.dsn(), autocommit=True) as conn:
            conn.execute(f"create database {TEMPLATE}")
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
    with psycopg.connect(pg_cluster.dsn(), autocommit=True) as conn:
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
