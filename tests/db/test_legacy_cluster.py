"""make dev's data from before the hosted-like roles cannot be converted
(PostgreSQL never demotes its bootstrap superuser): the schema build refuses
it with the fix, instead of failing somewhere in a migration."""

from __future__ import annotations

import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from infra.local import cluster as cluster_module
from infra.local.cluster import PgCluster, free_port
from infra.local.schema import LegacyClusterError, apply_schema

pytestmark = pytest.mark.db


@pytest.fixture
def legacy_cluster(monkeypatch: pytest.MonkeyPatch) -> Iterator[PgCluster]:
    # Not under tmp_path: other pytest runs on this machine may clean that
    # tree up while the server (another system user) still uses it.
    root = Path(tempfile.mkdtemp(prefix="chat-tests-pg-"))
    cluster = PgCluster(root / "cluster", free_port(), durable=False)
    with monkeypatch.context() as patched:
        # initdb'd as before: postgres is the bootstrap superuser
        patched.setattr(cluster_module, "BOOTSTRAP_SUPERUSER", "postgres")
        cluster.init()
    try:
        cluster.start()
        yield cluster
    finally:
        cluster.destroy()
        shutil.rmtree(root, ignore_errors=True)


def test_a_cluster_made_with_postgres_as_superuser_is_refused_with_the_fix(
    legacy_cluster: PgCluster,
) -> None:
    with pytest.raises(LegacyClusterError, match="make dev-reset"):
        apply_schema(legacy_cluster.dsn())
