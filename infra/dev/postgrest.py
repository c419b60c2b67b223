"""PostgREST's RPC endpoint for `make dev`: `POST SUPABASE_URL/rest/v1/rpc/<fn>`,
as the real supabase-js calls it (`supabase.rpc('chat_messages_before', {...})`).

Hosted projects run PostgREST itself; no Debian package ships it, so this
does what PostgREST documents for a call, and nothing more (no tables, no
filters on a function's result): the `apikey` must be the project's anon or
service-role key (else 401, as the API gateway answers), and so must a
bearer that is an API key (`sb_...`: a publishable or secret key); any other
bearer token is
verified (the functions' own verifier) and its `role` and claims set for the
transaction, or, without a token, the key's role; the JSON body's keys are
the function's named arguments, cast to their types as PostgREST casts them
(`json_to_record`); a set-returning function answers a JSON array, any
other its value. Errors carry PostgREST's body and status: `PTxxx` is HTTP
xxx, permission denied is 401 for anon and 403 otherwise, a function that
does not take these arguments is `404 PGRST202`.
"""

from __future__ import annotations

import json
import logging
import re
from collections.abc import Callable
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler
from typing import Any

import psycopg
from psycopg import sql
from psycopg_pool import ConnectionPool

from infra.dev.bodies import BodyRefused, read_body
from infra.dev.realtime import rest
from infra.dev.realtime.server import ApiKeys
from shared.auth.verifier import TokenVerifier
from shared.errors import Unauthorized

PREFIX = "/rest/v1/rpc/"
MAX_BODY_BYTES = 1024 * 1024
_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]{0,62}$")
CORS = {
    "Access-Control-Allow-Origin": "*",
    "Access-Control-Allow-Methods": "POST, OPTIONS",
    "Access-Control-Allow-Headers": "authorization, apikey, content-type, content-profile,"
    " accept-profile, prefer, x-client-info",
}
# As the API gateway answers it, before PostgREST.
INVALID_API_KEY = {
    "message": "Invalid API key",
    "hint": "Double check your Supabase `anon` or `service_role` API key.",
}
logger = logging.getLogger("dev.postgrest")

# The public functions of that name and what they take: IN argument names
# and types, how many trailing ones have defaults, whether it returns a set
# and whether it returns nothing.
_SIGNATURES = """
select coalesce((select array_agg(a.name order by a.n) from unnest(p.proargnames)
                 with ordinality a(name, n)
                 where p.proargmodes is null or p.proargmodes[a.n] in ('i', 'b')), '{}') as names,
       array(select format_type(t, null) from unnest(p.proargtypes::oid[]) t) as types,
       p.pronargdefaults as defaults,
       p.proretset as returns_set,
       p.prorettype = 'void'::regtype as returns_void
from pg_proc p
where p.pronamespace = 'public'::regnamespace and p.proname = %s and p.prokind = 'f'
"""


def postgrest_status(sqlstate: str, role: str) -> int:
    """PostgREST's SQLSTATE -> HTTP table, the parts an RPC can hit."""
    if sqlstate.startswith("PT") and sqlstate[2:].isdigit():
        return int(sqlstate[2:])
    if sqlstate == "42501":
        return 401 if role == "anon" else 403
    table = {"42883": 404, "23505": 409, "23503": 409, "P0001": 400}
    if sqlstate in table:
        return table[sqlstate]
    if sqlstate[:2] in ("08", "53"):
        return 503
    if sqlstate[:2] in ("22", "23"):
        return 400
    return 500


def _error(code: str, message: str, details: str | None = None) -> dict[str, Any]:
    return {"code": code, "details": details, "hint": None, "message": message}


@dataclass(frozen=True)
class _Signature:
    names: list[str]
    types: list[str]
    defaults: int
    returns_set: bool
    returns_void: bool

    def accepts(self, given: set[str]) -> bool:
        if len(self.names) != len(self.types):  # unnamed arguments: not callable by name
            return False
        required = set(self.names[: len(self.names) - self.defaults])
        return required <= given <= set(self.names)


class RpcEndpoint:
    def __init__(
        self,
        database_url: str,
        api_keys: ApiKeys,
        verifier: Callable[[], TokenVerifier],
        wait_seconds: float = 5,
    ) -> None:
        self.api_keys = api_keys
        self._verifier = verifier
        # wait_seconds: how long a call waits for a connection before its 503.
        self._pool = ConnectionPool(
            database_url, min_size=1, max_size=4, open=False, timeout=wait_seconds
        )

    def open(self) -> None:
        self._pool.open()

    def close(self) -> None:
        self._pool.close()

    def _claims(self, api_role: str, token: str) -> dict[str, Any]:
        """The claims the request runs with (raises Unauthorized)."""
        if not token or self.api_keys.role(token) is not None:
            return {"role": self.api_keys.role(token) or api_role}
        claims = self._verifier().claims(token)
        if "role" not in claims:
            raise Unauthorized("JWT has no role", code="invalid_token")
        return claims

    def call(self, api_key: str, token: str, function: str, body: bytes) -> tuple[int, Any]:
        """The status and JSON body PostgREST answers to one RPC call."""
        api_role = self.api_keys.role(api_key)
        if api_role is None or (token.startswith("sb_") and self.api_keys.role(token) is None):
            # An API key as the bearer (publishable or secret: `sb_...`, never
            # a JWT) must be one of the project's, as the gateway checks it.
            return 401, INVALID_API_KEY
        try:
            claims = self._claims(api_role, token)
        except Unauthorized as exc:
            code = "PGRST303" if exc.code == "token_expired" else "PGRST301"
            return 401, _error(code, exc.message)
        try:
            args = json.loads(body or b"{}")
        except (ValueError, RecursionError):
            return 400, _error("PGRST102", "Empty or invalid json")
        if not isinstance(args, dict):
            return 400, _error("PGRST102", "the body must be a JSON object of named arguments")
        role = str(claims["role"])
        try:
            return self._run(role, claims, function, args)
        except psycopg.Error as exc:
            if isinstance(exc, psycopg.OperationalError) and not exc.sqlstate:
                # No connection (a PoolTimeout too): as PostgREST answers it.
                logger.warning("rpc %s: no database connection (%s)", function, exc)
                return 503, _error("PGRST000", "Could not connect with the database")
            state = exc.sqlstate or "XX000"
            status = postgrest_status(state, role)
            if status >= 500:
                logger.warning("rpc %s failed: %s", function, str(exc).splitlines()[0][:200])
            return status, {"code": state, "details": exc.diag.message_detail,
                            "hint": exc.diag.message_hint, "message": exc.diag.message_primary}  # fmt: skip

    def _run(
        self, role: str, claims: dict[str, Any], function: str, args: dict[str, Any]
    ) -> tuple[int, Any]:
        with self._pool.connection() as conn, conn.transaction():
            candidates = [
                _Signature(*row) for row in conn.execute(_SIGNATURES, (function,)).fetchall()
            ]
            chosen = [s for s in candidates if s.accepts(set(args))]
            if len(chosen) != 1:
                listed = ", ".join(sorted(args))
                return 404, _error("PGRST202", f"Could not find the function public.{function}"
                                   f"({listed}) in the schema cache")  # fmt: skip
            signature = chosen[0]
            conn.execute(
                "select set_config('role', %s, true), set_config('request.jwt.claims', %s, true),"
                " set_config('request.method', 'POST', true),"
                " set_config('request.path', %s, true)",
                (role, json.dumps(claims), f"/rpc/{function}"),
            )
            row = conn.execute(
                _call(function, signature, list(args)), (json.dumps(args),)
            ).fetchone()
        if signature.returns_void:
            return 204, None
        return 200, row[0] if row else None


def _call(function: str, signature: _Signature, given: list[str]) -> sql.Composed:
    """PostgREST's shape: the arguments come from json_to_record, cast to the
    parameters' types; a set comes back as one JSON array."""
    types = dict(zip(signature.names, signature.types, strict=True))
    columns = sql.SQL(", ").join(
        sql.SQL("{} {}").format(sql.Identifier(name), sql.SQL(types[name])) for name in given
    )
    call = sql.SQL("public.{}({})").format(
        sql.Identifier(function),
        sql.SQL(", ").join(sql.SQL("{0} => a.{0}").format(sql.Identifier(name)) for name in given),
    )
    source = (
        sql.SQL("json_to_record(%s::json) as a({})").format(columns)
        if given
        else sql.SQL("(select %s::json) as a")
    )
    if signature.returns_set:
        return sql.SQL(
            "select coalesce(json_agg(r), '[]'::json) from {source}, lateral {call} r"
        ).format(source=source, call=call)
    return sql.SQL("select to_json({call}) from {source}").format(call=call, source=source)


def is_rpc_path(path: str) -> bool:
    return path.partition("?")[0].startswith(PREFIX)


def answer(handler: BaseHTTPRequestHandler, endpoint: RpcEndpoint | None) -> None:
    """Serves one request (POST, or the browser's OPTIONS preflight)."""
    path, _, query = handler.path.partition("?")
    function = path.removeprefix(PREFIX)
    if handler.command == "OPTIONS":
        _reply(handler, 200, None)
        return
    if endpoint is None:
        _reply(handler, 503, _error("PGRST000", "the database is not ready"))
        return
    if endpoint.api_keys.role(handler.headers.get("apikey", "")) is None:
        handler.close_connection = True  # refused at the gateway: the body is left unread
        _reply(handler, 401, INVALID_API_KEY)
        return
    try:
        body = read_body(handler, MAX_BODY_BYTES)
    except BodyRefused as exc:
        _reply(handler, exc.status, _error(f"PGRST{exc.status}", exc.message))
        return
    if not _NAME.match(function) or query:
        _reply(handler, 404, _error("PGRST202", f"Could not find the function {function!r}"
                                    " (this stand-in serves calls only, without filters)"))  # fmt: skip
        return
    bearer = handler.headers.get("Authorization", "")
    token = bearer[7:].strip() if bearer[:7].lower() == "bearer " else ""
    try:
        status, answered = endpoint.call(handler.headers.get("apikey", ""), token, function, body)
    except Exception:  # a bug here must still answer in JSON
        logger.exception("rpc %s failed", function)
        status, answered = 500, _error("PGRST000", "internal error")
    _reply(handler, status, answered)


def _reply(handler: BaseHTTPRequestHandler, status: int, body: Any) -> None:
    rest.reply(handler, status, body, CORS)
