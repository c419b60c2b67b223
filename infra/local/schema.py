"""Builds the complete database: the platform stand-ins, then the migrations.

The contract other tools rely on: a plain PostgreSQL 15, then
`infra/local/*.sql` in lexical order, then `infra/supabase/migrations/*.sql`
in lexical order. Stand-ins are idempotent and re-applied every time, as the
bootstrap superuser (`supabase_admin`), since they play the platform;
migrations are applied once each as `postgres`, which is not a superuser,
and recorded, as `supabase db push` does on a hosted project.
"""

from __future__ import annotations

from pathlib import Path

import psycopg
from psycopg.conninfo import conninfo_to_dict, make_conninfo

from infra.local.cluster import ADMIN, BOOTSTRAP_SUPERUSER
from infra.local.extensions import check_installed

INFRA = Path(__file__).resolve().parent.parent
STAND_INS = sorted((INFRA / "local").glob("*.sql"))
MIGRATIONS = sorted((INFRA / "supabase" / "migrations").glob("*.sql"))

_LEDGER = """
create schema if not exists supabase_migrations;
create table if not exists supabase_migrations.schema_migrations (
  version text primary key,
  name text,
  applied_at timestamptz not null default now()
);
"""


class LegacyClusterError(RuntimeError):
    """The cluster was made before the local platform had hosted's roles."""


def as_role(dsn: str, user: str) -> str:
    """The same database, logged in as `user` (local clusters trust loopback)."""
    return make_conninfo(dsn, user=user)


def _refuse_legacy(dsn: str) -> None:
    """A cluster initdb'd with `postgres` as its bootstrap superuser cannot be
    converted: PostgreSQL never lets the bootstrap superuser be demoted."""
    with psycopg.connect(as_role(dsn, ADMIN), autocommit=True) as conn:
        row = conn.execute("select rolname from pg_roles where oid = 10").fetchone()
    if row and row[0] != BOOTSTRAP_SUPERUSER:
        where = conninfo_to_dict(dsn).get("host", "?")
        raise LegacyClusterError(
            f"the database on {where} was created with {row[0]!r} as its superuser; the"
            " local platform now runs migrations as a non-superuser `postgres` under"
            f" {BOOTSTRAP_SUPERUSER!r}, as hosted Supabase does. Its data cannot be"
            " converted: run `make dev-reset` (deletes .local/dev) and start again."
        )


def apply_stand_ins(dsn: str) -> None:
    """The platform alone (what a new hosted project has before any
    migration), as the bootstrap superuser; idempotent."""
    check_installed()
    try:
        _refuse_legacy(dsn)
    except psycopg.OperationalError as exc:
        if f'role "{ADMIN}" does not exist' not in str(exc):
            raise
    with psycopg.connect(as_role(dsn, BOOTSTRAP_SUPERUSER), autocommit=True) as conn:
        for path in STAND_INS:
            with conn.transaction():
                conn.execute(path.read_text().encode())


def apply_schema(dsn: str, before: str | None = None) -> list[str]:
    """Applies what is missing; returns the names of the migrations it applied.

    `dsn` names the database; the user in it does not matter. With `before`
    (a version), only the migrations older than it: a database as a project
    had it before that migration.
    """
    apply_stand_ins(dsn)
    applied: list[str] = []
    with psycopg.connect(as_role(dsn, ADMIN), autocommit=True) as conn:
        conn.execute(_LEDGER.encode())
        done = {
            row[0]
            for row in conn.execute("select version from supabase_migrations.schema_migrations")
        }
        for path in MIGRATIONS:
            version, _, name = path.stem.partition("_")
            if version in done or (before is not None and version >= before):
                continue
            with conn.transaction():
                conn.execute(path.read_text().encode())
                conn.execute(
                    "insert into supabase_migrations.schema_migrations (version, name)"
                    " values (%s, %s)",
                    (version, name),
                )
            applied.append(path.name)
    return applied
