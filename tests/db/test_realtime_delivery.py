"""The delivery stand-in notifies ids, never row contents, for Realtime's
broadcasts and for every table in the publication supabase_realtime (whose
changes it stages, as the WAL would record them)."""

from __future__ import annotations

import json
from typing import Any

import psycopg
import pytest

pytestmark = pytest.mark.db


def _notifications(conn: psycopg.Connection[Any], expected: int) -> list[tuple[str, Any]]:
    return [
        (n.channel, json.loads(n.payload)) for n in conn.notifies(timeout=2, stop_after=expected)
    ]


def test_a_broadcast_row_notifies_its_id_and_topic_only(admin: psycopg.Connection[Any]) -> None:
    admin.execute("listen local_realtime_broadcast")
    admin.execute("select realtime.send('{\"secret\": \"body\"}', 'ping', 'room:1')")
    [(channel, payload)] = _notifications(admin, 1)
    row = admin.execute("select id::text from realtime.messages where topic = 'room:1'").fetchone()
    assert row is not None
    assert channel == "local_realtime_broadcast"
    assert payload == {"id": row[0], "topic": "room:1"}


def test_a_rolled_back_probe_notifies_nothing(admin: psycopg.Connection[Any]) -> None:
    # Realtime's join check inserts probes and rolls back: no delivery may follow.
    admin.execute("listen local_realtime_broadcast")
    with admin.transaction(force_rollback=True):
        admin.execute(
            "insert into realtime.messages (topic, extension) values ('room:2', 'broadcast')"
        )
    assert _notifications(admin, 1) == []


def test_changes_stage_each_version_for_tables_that_join_the_publication_later(
    admin: psycopg.Connection[Any], superuser: psycopg.Connection[Any]
) -> None:
    # Given a table created after the stand-ins, then added to the publication
    admin.execute("create table public.notes (a int, b text, body text, primary key (a, b))")
    admin.execute("insert into public.notes values (1, 'x', 'before')")
    admin.execute("alter publication supabase_realtime add table public.notes")
    admin.execute("listen local_realtime_changes")

    # When rows change, twice within one transaction
    with admin.transaction():
        admin.execute("insert into public.notes values (2, 'y', 'secret')")
        admin.execute("update public.notes set body = 'edited' where a = 2")
    admin.execute("delete from public.notes where a = 2")

    # Then each change notifies a staged id only (a notification holds 8000 bytes)
    notified = _notifications(admin, 3)
    assert [(c, list(p)) for c, p in notified] == [("local_realtime_changes", ["id"])] * 3

    # And the staged change holds the row as that change wrote it
    def taken(staged: int) -> dict[str, Any]:
        [(change,)] = superuser.execute("select local_realtime.take_change(%s)", (staged,))
        return {k: v for k, v in change.items() if k != "commit_timestamp"}

    base = {"schema": "public", "table": "notes", "keys": {"a": 2, "b": "y"}}
    assert [taken(p["id"]) for _, p in notified] == [
        {**base, "type": "INSERT", "record": {"a": 2, "b": "y", "body": "secret"}},
        {**base, "type": "UPDATE", "record": {"a": 2, "b": "y", "body": "edited"}},
        {**base, "type": "DELETE", "record": None},
    ]
    # taken once: nothing stays staged
    assert superuser.execute("select count(*) from local_realtime.staged_changes").fetchone() == (
        0,
    )

    # And a table that leaves the publication stops notifying
    admin.execute("alter publication supabase_realtime drop table public.notes")
    admin.execute("insert into public.notes values (3, 'z', 'quiet')")
    assert _notifications(admin, 1) == []


def test_rows_in_any_daily_partition_of_realtime_messages_notify(
    admin: psycopg.Connection[Any],
) -> None:
    # Given realtime.messages partitioned by day, as on hosted Supabase
    [(kind,)] = admin.execute(
        "select c.relkind::text from pg_class c where c.oid = 'realtime.messages'::regclass"
    ).fetchall()
    assert kind == "p"
    admin.execute("listen local_realtime_broadcast")

    # When rows land in today's partition and in tomorrow's
    admin.execute(
        "insert into realtime.messages (topic, extension, inserted_at) values"
        " ('a', 'broadcast', now()), ('b', 'broadcast', now() + interval '1 day')"
    )

    # Then the one trigger on the parent notifies both
    assert [p["topic"] for _, p in _notifications(admin, 2)] == ["a", "b"]
