"""What `make dev` serves on SUPABASE_URL (DEV_AUTH_PORT), as Supabase
serves it on a project's URL:

- GoTrue's refresh grant: POST /auth/v1/token?grant_type=refresh_token
  rotates the refresh token and signs a new access token with the local JWT
  secret; the JWKS is empty (HS256).
- Realtime: WebSocket upgrades under /realtime/v1/ go on to the local
  Realtime endpoint; POST /realtime/v1/api/broadcast is its REST broadcast.
- PostgREST's RPC calls: POST /rest/v1/rpc/<function> (infra/dev/postgrest.py).
- Local only: the job queue's SQS API under /local/sqs (infra/dev/sqs.py),
  for `make invoke FN=botTrigger`.
"""

from __future__ import annotations

import json
import secrets
import threading
import time
from http.server import BaseHTTPRequestHandler
from typing import TYPE_CHECKING, Any

import jwt

from infra.dev import postgrest, sqs
from infra.dev.bodies import BodyRefused, read_body
from infra.dev.realtime import rest
from infra.dev.realtime.proxy import PREFIX as REALTIME_PREFIX
from infra.dev.realtime.proxy import forward_upgrade
from scripts.dev_tokens import USERS, access_token

MAX_BODY_BYTES = 64 * 1024

if TYPE_CHECKING:
    from infra.dev.postgrest import RpcEndpoint
    from infra.dev.realtime.server import RealtimeServer


class LocalAuth:
    def __init__(self) -> None:
        self._lock = threading.Lock()
        # The demo cookies carry these; each use rotates to a new one.
        self._refresh_tokens = {f"local-refresh-{mongo}": mongo for mongo in USERS}
        self.realtime: RealtimeServer | None = None
        self.postgrest: RpcEndpoint | None = None

    def sign_in(self, mongo: str, expires_in: int = 3600) -> dict[str, Any]:
        """A new session for a demo user (the dev page's sign-in), with its own refresh token."""
        refresh_token = f"local-refresh-{mongo}-{secrets.token_hex(6)}"
        with self._lock:
            self._refresh_tokens[refresh_token] = mongo
        return self._session(
            mongo, refresh_token, access_token(mongo, expires_at=int(time.time()) + expires_in)
        )

    def refresh(self, refresh_token: str) -> tuple[int, dict[str, Any]]:
        with self._lock:
            mongo = self._refresh_tokens.pop(refresh_token, None)
            if mongo is None:
                return 400, {"error": "invalid_grant", "error_description": "Invalid Refresh Token"}
            rotated = f"local-refresh-{mongo}-{secrets.token_hex(6)}"
            self._refresh_tokens[rotated] = mongo
        return 200, self._session(mongo, rotated, access_token(mongo))

    @staticmethod
    def _session(mongo: str, refresh_token: str, token: str) -> dict[str, Any]:
        claims = jwt.decode(token, options={"verify_signature": False})
        return {
            "access_token": token, "token_type": "bearer", "expires_in": claims["exp"] - claims["iat"],
            "expires_at": claims["exp"], "refresh_token": refresh_token,
            "user": {"id": USERS[mongo], "aud": "authenticated", "role": "authenticated",
                     "app_metadata": claims["app_metadata"]},
        }  # fmt: skip

    def handler(self) -> type[BaseHTTPRequestHandler]:
        auth = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, format: str, *args: Any) -> None:  # noqa: ARG002
                return

            def _reply(self, status: int, body: dict[str, Any]) -> None:
                data = json.dumps(body).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def do_GET(self) -> None:
                if self.path.startswith(REALTIME_PREFIX) and auth.realtime is not None:
                    forward_upgrade(self, auth.realtime.port)
                elif self.path == "/auth/v1/.well-known/jwks.json":
                    self._reply(200, {"keys": []})
                else:
                    self._reply(404, {"msg": "not found"})

            def do_OPTIONS(self) -> None:
                if rest.is_broadcast_path(self.path):
                    rest.answer(self, auth.realtime)
                elif postgrest.is_rpc_path(self.path):
                    postgrest.answer(self, auth.postgrest)
                else:
                    self._reply(404, {"msg": "not found"})

            def do_POST(self) -> None:
                if rest.is_broadcast_path(self.path):
                    rest.answer(self, auth.realtime)
                elif postgrest.is_rpc_path(self.path):
                    postgrest.answer(self, auth.postgrest)
                elif self.path.rstrip("/") == sqs.PATH:
                    sqs.answer(self, sqs.dev_queue)
                elif self.path == "/auth/v1/token?grant_type=refresh_token":
                    self._refresh()
                else:
                    self._reply(404, {"msg": "not found"})

            def _refresh(self) -> None:
                try:
                    body = json.loads(read_body(self, MAX_BODY_BYTES) or b"{}")
                    refresh_token = body.get("refresh_token", "") if isinstance(body, dict) else ""
                except BodyRefused as exc:
                    self._reply(exc.status, {"error": "invalid_request",
                                             "error_description": exc.message})  # fmt: skip
                    return
                except (ValueError, RecursionError):
                    self._reply(400, {"error": "invalid_request", "error_description": "bad body"})
                    return
                self._reply(*auth.refresh(str(refresh_token)))

        return Handler
