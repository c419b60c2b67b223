"""What the endpoint asks the database, always as the subscriber.

The join check is Realtime Authorization's read check: in a transaction the
server inserts one probe row per extension into realtime.messages, switches
to the caller's role with `request.jwt.claims` and `realtime.topic` set,
selects the probes back under RLS, and rolls everything back. Deliveries
read each row the same way, so a subscriber never receives a row RLS hides.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Any

import psycopg
from psycopg import sql
from psycopg.rows import dict_row
from psycopg_pool import AsyncConnectionPool

_CONTEXT = """
select set_config('role', %(role)s, true),
       set_config('realtime.topic', %(topic)s, true),
       set_config('request.jwt.claims', %(claims)s, true),
       set_config('request.jwt.claim.sub', %(sub)s, true),
       set_config('request.jwt.claim.role', %(role)s, true),
       set_config('request.headers', '{}', true)
"""


@dataclass(frozen=True)
class Caller:
    """The claims a channel runs as (its access token's, or the API key's)."""

    claims: dict[str, Any]

    @property
    def role(self) -> str:
        return str(self.claims.get("role") or "anon")


@dataclass(frozen=True)
class Column:
    name: str
    type: str


class RealtimeDatabase:
    def __init__(self, dsn: str) -> None:
        self.dsn = dsn
        self._pool = AsyncConnectionPool(dsn, min_size=1, max_size=4, open=False)
        self._columns: dict[tuple[str, str], list[Column]] = {}

    async def open(self) -> None:
        await self._pool.open()

    async def close(self) -> None:
        await self._pool.close()

    @asynccontextmanager
    async def _as(
        self, caller: Caller | None, topic: str
    ) -> AsyncIterator[psycopg.AsyncConnection[Any]]:
        """A transaction that is always rolled back, run as `caller` (None:
        as the server itself)."""
        async with self._pool.connection() as conn, conn.transaction(force_rollback=True):
            if caller is not None:
                await conn.execute(
                    _CONTEXT,
                    {"role": caller.role, "topic": topic, "claims": json.dumps(caller.claims),
                     "sub": str(caller.claims.get("sub") or "")},
                )  # fmt: skip
            yield conn

    async def can_read(self, caller: Caller, topic: str, extensions: list[str]) -> dict[str, bool]:
        """Realtime's read check for the private channel `topic`: which of
        `extensions` the caller may receive (select policies)."""
        probes = {extension: uuid.uuid4() for extension in extensions}
        async with self._pool.connection() as conn, conn.transaction(force_rollback=True):
            for extension, probe in probes.items():
                await conn.execute(
                    "insert into realtime.messages (id, topic, extension) values (%s, %s, %s)",
                    (probe, topic, extension),
                )
            await conn.execute(
                _CONTEXT,
                {"role": caller.role, "topic": topic, "claims": json.dumps(caller.claims),
                 "sub": str(caller.claims.get("sub") or "")},
            )  # fmt: skip
            try:
                cursor = await conn.execute(
                    "select id from realtime.messages where id = any(%s)", (list(probes.values()),)
                )
            except psycopg.errors.InsufficientPrivilege:
                return dict.fromkeys(extensions, False)
            seen = {row[0] for row in await cursor.fetchall()}
            return {extension: probe in seen for extension, probe in probes.items()}

    async def can_write(self, caller: Caller, topic: str, extensions: list[str]) -> dict[str, bool]:
        """Realtime's write check: which of `extensions` the caller may send
        on `topic` (insert policies), each insert in its own savepoint."""
        allowed: dict[str, bool] = {}
        async with self._as(caller, topic) as conn:
            for extension in extensions:
                try:
                    async with conn.transaction():
                        await conn.execute(
                            "insert into realtime.messages (topic, extension) values (%s, %s)",
                            (topic, extension),
                        )
                except psycopg.errors.InsufficientPrivilege:
                    allowed[extension] = False
                else:
                    allowed[extension] = True
        return allowed

    async def broadcast_row(self, message_id: str, topic: str) -> dict[str, Any] | None:
        """The realtime.messages row, read as the server (no RLS per message:
        subscribers were authorized when they joined)."""
        async with self._as(None, topic) as conn:
            cursor = conn.cursor(row_factory=dict_row)
            await cursor.execute(
                "select id::text, event, payload, coalesce(private, false) as private"
                " from realtime.messages where id = %s and topic = %s and extension = 'broadcast'",
                (message_id, topic),
            )
            return await cursor.fetchone()

    async def take_change(self, staged: int) -> dict[str, Any] | None:
        """The change the stand-in's trigger staged under this id, deleted as
        it is read (None: already taken, or rolled back)."""
        async with self._pool.connection() as conn, conn.transaction():
            cursor = await conn.execute("select local_realtime.take_change(%s)", (staged,))
            row = await cursor.fetchone()
            return row[0] if row else None

    async def row_visible(
        self, caller: Caller, schema: str, table: str, keys: dict[str, Any]
    ) -> bool:
        """Whether `caller` may see the row with these primary key values."""
        match = sql.SQL(" and ").join(
            sql.SQL("t.{0} = k.{0}").format(sql.Identifier(name)) for name in keys
        )
        query = sql.SQL(
            "select 1 from {table} t,"
            " jsonb_populate_record(null::{table}, %s::jsonb) k where {match}"
        ).format(table=sql.Identifier(schema, table), match=match)
        async with self._as(caller, "") as conn:
            try:
                cursor = await conn.execute(query, (json.dumps(keys),))
            except psycopg.errors.InsufficientPrivilege:
                return False
            return await cursor.fetchone() is not None

    async def columns(self, schema: str, table: str) -> list[Column]:
        key = (schema, table)
        if key not in self._columns:
            async with self._as(None, "") as conn:
                cursor = await conn.execute(
                    "select a.attname, t.typname from pg_attribute a"
                    " join pg_type t on t.oid = a.atttypid"
                    " where a.attrelid = %s::regclass and a.attnum > 0 and not a.attisdropped"
                    " order by a.attnum",
                    (sql.Identifier(schema, table).as_string(conn),),
                )
                self._columns[key] = [Column(n, t) for n, t in await cursor.fetchall()]
        return self._columns[key]

    async def published(self, schema: str, table: str | None) -> bool:
        """Whether postgres_changes can follow this table (or any in `schema`)."""
        async with self._as(None, "") as conn:
            cursor = await conn.execute(
                "select exists (select 1 from pg_publication_tables where pubname ="
                " 'supabase_realtime' and (%(schema)s = '*' or schemaname = %(schema)s)"
                " and (%(table)s::text is null or %(table)s = '*' or tablename = %(table)s))",
                {"schema": schema, "table": table},
            )
            row = await cursor.fetchone()
            return bool(row and row[0])
