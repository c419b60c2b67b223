"""An operator with large tables builds migration 20261203000400's two
indexes CONCURRENTLY before `db push` (README, Deploy): the migration then
keeps them instead of locking the tables to build its own, and refuses an
index a failed concurrent build left INVALID, or another index under the
name, rather than run without the one it needs."""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest

from infra.local.cluster import BOOTSTRAP_SUPERUSER, PgCluster
from infra.local.schema import apply_schema

pytestmark = pytest.mark.db

README = Path(__file__).resolve().parents[2] / "README.md"
MIGRATION = "20261203000400"
INDEXES = ("chat_messages_unread_idx", "intentions_location_history_idx")
DATABASE = "index_precreation"


def readme_statements() -> list[str]:
    """The README's CREATE INDEX CONCURRENTLY statements, as an operator copies them."""
    found = re.findall(r"create index concurrently .*?;", README.read_text(), re.DOTALL)
    assert len(found) == len(INDEXES), found
    return found


@pytest.fixture
def before_the_indexes(pg_cluster: PgCluster) -> Iterator[str]:
    """A project's database as it was before migration 20261203000400."""
    name = DATABASE
    with psycopg.connect(pg_cluster.dsn(user=BOOTSTRAP_SUPERUSER), autocommit=True) as conn:
        conn.execute(f"drop database if exists {name} with (force)")
        conn.execute(f"create database {name}")
    apply_schema(pg_cluster.dsn(name), before=MIGRATION)
    yield pg_cluster.dsn(name)
    with psycopg.connect(pg_cluster.dsn(user=BOOTSTRAP_SUPERUSER), autocommit=True) as conn:
        conn.execute(f"drop database {name} with (force)")


def _build_concurrently(dsn: str) -> None:
    with psycopg.connect(dsn, autocommit=True) as conn:  # as postgres, as on hosted
        for statement in readme_statements():
            conn.execute(statement)


def _indexes(dsn: str) -> dict[str, tuple[bool, str]]:
    with psycopg.connect(dsn) as conn:
        rows = conn.execute(
            "select c.relname, i.indisvalid, pg_get_indexdef(i.indexrelid) from pg_index i"
            " join pg_class c on c.oid = i.indexrelid"
            " where c.relname in ('chat_messages_unread_idx', 'intentions_location_history_idx',"
            " 'intentions_location_created_idx')"
        ).fetchall()
    return {name: (valid, definition) for name, valid, definition in rows}


def test_indexes_built_concurrently_beforehand_are_kept_by_the_migration(
    before_the_indexes: str, admin_dsn: str
) -> None:
    # Given the operator built both indexes concurrently, as the README says
    _build_concurrently(before_the_indexes)
    built = _indexes(before_the_indexes)

    # When the migrations are pushed, they apply, keeping those very indexes
    assert MIGRATION + "_typing_receipts_paging.sql" in apply_schema(before_the_indexes)
    after = _indexes(before_the_indexes)
    assert {name: after[name] for name in INDEXES} == {name: built[name] for name in INDEXES}
    # the same as a database the migration built them in, the old index gone
    assert after == _indexes(admin_dsn)
    assert "intentions_location_created_idx" not in after


def test_an_invalid_or_different_index_under_the_name_is_refused(
    before_the_indexes: str, pg_cluster: PgCluster
) -> None:
    # Given a concurrent build that failed, leaving its index INVALID
    _build_concurrently(before_the_indexes)
    superuser = pg_cluster.dsn(DATABASE, user=BOOTSTRAP_SUPERUSER)
    with psycopg.connect(superuser, autocommit=True) as conn:
        conn.execute(
            "update pg_index set indisvalid = false"
            " where indexrelid = 'public.chat_messages_unread_idx'::regclass"
        )

    # Then the migration refuses to run without a usable index, saying what to do
    with pytest.raises(psycopg.errors.RaiseException) as refused:
        apply_schema(before_the_indexes)
    assert "chat_messages_unread_idx is INVALID" in str(refused.value)
    assert "drop index concurrently" in (refused.value.diag.message_hint or "")

    # And another index under the name is refused too
    with psycopg.connect(before_the_indexes, autocommit=True) as conn:
        conn.execute("drop index public.chat_messages_unread_idx")
        conn.execute("create index chat_messages_unread_idx on public.chat_messages (thread_id)")
    with pytest.raises(psycopg.errors.RaiseException) as other:
        apply_schema(before_the_indexes)
    assert "is not the one this migration builds" in str(other.value)

    # Once it is dropped the migration builds its own
    with psycopg.connect(before_the_indexes, autocommit=True) as conn:
        conn.execute("drop index public.chat_messages_unread_idx")
    apply_schema(before_the_indexes)
    assert _indexes(before_the_indexes)["chat_messages_unread_idx"][0] is True
