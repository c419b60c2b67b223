"""Direct Postgres adapter (local, tests, or a pooler such as Supavisor).

Each call is one transaction that does what PostgREST does per request: set
`role` and `request.jwt.claims` locally, call the function, commit. The
connection logs in as a role that may switch to anon, authenticated and
service_role (Supabase's `authenticator`, or `postgres`).

Connections are kept in a small pool of our own rather than psycopg_pool's:
that pool opens connections in a background worker whose reconnect backoff
keeps growing while the database is down, and requests only wait on it, each
for the full timeout; after a 70 s outage functions kept answering 503 for a
minute. Here a request that needs a connection opens it itself: while the
database is down it fails at once (503, Retry-After: 1), and the first
request after it is back connects.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Mapping
from typing import Any

import psycopg
from psycopg import sql
from psycopg.pq import TransactionStatus
from psycopg.types.json import Jsonb

from shared.auth.principal import Caller, Principal
from shared.db.errors import error_from_database
from shared.errors import AppError, BadRequest, ServiceUnavailable

_SET_CONTEXT = (
    "select set_config('role', %s, true), set_config('request.jwt.claims', %s, true),"
    " set_config('request.method', 'POST', true)"
)
# libpq rounds anything lower up to 2 seconds.
_MIN_CONNECT_TIMEOUT = 2


def _param(value: Any) -> Any:
    return Jsonb(value) if isinstance(value, dict | list) else value


def _unavailable() -> ServiceUnavailable:
    return ServiceUnavailable("database unavailable", code="database_unavailable")


def _rollback(conn: psycopg.Connection[Any]) -> None:
    if conn.closed or conn.info.transaction_status == TransactionStatus.IDLE:
        return
    try:
        conn.execute("rollback")
    except psycopg.Error:
        conn.close()


def error_from_psycopg(exc: psycopg.Error, *, signed_in: bool) -> AppError:
    """A database error as PostgREST would answer it (shared.db.errors)."""
    return error_from_database(
        exc.sqlstate,
        exc.diag.message_primary or "database error",
        exc.diag.message_detail,
        signed_in=signed_in,
        hint=exc.diag.message_hint,
    )


class _StaleConnection(Exception):
    """A reused connection failed before the function was sent: nothing ran."""


class _Connections:
    """At most `max_size` connections; idle ones are reused, newest first."""

    def __init__(self, dsn: str, *, max_size: int, timeout_seconds: float) -> None:
        self._dsn = dsn
        self._timeout = timeout_seconds
        self._connect_timeout = max(_MIN_CONNECT_TIMEOUT, int(timeout_seconds / 2))
        self._slots = threading.BoundedSemaphore(max_size)
        self._idle: list[psycopg.Connection[Any]] = []
        self._lock = threading.Lock()

    def acquire(self, *, fresh: bool = False) -> tuple[psycopg.Connection[Any], bool]:
        """A connection and whether it was reused; ServiceUnavailable if none."""
        if not self._slots.acquire(timeout=self._timeout):
            raise ServiceUnavailable("database busy", code="database_unavailable")
        try:
            if not fresh:
                with self._lock:
                    if self._idle:
                        return self._idle.pop(), True
            return (
                psycopg.connect(self._dsn, autocommit=True, connect_timeout=self._connect_timeout),
                False,
            )
        except psycopg.Error as exc:
            self._slots.release()
            raise _unavailable() from exc
        except BaseException:
            self._slots.release()
            raise

    def release(self, conn: psycopg.Connection[Any]) -> None:
        try:
            if not conn.closed and conn.info.transaction_status == TransactionStatus.IDLE:
                with self._lock:
                    self._idle.append(conn)
                return
            conn.close()
        finally:
            self._slots.release()

    def drop_idle(self) -> None:
        """After one stale connection, the others (from the same server) are too."""
        with self._lock:
            idle, self._idle = self._idle, []
        for conn in idle:
            conn.close()


class DirectDatabase:
    def __init__(self, dsn: str, *, timeout_seconds: float = 5.0, max_size: int = 4) -> None:
        self._connections = _Connections(dsn, max_size=max_size, timeout_seconds=timeout_seconds)

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
        params = {name: _param(value) for name, value in args.items()}
        context = (role, json.dumps(caller.claims))
        fresh = False
        while True:
            conn, reused = self._connections.acquire(fresh=fresh)
            try:
                return self._run(conn, reused, context, query, params)
            except _StaleConnection:
                # The database restarted (or dropped us) since this connection
                # was last used. Nothing was sent: retry once on a new one.
                self._connections.drop_idle()
                fresh = True
            except psycopg.OperationalError as exc:
                if exc.sqlstate is None or exc.sqlstate.startswith("08"):
                    raise _unavailable() from exc
                raise self._mapped(exc, caller) from exc
            except psycopg.DataError as exc:
                if exc.sqlstate is None:
                    # Refused by psycopg before sending (a NUL in text): the
                    # caller's data, as PostgREST's 4xx for the same input.
                    raise BadRequest(
                        "a value contains characters the database cannot store",
                        code="invalid_text",
                    ) from exc
                raise self._mapped(exc, caller) from exc
            except psycopg.Error as exc:
                raise self._mapped(exc, caller) from exc
            except UnicodeEncodeError as exc:
                raise BadRequest("a value is not valid Unicode text", code="invalid_text") from exc
            finally:
                self._connections.release(conn)

    @staticmethod
    def _run(
        conn: psycopg.Connection[Any],
        reused: bool,
        context: tuple[str, str],
        query: sql.Composed,
        params: dict[str, Any],
    ) -> Any:
        sent = False
        try:
            with conn.cursor() as cur:
                cur.execute("begin")
                cur.execute(_SET_CONTEXT, context)
                sent = True
                cur.execute(query, params)
                row = cur.fetchone()
                cur.execute("commit")
        except psycopg.OperationalError as exc:
            _rollback(conn)
            if reused and not sent and (exc.sqlstate is None or exc.sqlstate[:2] in ("08", "57")):
                raise _StaleConnection from exc
            raise
        except BaseException:
            _rollback(conn)
            raise
        return row[0] if row else None

    @staticmethod
    def _mapped(exc: psycopg.Error, caller: Caller) -> Exception:
        signed_in = isinstance(caller, Principal) or caller.claims.get("role") == "service_role"
        return error_from_psycopg(exc, signed_in=signed_in)

    def close(self) -> None:
        self._connections.drop_idle()
