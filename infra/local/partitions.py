"""realtime.messages' daily partitions, made as the Realtime server makes
them (see platform_local.maintain_realtime_partitions in 030_realtime.sql).

The schema build calls it once; anything that runs for days (make dev)
should call `maintain_realtime_partitions` again at least daily, as the
Realtime server's janitor does.
"""

from __future__ import annotations

import psycopg

from infra.local.cluster import BOOTSTRAP_SUPERUSER
from infra.local.schema import as_role


def maintain_realtime_partitions(dsn: str) -> list[str]:
    """Creates the missing partitions (yesterday to three days ahead, UTC),
    drops those older than three days; returns the names it created."""
    with psycopg.connect(as_role(dsn, BOOTSTRAP_SUPERUSER), autocommit=True) as conn:
        rows = conn.execute("select platform_local.maintain_realtime_partitions()").fetchall()
    return [str(row[0]) for row in rows]
