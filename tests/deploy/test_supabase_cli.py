"""The Supabase CLI pinned in package.json runs after `make dev`/`make test`
installed it, and its `db push` (the Deploy section's step 3) applies our
migrations to a database that has only the platform, as `postgres`, exactly
as the schema builder does: the same result, the same ledger, each once."""

from __future__ import annotations

import json
import os
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import psycopg
import pytest

from infra.local.cluster import BOOTSTRAP_SUPERUSER, PgCluster
from infra.local.schema import MIGRATIONS, apply_schema, apply_stand_ins

pytestmark = pytest.mark.deploy

ROOT = Path(__file__).resolve().parents[2]


def supabase(*args: str, home: Path) -> subprocess.CompletedProcess[str]:
    """The CLI as the README runs it (npx from the repository), offline."""
    env = {**os.environ, "HOME": str(home), "SUPABASE_TELEMETRY_DISABLED": "1",
           "DO_NOT_TRACK": "1"}  # fmt: skip
    return subprocess.run(["npx", "--no-install", "supabase", *args], cwd=ROOT, env=env,
                          capture_output=True, text=True, timeout=180, check=False)  # fmt: skip


def test_the_pinned_cli_runs(tmp_path: Path) -> None:
    pinned = json.loads((ROOT / "package.json").read_text())["devDependencies"]["supabase"]
    done = supabase("--version", home=tmp_path)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == pinned


@pytest.fixture
def platform_only(pg_cluster: PgCluster) -> Iterator[str]:
    """A database with the platform's stand-ins and no migration, as a new project."""
    name = "cli_push_target"
    with psycopg.connect(pg_cluster.dsn(user=BOOTSTRAP_SUPERUSER), autocommit=True) as conn:
        conn.execute(f"drop database if exists {name} with (force)")
        conn.execute(f"create database {name}")
    apply_stand_ins(pg_cluster.dsn(name))
    yield pg_cluster.dsn(name)
    with psycopg.connect(pg_cluster.dsn(user=BOOTSTRAP_SUPERUSER), autocommit=True) as conn:
        conn.execute(f"drop database {name} with (force)")


def _shape(dsn: str) -> dict[str, Any]:
    """What the migrations make: policies, functions with their settings, tables."""
    with psycopg.connect(dsn) as conn:
        return {
            "policies": conn.execute(
                "select schemaname, tablename, policyname, cmd, roles::text, qual, with_check"
                " from pg_policies order by 1, 2, 3"
            ).fetchall(),
            "functions": conn.execute(
                "select n.nspname, p.proname, pg_get_function_identity_arguments(p.oid),"
                " p.prosecdef, p.proconfig::text, p.proacl::text from pg_proc p"
                " join pg_namespace n on n.oid = p.pronamespace"
                " where n.nspname in ('public', 'private') order by 1, 2, 3"
            ).fetchall(),
            "tables": conn.execute(
                "select table_schema, table_name from information_schema.tables"
                " where table_schema in ('public', 'private') order by 1, 2"
            ).fetchall(),
        }


def test_db_push_applies_the_migrations_as_the_schema_builder_does(
    platform_only: str, admin_dsn: str, tmp_path: Path
) -> None:
    # When the README's step 3 runs against a project with only the platform
    url = f"{platform_only}?sslmode=disable"
    done = supabase("--workdir", "infra", "db", "push", "--db-url", url, "--yes", home=tmp_path)

    # Then every migration is applied, in order, and recorded once
    assert done.returncode == 0, done.stdout + done.stderr
    with psycopg.connect(platform_only) as conn:
        ledger = [r[0] for r in conn.execute(
            "select version from supabase_migrations.schema_migrations order by version")]  # fmt: skip
    assert ledger == [path.stem.partition("_")[0] for path in MIGRATIONS]

    # And the result is the schema builder's (what make dev and the tests run)
    assert _shape(platform_only) == _shape(admin_dsn)

    # And the two agree on what is applied: neither applies anything twice
    assert apply_schema(platform_only) == []
    again = supabase("--workdir", "infra", "db", "push", "--db-url", url, "--yes", home=tmp_path)
    assert again.returncode == 0, again.stdout + again.stderr
    assert "Remote database is up to date" in again.stdout + again.stderr
