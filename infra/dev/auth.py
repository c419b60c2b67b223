"""GoTrue's refresh grant for local development: POST
/auth/v1/token?grant_type=refresh_token rotates the refresh token and signs
a new access token with the local JWT secret; the JWKS is empty (HS256)."""

from __future__ import annotations

import json
import secrets
import threading
from http.server import BaseHTTPRequestHandler
from typing import Any

import jwt

from scripts.dev_tokens import USERS, access_token


class LocalAuth:
    def __init__(self) -> None:
        self._lock = threading.Lock()
        # The demo cookies carry these; each use rotates to a new one.
        self._refresh_tokens = {f"local-refresh-{mongo}": mongo for mongo in USERS}

    def refresh(self, refresh_token: str) -> tuple[int, dict[str, Any]]:
        with self._lock:
            mongo = self._refresh_tokens.pop(refresh_token, None)
            if mongo is None:
                return 400, {"error": "invalid_grant", "error_description": "Invalid Refresh Token"}
            rotated = f"local-refresh-{mongo}-{secrets.token_hex(6)}"
            self._refresh_tokens[rotated] = mongo
        token = access_token(mongo)
        claims = jwt.decode(token, options={"verify_signature": False})
        return 200, {
            "access_token": token, "token_type": "bearer", "expires_in": 3600, "expires_at": claims["exp"],
            "refresh_token": rotated,
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
                if self.path == "/auth/v1/.well-known/jwks.json":
                    self._reply(200, {"keys": []})
                else:
                    self._reply(404, {"msg": "not found"})

            def do_POST(self) -> None:
                body = json.loads(
                    self.rfile.read(int(self.headers.get("Content-Length") or 0)) or b"{}"
                )
                if self.path == "/auth/v1/token?grant_type=refresh_token":
                    self._reply(*auth.refresh(str(body.get("refresh_token", ""))))
                else:
                    self._reply(404, {"msg": "not found"})

        return Handler
