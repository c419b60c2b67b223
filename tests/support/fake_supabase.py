"""Supabase's HTTP edge on loopback, for tests: the JWKS endpoint, an
RPC-only PostgREST backed by the real test database, and GoTrue's refresh
endpoint. It follows the documented request and response shapes; the
database behind it is the real one, with our real SQL.
"""

from __future__ import annotations

import json
import re
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler
from typing import Any

import jwt
import psycopg
from psycopg import sql

from infra.dev.postgrest import postgrest_status
from tests.support.loopback import JsonHandler, serve
from tests.support.tokens import SigningKeys

_RPC = re.compile(r"^/rest/v1/rpc/([A-Za-z_][A-Za-z0-9_]*)$")


@dataclass
class FakeSupabase:
    keys: SigningKeys
    database_dsn: str | None = None
    jwks_fetches: int = 0
    rpc_calls: list[dict[str, Any]] = field(default_factory=list)
    # GoTrue's /token endpoint: a function of the JSON body -> (status, body),
    # or (status, body, headers), or None for a stall.
    token_endpoint: Callable[[dict[str, Any]], tuple[Any, ...] | None] | None = None
    token_requests: list[dict[str, Any]] = field(default_factory=list)
    # More keys the JWKS lists beside `keys`' (a rotation's new key).
    published: list[SigningKeys] = field(default_factory=list)
    url: str = ""

    def jwks(self) -> dict[str, Any]:
        return {"keys": [k for keys in [self.keys, *self.published] for k in keys.jwks()["keys"]]}

    def _verify(self, token: str) -> dict[str, Any]:
        header = jwt.get_unverified_header(token)
        if header.get("alg") == "HS256":
            key: Any = self.keys.secret
        elif header.get("kid") == self.keys.ec_kid:
            key = self.keys.ec_private.public_key()
        elif header.get("kid") == self.keys.rsa_kid:
            key = self.keys.rsa_private.public_key()
        else:
            raise jwt.InvalidTokenError("unknown key")
        claims: dict[str, Any] = jwt.decode(
            token, key, algorithms=[header["alg"]], options={"verify_aud": False}
        )
        return claims

    def rpc(self, function: str, headers: dict[str, str], body: bytes) -> tuple[int, Any]:
        if "apikey" not in headers:
            return 401, {"message": "No API key found in request", "hint": None}
        auth = headers.get("authorization", "")
        claims: dict[str, Any] = {"role": "anon"}
        if auth.lower().startswith("bearer "):
            try:
                claims = self._verify(auth[7:].strip())
            except jwt.ExpiredSignatureError:
                return 401, {
                    "code": "PGRST303",
                    "message": "JWT expired",
                    "details": None,
                    "hint": None,
                }
            except jwt.InvalidTokenError as exc:
                return 401, {"code": "PGRST301", "message": str(exc), "details": None, "hint": None}
        role = str(claims.get("role", "anon"))
        try:
            args = json.loads(body or b"{}")
        except ValueError:
            return 400, {
                "code": "PGRST102",
                "message": "Empty or invalid json",
                "details": None,
                "hint": None,
            }
        self.rpc_calls.append(
            {"function": function, "role": role, "sub": claims.get("sub"), "args": args}
        )
        assert self.database_dsn is not None
        query = sql.SQL("select to_jsonb(r) from public.{}({}) r").format(
            sql.Identifier(function),
            sql.SQL(", ").join(
                sql.SQL("{} => {}").format(sql.Identifier(k), sql.Placeholder(k)) for k in args
            ),
        )
        try:
            with psycopg.connect(self.database_dsn, autocommit=True) as conn, conn.transaction():
                conn.execute(
                    "select set_config('role', %s, true), set_config('request.jwt.claims', %s, true)",
                    (role, json.dumps(claims)),
                )
                row = conn.execute(query, args).fetchone()
        except psycopg.errors.UndefinedFunction:
            return 404, {
                "code": "PGRST202",
                "message": f"Could not find the function public.{function}",
                "details": None,
                "hint": None,
            }
        except psycopg.Error as exc:
            state = exc.sqlstate or "XX000"
            return postgrest_status(state, role), {
                "code": state,
                "message": exc.diag.message_primary,
                "details": exc.diag.message_detail,
                "hint": exc.diag.message_hint,
            }
        return 200, row[0] if row else None


def _handler(fake: FakeSupabase) -> type[BaseHTTPRequestHandler]:
    class Handler(JsonHandler):
        def do_GET(self) -> None:
            if self.path == "/auth/v1/.well-known/jwks.json":
                fake.jwks_fetches += 1
                self.reply_json(200, fake.jwks())
                return
            if self.path == "/auth/v1/user":
                # GoTrue's "get user": the token's user (supabase-js calls it in setSession).
                claims = fake._verify(self.headers.get("Authorization", "")[7:])
                self.reply_json(
                    200,
                    {
                        "id": claims["sub"],
                        "aud": "authenticated",
                        "role": "authenticated",
                        "email": claims.get("email"),
                        "app_metadata": claims.get("app_metadata", {}),
                        "user_metadata": claims.get("user_metadata", {}),
                        "created_at": "2026-11-01T00:00:00Z",
                    },
                )
                return
            self.reply_json(404, {"message": "not found"})

        def do_POST(self) -> None:
            length = int(self.headers.get("Content-Length") or 0)
            body = self.rfile.read(length)
            headers = {k.lower(): v for k, v in self.headers.items()}
            match = _RPC.match(self.path)
            if match:
                self.reply_json(*fake.rpc(match.group(1), headers, body))
                return
            if self.path.startswith("/auth/v1/token") and fake.token_endpoint is not None:
                request = json.loads(body or b"{}")
                fake.token_requests.append(
                    {"path": self.path, "apikey": headers.get("apikey"), "body": request}
                )
                answer = fake.token_endpoint(request)
                if answer is None:  # a stalled server: never answers in time
                    threading.Event().wait(5)
                    return
                status, answered, *extra = answer
                self.reply_json(status, answered, extra[0] if extra else None)
                return
            self.reply_json(404, {"message": "not found"})

    return Handler


@contextmanager
def running(fake: FakeSupabase) -> Iterator[FakeSupabase]:
    with serve(_handler(fake)) as url:
        fake.url = url
        fake.keys.serve_at(url)
        yield fake
