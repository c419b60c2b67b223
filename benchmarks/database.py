"""A private PostgreSQL cluster with the complete schema, for one benchmark."""

from __future__ import annotations

import shutil
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from infra.local.cluster import PgCluster, free_port
from infra.local.schema import apply_schema


@contextmanager
def schema_cluster(prefix: str) -> Iterator[PgCluster]:
    """Started (durable, as a project's database is), the stand-ins and the
    migrations applied; stopped and removed afterwards."""
    root = Path(tempfile.mkdtemp(prefix=prefix))
    cluster = PgCluster(root / "cluster", free_port())
    cluster.start()
    try:
        apply_schema(cluster.dsn())
        yield cluster
    finally:
        cluster.stop()
        shutil.rmtree(root, ignore_errors=True)
