"""Builds the complete database: the platform stand-ins, then the migrations.

The contract other tools rely on: a plain PostgreSQL 15, then
`infra/local/*.sql` in lexical order, then `infra/supabase/migrations/*.sql`
in lexical order. Stand-ins are idempotent and re-applied every time;
migrations are recorded, as the Supabase CLI does, and applied once.
"""

from __future__ import annotations

from pathlib import Path

import psycopg

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


def apply_schema(dsn: str) -> list[str]:
    """Applies what is missing; returns the names of the migrations it applied."""
    applied: list[str] = []
    with psycopg.connect(dsn, autocommit=True) as conn:
        for path in STAND_INS:
            with conn.transaction():
                conn.execute(path.read_text().encode())
        conn.execute(_LEDGER.encode())
        done = {
            row[0]
            for row in conn.execute("select version from supabase_migrations.schema_migrations")
        }
        for path in MIGRATIONS:
            version, _, name = path.stem.partition("_")
            if version in done:
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
