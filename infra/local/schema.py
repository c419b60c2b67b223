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
MIGRATIONS_DIR = INFRA / "supabase" / "migrations"


def migrations() -> list[Path]:
    """The migration files as they are now, in the order they apply."""
    return sorted(MIGRATIONS_DIR.glob("*.sql"))


MIGRATIONS = migrations()

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


class MigrationFailed(RuntimeError):
    """A migration's SQL failed: nothing of it was applied or recorded."""

    def __init__(self, path: Path, error: psycopg.Error) -> None:
        self.path = path
        position = error.diag.statement_position
        text = path.read_text()
        self.line = text[: int(position)].count("\n") + 1 if position else None
        where = f"{path.relative_to(INFRA.parent)}" + (f", line {self.line}" if self.line else "")
        first = str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
        super().__init__(f"{where}: {first}")


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
    return apply_migrations(dsn, before)


def applied_versions(dsn: str) -> set[str]:
    with psycopg.connect(as_role(dsn, ADMIN), autocommit=True) as conn:
        conn.execute(_LEDGER.encode())
        return {
            row[0]
            for row in conn.execute("select version from supabase_migrations.schema_migrations")
        }


def apply_migrations(dsn: str, before: str | None = None) -> list[str]:
    """Applies, in order, each migration file whose version is not in the
    ledger (and, with `before`, is older than it), each in its own
    transaction; returns their names. A failing one raises MigrationFailed
    (it and those after it are left unapplied)."""
    applied: list[str] = []
    done = applied_versions(dsn)
    with psycopg.connect(as_role(dsn, ADMIN), autocommit=True) as conn:
        for path in migrations():
            version, _, name = path.stem.partition("_")
            if version in done or (before is not None and version >= before):
                continue
            try:
                with conn.transaction():
                    conn.execute(path.read_text().encode())
                    conn.execute(
                        "insert into supabase_migrations.schema_migrations (version, name)"
                        " values (%s, %s)",
                        (version, name),
                    )
            except psycopg.Error as exc:
                raise MigrationFailed(path, exc) from exc
            applied.append(path.name)
    return applied
