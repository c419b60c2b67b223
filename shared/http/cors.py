"""CORS for exact origins with credentials, as browsers require it.

An allowed origin gets itself back with credentials allowed; a preflight from
it gets 204; any other origin gets no CORS headers, and 403 on preflight.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable

from starlette.types import ASGIApp, Message, Receive, Scope, Send

ALLOWED_HEADERS = "authorization, content-type, x-client-info, apikey, x-request-id"
MAX_AGE = "600"


class CorsMiddleware:
    def __init__(
        self, app: ASGIApp, origins: Callable[[], Iterable[str]], methods: str = "GET, POST"
    ) -> None:
        self.app = app
        self._origins = origins
        self._methods = f"{methods}, OPTIONS"

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        headers = dict(scope["headers"])
        origin = headers.get(b"origin", b"").decode("latin-1")
        allowed = bool(origin) and origin in set(self._origins())
        preflight = scope["method"] == "OPTIONS" and b"access-control-request-method" in headers
        if preflight:
            await self._preflight(send, origin if allowed else None)
            return

        async def send_with_cors(message: Message) -> None:
            if message["type"] == "http.response.start":
                raw = list(message.get("headers", []))
                raw = [(k, v) for k, v in raw if k.lower() != b"vary"] + [
                    (b"vary", _vary(message.get("headers", [])))
                ]
                if allowed:
                    raw += [
                        (b"access-control-allow-origin", origin.encode("latin-1")),
                        (b"access-control-allow-credentials", b"true"),
                    ]
                message["headers"] = raw
            await send(message)

        await self.app(scope, receive, send_with_cors)

    async def _preflight(self, send: Send, origin: str | None) -> None:
        headers = [(b"vary", b"Origin"), (b"content-length", b"0")]
        status = 403
        if origin is not None:
            status = 204
            headers += [
                (b"access-control-allow-origin", origin.encode("latin-1")),
                (b"access-control-allow-credentials", b"true"),
                (b"access-control-allow-methods", self._methods.encode()),
                (b"access-control-allow-headers", ALLOWED_HEADERS.encode()),
                (b"access-control-max-age", MAX_AGE.encode()),
            ]
        await send({"type": "http.response.start", "status": status, "headers": headers})
        await send({"type": "http.response.body", "body": b""})


def _vary(existing: Iterable[tuple[bytes, bytes]]) -> bytes:
    values = ["Origin"]
    for key, value in existing:
        if key.lower() == b"vary":
            values += [v.strip() for v in value.decode("latin-1").split(",") if v.strip()]
    seen: list[str] = []
    for v in values:
        if v.lower() not in (s.lower() for s in seen):
            seen.append(v)
    return ", ".join(seen).encode("latin-1")
