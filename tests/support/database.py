"""Helpers for tests that talk to the real database as PostgREST would."""

from __future__ import annotations

import json
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import psycopg
import pytest
from psycopg.rows import dict_row


@dataclass(frozen=True)
class User:
    id: uuid.UUID
    email: str
    mongo_id: str | None

    def claims(self) -> dict[str, Any]:
        return {
            "sub": str(self.id),
            "role": "authenticated",
            "aud": "authenticated",
            "email": self.email,
            "app_metadata": {"mongo_user_id": self.mongo_id} if self.mongo_id else {},
        }


def create_user(
    conn: psycopg.Connection[Any], mongo_id: str | None, *, email: str | None = None
) -> User:
    """Inserts an auth user as GoTrue would, with the mongo link in app_metadata."""
    user_id = uuid.uuid4()
    email = email or f"{user_id.hex[:8]}@example.test"
    app_meta = {"provider": "email", "mongo_user_id": mongo_id} if mongo_id else {}
    conn.execute(
        "insert into auth.users (id, email, raw_app_meta_data) values (%s, %s, %s)",
        (user_id, email, json.dumps(app_meta)),
    )
    return User(user_id, email, mongo_id)


@contextmanager
def acting_as(
    conn: psycopg.Connection[Any],
    claims: dict[str, Any] | None,
    *,
    role: str | None = None,
    topic: str | None = None,
    commit: bool = False,
) -> Iterator[psycopg.Cursor[dict[str, Any]]]:
    """A transaction under `role` with `request.jwt.claims`, as PostgREST runs one.

    Rolled back at the end (so a refused statement leaves nothing behind)
    unless `commit`.
    """
    role = role or (claims or {}).get("role", "anon")
    with conn.transaction(force_rollback=not commit), conn.cursor(row_factory=dict_row) as cur:
        cur.execute(
            "select set_config('role', %s, true), set_config('request.jwt.claims', %s, true),"
            " set_config('realtime.topic', %s, true)",
            (role, json.dumps(claims or {"role": role}), topic or ""),
        )
        yield cur


def rpc(
    conn: psycopg.Connection[Any],
    claims: dict[str, Any] | None,
    function: str,
    **args: Any,
) -> Any:
    """Calls public.<function>(name => value, ...) as the caller and commits;
    its (first) row as JSON."""
    rows = rpc_rows(conn, claims, function, **args)
    return rows[0] if rows else None


def rpc_rows(
    conn: psycopg.Connection[Any],
    claims: dict[str, Any] | None,
    function: str,
    **args: Any,
) -> list[Any]:
    """Every row public.<function>(...) returns (a set-returning RPC), as JSON."""
    role = (claims or {}).get("role", "anon")
    named = ", ".join(f"{name} => %({name})s" for name in args)
    with conn.transaction(), conn.cursor() as cur:
        cur.execute(
            "select set_config('role', %s, true), set_config('request.jwt.claims', %s, true)",
            (role, json.dumps(claims or {"role": role})),
        )
        cur.execute(f"select to_jsonb(r) from public.{function}({named}) r", args)  # noqa: S608
        return [row[0] for row in cur.fetchall()]


def refusal(call: Callable[[], Any]) -> tuple[str | None, str | None]:
    """What an RPC error says: its SQLSTATE (PostgREST's PTxxx: the HTTP
    status) and the machine code in DETAIL."""
    with pytest.raises(psycopg.Error) as refused:
        call()
    return refused.value.sqlstate, refused.value.diag.message_detail


def full_refusal(call: Callable[[], Any]) -> tuple[str | None, str | None, str | None]:
    """Everything a caller learns from a refusal: SQLSTATE, DETAIL and message
    (two refusals a stranger must not tell apart compare equal)."""
    with pytest.raises(psycopg.Error) as refused:
        call()
    diag = refused.value.diag
    return refused.value.sqlstate, diag.message_detail, diag.message_primary


SERVICE_CLAIMS: dict[str, Any] = {"role": "service_role"}


def realtime_reads(
    api: psycopg.Connection[Any], platform: psycopg.Connection[Any],
    claims: dict[str, Any] | None, topic: str, extension: str = "broadcast",
) -> bool:  # fmt: skip
    """Realtime's read check: a row on the topic (written by the platform:
    postgres may not delete from realtime.messages), then a select as the user."""
    platform.execute(
        "insert into realtime.messages (topic, extension, event, payload) values (%s, %s, 'probe', '{}')",
        (topic, extension),
    )
    try:
        with acting_as(api, claims, topic=topic) as cur:
            rows = cur.execute(
                "select 1 from realtime.messages where topic = realtime.topic() and extension = %s",
                (extension,),
            ).fetchall()
    finally:
        platform.execute("delete from realtime.messages where event = 'probe'")
    return len(rows) > 0


def realtime_writes(
    api: psycopg.Connection[Any], claims: dict[str, Any] | None, topic: str,
    extension: str = "broadcast", event: str = "typing",
) -> bool:  # fmt: skip
    """Realtime's write check: an insert as the user, rolled back."""
    try:
        with acting_as(api, claims, topic=topic) as cur:
            cur.execute(
                "insert into realtime.messages (topic, extension, event, payload)"
                " values (realtime.topic(), %s, %s, '{}')",
                (extension, event),
            )
    except psycopg.errors.InsufficientPrivilege:
        return False
    return True


def warnings_of(conn: psycopg.Connection[Any]) -> list[str]:
    """The WARNING notices the connection receives from now on, as they come."""
    seen: list[str] = []
    conn.add_notice_handler(
        lambda d: (
            seen.append(str(d.message_primary)) if d.severity_nonlocalized == "WARNING" else None
        )
    )
    return seen
