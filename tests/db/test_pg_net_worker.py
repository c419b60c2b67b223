"""pg_net's worker stand-in outlives a database outage (issue 14, item 11):
it logs, retries with a bounded backoff, and delivers again once PostgreSQL
is back."""

from __future__ import annotations

import logging
import shutil
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import psycopg
import pytest

from infra.dev.platform import WebhookDeliverer
from infra.local import pg_net
from infra.local.cluster import PgCluster, free_port
from infra.local.schema import apply_schema
from tests.support.webhooks import Receiver

pytestmark = pytest.mark.db


@pytest.fixture
def own_cluster() -> Iterator[PgCluster]:
    """A cluster of its own: this test stops and restarts it."""
    # Not under tmp_path: other pytest runs on this machine may clean that
    # tree up while the server (another system user) still uses it.
    root = Path(tempfile.mkdtemp(prefix="chat-tests-pg-"))
    cluster = PgCluster(root / "cluster", free_port(), durable=False)
    try:
        cluster.start()
        apply_schema(cluster.dsn())
        yield cluster
    finally:
        cluster.destroy()
        shutil.rmtree(root, ignore_errors=True)


def _post(dsn: str, url: str) -> None:
    with psycopg.connect(dsn, autocommit=True) as conn:
        conn.execute("select net.http_post(%s, '{}')", (url,))


def _make_dev_deliverer(dsn: str) -> pg_net.PgNetWorker:
    """make dev's deliverer, stopped by make dev's stop event."""
    deliverer = WebhookDeliverer(dsn, threading.Event(), interval=0.2)
    deliverer.max_backoff = 0.5
    return deliverer


@pytest.fixture(
    params=[
        pytest.param(
            lambda dsn: pg_net.PgNetWorker(dsn, poll_interval=0.2, max_backoff=0.5), id="worker"
        ),
        pytest.param(_make_dev_deliverer, id="make-dev"),
    ]
)
def make_worker(request: pytest.FixtureRequest) -> Callable[[str], pg_net.PgNetWorker]:
    factory: Callable[[str], pg_net.PgNetWorker] = request.param
    return factory


def test_the_worker_survives_a_database_restart_and_resumes(
    own_cluster: PgCluster,
    webhook_receiver: Receiver,
    caplog: pytest.LogCaptureFixture,
    make_worker: Callable[[str], pg_net.PgNetWorker],
) -> None:
    dsn = own_cluster.dsn()
    caplog.set_level(logging.WARNING, logger="pg_net")
    with pg_net.running_worker(make_worker(dsn)) as worker:
        # Given the worker is delivering
        _post(dsn, webhook_receiver.url + "/before")
        webhook_receiver.wait_for(1)

        # When PostgreSQL goes down for a while and comes back
        own_cluster.stop()
        time.sleep(1.5)
        assert worker.is_alive()
        own_cluster.start()

        # Then the worker reconnects on its own and delivers what is queued next
        _post(dsn, webhook_receiver.url + "/after")
        assert [r.path for r in webhook_receiver.wait_for(2, timeout=10)] == ["/before", "/after"]
        assert worker.reconnects >= 1
    logged = [r.getMessage() for r in caplog.records]
    assert sum("database unavailable" in m for m in logged) == 1  # one line per outage
    assert any("database is back" in m for m in logged)
