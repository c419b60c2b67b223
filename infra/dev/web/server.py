"""The demo page's own origin in `make dev` (the app a user opens).

It serves the page, the real supabase-js ES modules from node_modules
(resolved as Node resolves them, so no build step), the page's settings,
and a dev-only sign-in that writes the @supabase/ssr session cookie for a
demo user, as an app's own server would after a real sign-in. The cookie
has no Domain, so the browser also sends it to the functions on the same
host (another port: another origin, the same site).
"""

from __future__ import annotations

import json
import mimetypes
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

from pydantic import TypeAdapter, ValidationError

from infra.dev.bodies import BodyRefused, read_body
from infra.dev.web.lounge import error_status
from shared.session.cookies import session_cookies
from shared.validation import PgText

ROOT = Path(__file__).resolve().parents[3]
STATIC = Path(__file__).resolve().parent / "static"
NODE_MODULES = ROOT / "node_modules"
# The packages the page imports; nothing else under node_modules is served.
PACKAGES = (
    "@supabase/supabase-js", "@supabase/realtime-js", "@supabase/auth-js",
    "@supabase/postgrest-js", "@supabase/storage-js", "@supabase/functions-js",
    "@supabase/phoenix", "tslib", "iceberg-js",
)  # fmt: skip
MAX_BODY_BYTES = 64 * 1024
MAX_EXPIRES_IN = 366 * 24 * 3600  # a session's lifetime in seconds, either way
_TEXT = TypeAdapter(PgText)
SignIn = Callable[[str, int], dict[str, Any]]
Say = Callable[[str, str], dict[str, Any]]


def resolve_module(path: str) -> Path | None:
    """/node_modules/<pkg>/<file>, with Node's extension and index lookup."""
    relative = path.removeprefix("/node_modules/")
    if not any(relative.startswith(f"{p}/") for p in PACKAGES):
        return None
    base = (NODE_MODULES / relative).resolve()
    if not base.is_relative_to(NODE_MODULES.resolve()):
        return None
    for candidate in (base, Path(f"{base}.js"), Path(f"{base}.mjs"), base / "index.js"):
        if candidate.is_file():
            return candidate
    return None


def page_handler(
    settings: dict[str, Any],
    sign_in: SignIn,
    say: Say,
    cookie_name: str,
    users: list[str],
) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, format: str, *args: Any) -> None:  # noqa: ARG002
            return

        def _send(
            self, status: int, body: bytes, content_type: str, extra: list[str] | None = None
        ) -> None:
            self.send_response(status)
            self.send_header("Content-Type", content_type)
            self.send_header("Content-Length", str(len(body)))
            self.send_header("Cache-Control", "no-store")
            for cookie in extra or []:
                self.send_header("Set-Cookie", cookie)
            self.end_headers()
            self.wfile.write(body)

        def _json(self, status: int, body: Any, cookies: list[str] | None = None) -> None:
            self._send(status, json.dumps(body).encode(), "application/json", cookies)

        def do_GET(self) -> None:
            path = self.path.partition("?")[0]
            if path == "/config.json":
                self._json(200, {**settings, "users": users})
                return
            file = (
                resolve_module(path)
                if path.startswith("/node_modules/")
                else STATIC / ("index.html" if path == "/" else path.lstrip("/"))
            )
            if (
                file is None
                or not file.is_file()
                or not file.resolve().is_relative_to(
                    (NODE_MODULES if path.startswith("/node_modules/") else STATIC).resolve()
                )
            ):
                self._json(404, {"error": {"code": "not_found", "message": f"no file {path}"}})
                return
            kind = "text/javascript" if file.suffix in (".js", ".mjs") else (
                mimetypes.guess_type(file.name)[0] or "application/octet-stream")  # fmt: skip
            self._send(200, file.read_bytes(), f"{kind}; charset=utf-8")

        def _bad_request(self, message: str) -> None:
            self._json(400, {"error": {"code": "bad_request", "message": message}})

        def _field(self, name: str) -> str | None:
            """A string field of the JSON body; None (after a 400) if it is
            missing or PostgreSQL text could not store it."""
            try:
                body = json.loads(read_body(self, MAX_BODY_BYTES))
                return _TEXT.validate_python(str(body[name]))
            except BodyRefused as exc:
                self._json(exc.status, exc.error())
                return None
            except ValidationError as exc:
                self._bad_request(f"{name}: {exc.errors()[0]['msg']}")
                return None
            except (ValueError, KeyError, TypeError, RecursionError):
                self._bad_request(f'send a JSON object with "{name}"')
                return None

        def _say(self) -> None:
            token = self.headers.get("Authorization", "").removeprefix("Bearer ").strip()
            text = self._field("text")
            if text is None:
                return
            try:
                said = say(token, text[:4000])
            except Exception as exc:  # error_status answers every error, never raises
                self._json(*error_status(exc))
                return
            self._json(201, said)

        def _sign_in(self) -> None:
            user = self._field("user")
            if user is None:
                return
            if user not in users:
                message = f"demo users: {', '.join(users)}"
                self._json(400, {"error": {"code": "unknown_user", "message": message}})
                return
            # ?expires_in= lets the tests sign in with an expiring (or expired) session.
            expires_in = (parse_qs(urlsplit(self.path).query).get("expires_in") or ["3600"])[0]
            digits = expires_in.removeprefix("-")
            # Checked before int(): a long digit string would raise there.
            if not (digits.isascii() and digits.isdigit() and len(digits) <= 9) or (
                int(digits) > MAX_EXPIRES_IN
            ):
                self._bad_request(f"expires_in: whole seconds, at most {MAX_EXPIRES_IN} either way")
                return
            session = sign_in(user, int(expires_in))
            cookies = session_cookies(
                cookie_name, session, "base64url", [], secure=False, domain=None
            )
            self._json(200, {"user": user, "expires_at": session["expires_at"]}, cookies)

        def do_POST(self) -> None:
            route = self.path.partition("?")[0]
            if route == "/dev/say":
                self._say()
            elif route == "/dev/sign-in":
                self._sign_in()
            else:
                self._json(404, {"error": {"code": "not_found", "message": "no route"}})

    return Handler
