"""Direct Postgres adapter (local, tests, or a pooler such as Supavisor).

Each call is one transaction that does what PostgREST does per request: set
`role` and `request.jwt.claims` locally, call the function, commit. The
connection logs in as a role that may switch to anon, authenticated and
service_role (Supabase's `authenticator`, or `postgres`).
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

import psycopg
from psycopg import sql
from psycopg.types.json import Jsonb
from psycopg_pool import ConnectionPool, PoolTimeout

from shared.auth.principal import Caller, Principal
from shared.db.errors import error_from_database
from shared.errors import ServiceUnavailable

_SET_CONTEXT = (
    "select set_config('role', %s, true), set_config('request.jwt.claims', %s, true),"
    " set_config('request.method', 'POST', true)"
)


def _param(value: Any) -> Any:
    return Jsonb(value) if isinstance(value, dict | list) else value


class DirectDatabase:
    def __init__(self, dsn: str, *, timeout_seconds: float = 5.0, max_size: int = 4) -> None:
        self._timeout = timeout_seconds
        self._pool = ConnectionPool(
            dsn,
            min_size=0,
            max_size=max_size,
            timeout=timeout_seconds,
            kwargs={"autocommit": True, "connect_timeout": max(1, int(timeout_seconds))},
            open=False,
        )
        self._opened = False

    def call(self, function: str, args: Mapping[str, Any], caller: Caller) -> Any:
        role = caller.role if isinstance(caller, Principal) else "service_role"
        query = sql.SQL("select to_jsonb(r) from {}.{}({}) r").format(
            sql.Identifier("public"),
            sql.Identifier(function),
            sql.SQL(", ").join(
                sql.SQL("{} => {}").format(sql.Identifier(name), sql.Placeholder(name))
                for name in args
            ),
        )
        if not self._opened:
            self._pool.open(wait=False)
            self._opened = True
        try:
            with self._pool.connection() as conn, conn.transaction(), conn.cursor() as cur:
                cur.execute(_SET_CONTEXT, (role, json.dumps(caller.claims)))
                cur.execute(query, {name: _param(value) for name, value in args.items()})
                row = cur.fetchone()
        except PoolTimeout as exc:
            raise ServiceUnavailable("database unavailable", code="database_unavailable") from exc
        except psycopg.OperationalError as exc:
            if exc.sqlstate is None or exc.sqlstate.startswith("08"):
                raise ServiceUnavailable(
                    "database unavailable", code="database_unavailable"
                ) from exc
            raise self._mapped(exc, caller) from exc
        except psycopg.Error as exc:
            raise self._mapped(exc, caller) from exc
        return row[0] if row else None

    @staticmethod
    def _mapped(exc: psycopg.Error, caller: Caller) -> Exception:
        return error_from_database(
            exc.sqlstate,
            exc.diag.message_primary or "database error",
            exc.diag.message_detail,
            signed_in=isinstance(caller, Principal) or caller.claims.get("role") == "service_role",
        )

    def close(self) -> None:
        if self._opened:
            self._pool.close()
            self._opened = False
