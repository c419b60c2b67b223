"""The page's one write without a function: an utterance in #lounge, which a
Supabase front end makes with `supabase.from('intentions').insert(...)`.
No PostgREST runs locally, so this does what PostgREST would: verify the
token, then insert as `authenticated` with the token's claims, under RLS."""

from __future__ import annotations

import json
import logging
import uuid
from typing import Any

import psycopg

from shared import container
from shared.db.direct import error_from_psycopg
from shared.errors import AppError

SPACE = "#lounge"
logger = logging.getLogger("dev.web")


def as_caller(conn: psycopg.Connection[Any], token: str) -> None:
    """What PostgREST does with a request's token: verify it, then run the
    transaction as `authenticated` with its claims, under RLS."""
    principal = container.verifier().verify(token)
    conn.execute(
        "select set_config('role', 'authenticated', true),"
        " set_config('request.jwt.claims', %s, true)",
        (json.dumps(principal.claims),),
    )


def say(database_url: str, token: str, text: str) -> dict[str, Any]:
    said = f"/msg-{uuid.uuid4().hex[:12]}"
    with psycopg.connect(database_url) as conn, conn.transaction():
        as_caller(conn, token)
        conn.execute(
            "insert into public.intentions (id, name, type, owner_id, location_id, state, content)"
            " select %s, 'Message', 'utterance', b.id, %s, 'complete', %s from public.beings b"
            " where b.auth_user_id = (select auth.uid()) and b.type = 'user' order by b.id limit 1",
            (said, SPACE, json.dumps({"text": text})),
        )
    return {"id": said}


def error_status(exc: Exception) -> tuple[int, dict[str, Any]]:
    """As PostgREST answers: the caller's mistakes are 4xx, anything else a
    logged 500; always a JSON body, never an exception."""
    if isinstance(exc, psycopg.Error) and (exc.sqlstate or "").startswith("PT"):
        # Our SQL's own errors (e.g. PT429 over a rate limit): the status they name.
        exc = error_from_psycopg(exc, signed_in=True)
    if isinstance(exc, AppError):
        return exc.status, {"error": {"code": exc.code, "message": exc.message}}
    if isinstance(exc, psycopg.errors.InsufficientPrivilege):
        return 403, {"error": {"code": "forbidden", "message": "RLS refused the insert"}}
    sqlstate = exc.sqlstate if isinstance(exc, psycopg.Error) else None
    # Classes 22 (data exception) and 23 (integrity constraint violation):
    # the input cannot be stored, as PostgREST reports them with 400/409.
    if sqlstate and sqlstate[:2] in ("22", "23"):
        message = exc.diag.message_primary if isinstance(exc, psycopg.Error) else None
        return 400, {"error": {"code": "bad_request", "message": message or "invalid input"}}
    logger.error("the lounge insert failed", exc_info=exc)
    return 500, {"error": {"code": "internal_error", "message": "the message was not saved"}}
