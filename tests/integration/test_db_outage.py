"""A database outage with the direct adapter: while PostgreSQL is down every
request fails fast with 503 and Retry-After; the first request after it is
back succeeds. On a cluster of its own, stopped and started by the test."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from pathlib import Path

import psycopg
import pytest

from infra.local.cluster import PgCluster, free_port
from infra.local.schema import apply_schema
from shared import container
from tests.integration.conftest import Invoke
from tests.support.database import create_user
from tests.support.events import HttpResult

pytestmark = pytest.mark.integration

FAST = 1.0  # seconds; pg_net gives a webhook 5
RECOVERED = 3.0  # seconds from the database's return to the first answer


@pytest.fixture
def own_cluster(tmp_path: Path) -> Iterator[PgCluster]:
    cluster = PgCluster(tmp_path / "pg", free_port(), durable=False)
    try:
        cluster.start()
        apply_schema(cluster.dsn())
        yield cluster
    finally:
        cluster.destroy()


@pytest.mark.parametrize("adapter", ["direct"], indirect=True)
def test_an_outage_fails_fast_and_recovery_is_immediate(
    thread_ensure: Invoke,
    own_cluster: PgCluster,
    bearer: Callable[..., dict[str, str]],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    with psycopg.connect(own_cluster.dsn(), autocommit=True) as admin:
        amy = create_user(admin, "amy")
        create_user(admin, "bob")
    monkeypatch.setenv("DATABASE_URL", own_cluster.dsn(user="authenticator"))
    monkeypatch.setenv("DATABASE_TIMEOUT_SECONDS", "5")
    container.reset()

    def ensure() -> tuple[HttpResult, float]:
        started = time.monotonic()
        result = thread_ensure(
            "POST", "/chat/threads/ensure", body={"other_mongo_id": "bob"}, headers=bearer(amy)
        )
        return result, time.monotonic() - started

    # Given a warm container with a pooled connection
    assert ensure()[0].status == 200
    # A restart between two requests costs no error: the stale connection is replaced
    own_cluster.stop()
    own_cluster.start()
    assert ensure()[0].status == 200

    # When the database goes down, every request fails fast and says when to retry
    own_cluster.stop()
    down_since = time.monotonic()
    while time.monotonic() - down_since < 8:
        result, took = ensure()
        assert (result.status, result.error_code) == (503, "database_unavailable")
        assert 1 <= int(result.headers["retry-after"]) <= 5
        assert took < FAST, took
        time.sleep(0.5)

    # Then, when it is back, the first request is answered
    own_cluster.start()
    result, took = ensure()
    assert result.status == 200, result.body
    assert took < RECOVERED, took
    # And so is every one after
    assert all(ensure()[0].status == 200 for _ in range(3))
