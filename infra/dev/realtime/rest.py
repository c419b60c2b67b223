"""Realtime's REST broadcast endpoint, as realtime-js calls it under
SUPABASE_URL: `POST /realtime/v1/api/broadcast` with `{messages: [{topic,
event, payload, private}]}` (what `channel.send()` falls back to before a
channel is joined) and `POST /realtime/v1/api/broadcast/<topic>/events/<event>
[?private=true]` with the payload as the body (`channel.httpSend()`). Both
answer 202 with no body; the authorization is the server's
(`RealtimeServer.api_broadcast`)."""

from __future__ import annotations

import json
from http.server import BaseHTTPRequestHandler
from typing import TYPE_CHECKING, Any
from urllib.parse import parse_qs, unquote, urlsplit

from infra.dev.bodies import BodyRefused, read_body

if TYPE_CHECKING:
    from infra.dev.realtime.server import RealtimeServer

PATH = "/realtime/v1/api/broadcast"
MAX_BODY_BYTES = 1024 * 1024  # hosted Realtime's payload limit is set per project; 1 MB here
CORS = {
    "Access-Control-Allow-Origin": "*",
    "Access-Control-Allow-Methods": "POST, OPTIONS",
    "Access-Control-Allow-Headers": "authorization, apikey, content-type, x-client-info",
}


class BadRequest(ValueError):
    """What Realtime answers 422 (or 400 for a body that is not JSON) for."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status


def is_broadcast_path(path: str) -> bool:
    route = urlsplit(path).path.rstrip("/")
    return route == PATH or route.startswith(f"{PATH}/")


def answer(handler: BaseHTTPRequestHandler, realtime: RealtimeServer | None) -> None:
    """Serves one request to the endpoint (POST, or the browser's OPTIONS preflight)."""
    if handler.command == "OPTIONS":
        reply(handler, 204, None)
        return
    if realtime is None:
        reply(handler, 503, {"message": "Realtime is not running"})
        return
    if realtime.api_keys.role(handler.headers.get("apikey", "")) is None:
        # Refused at the gateway, as hosted: the body is never read.
        handler.close_connection = True
        reply(handler, 401, {"message": "Invalid API key"})
        return
    try:
        messages, single = _messages(handler)
    except BadRequest as exc:
        reply(handler, exc.status, {"message": str(exc)})
        return
    bearer = handler.headers.get("Authorization", "")
    token = bearer[7:].strip() if bearer[:7].lower() == "bearer " else ""
    status, body = realtime.api_broadcast(
        handler.headers.get("apikey", ""), token, messages, single=single
    )
    reply(handler, status, body)


def _messages(handler: BaseHTTPRequestHandler) -> tuple[list[dict[str, Any]], bool]:
    url = urlsplit(handler.path)
    try:
        body = json.loads(read_body(handler, MAX_BODY_BYTES) or b"null")
    except BodyRefused as exc:
        raise BadRequest(exc.status, exc.message) from None
    except (ValueError, RecursionError):
        raise BadRequest(400, "the body is not JSON") from None
    route = url.path.rstrip("/")
    if route == PATH:
        listed = body.get("messages") if isinstance(body, dict) else None
        if not isinstance(listed, list) or not listed:
            raise BadRequest(422, "messages: can't be blank")
        return [_message(m) for m in listed], False
    parts = route.removeprefix(f"{PATH}/").split("/")
    if len(parts) != 3 or parts[1] != "events" or not parts[0] or not parts[2]:
        raise BadRequest(404, "not found")
    if body is None:
        raise BadRequest(422, "payload: can't be blank")
    private = (parse_qs(url.query).get("private") or ["false"])[0] == "true"
    topic, event = unquote(parts[0]), unquote(parts[2])
    return [{"topic": topic, "event": event, "payload": body, "private": private}], True


def _message(raw: Any) -> dict[str, Any]:
    if not isinstance(raw, dict):
        raise BadRequest(422, "messages: each message is an object")
    for name in ("topic", "event"):
        if not isinstance(raw.get(name), str) or not raw[name]:
            raise BadRequest(422, f"messages.{name}: can't be blank")
    if not isinstance(raw.get("payload"), dict):
        raise BadRequest(422, "messages.payload: can't be blank (an object)")
    private = raw.get("private", False)
    return {"topic": raw["topic"], "event": raw["event"], "payload": raw["payload"],
            "private": private is True or private == "true"}  # fmt: skip


def reply(
    handler: BaseHTTPRequestHandler, status: int, body: Any, cors: dict[str, str] = CORS
) -> None:
    """A JSON answer (None: no body) with open CORS, as Supabase's API answers."""
    data = b"" if body is None else json.dumps(body).encode()
    handler.send_response(status)
    for name, value in cors.items():
        handler.send_header(name, value)
    if body is not None:
        handler.send_header("Content-Type", "application/json")
    handler.send_header("Content-Length", str(len(data)))
    handler.end_headers()
    handler.wfile.write(data)
