"""One app factory for every HTTP function: FastAPI behind Mangum on Lambda.

Routes and dependencies are `async def` and call the database inline: a
Lambda container serves one request at a time, and FastAPI would otherwise
hand every sync callable to a worker thread (Mangum starts a fresh event loop,
so a fresh thread, per invocation).

Every app gets the same error bodies, body guard, CORS from ALLOWED_ORIGINS,
request ids in logs and responses, and its own OpenAPI document.
"""

from __future__ import annotations

import asyncio
import threading
import uuid
from collections.abc import Callable
from typing import Any

from fastapi import FastAPI
from mangum import Mangum
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from shared import container
from shared.http import cors, errors
from shared.http.guard import BodyGuard
from shared.logs import Logger, get_logger
from shared.tracing import traced

LambdaHandler = Callable[[dict[str, Any], Any], dict[str, Any]]


def _request_id(scope: Scope) -> str:
    event: dict[str, Any] = scope.get("aws.event") or {}
    from_gateway: Any = (event.get("requestContext") or {}).get("requestId")
    if isinstance(from_gateway, str) and from_gateway:
        return str(from_gateway)
    raw: bytes = dict(scope["headers"]).get(b"x-request-id", b"")
    from_header = raw.decode("latin-1")
    if from_header and len(from_header) <= 128 and from_header.isprintable():
        return from_header
    return str(uuid.uuid4())


class RequestContext:
    """Correlates log lines with the request id and returns it as x-request-id.
    Pure ASGI: Starlette's BaseHTTPMiddleware costs a task and streams per request."""

    def __init__(self, app: ASGIApp, logger: Logger) -> None:
        self.app = app
        self.logger = logger

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        request_id = _request_id(scope)
        self.logger.set_correlation_id(request_id)
        status = 500

        async def send_with_id(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
                message["headers"] = [
                    *message.get("headers", []),
                    (b"x-request-id", request_id.encode("latin-1")),
                ]
            await send(message)

        await self.app(scope, receive, send_with_id)
        self.logger.info(
            "request", extra={"method": scope["method"], "path": scope["path"], "status": status}
        )


def create_app(service: str, *, methods: str = "GET, POST") -> FastAPI:
    logger = get_logger(service)
    app = FastAPI(title=service, docs_url=None, redoc_url=None, openapi_url="/openapi.json")
    errors.install(app)

    app.add_middleware(BodyGuard)
    app.add_middleware(
        cors.CORSMiddleware, **cors.options(container.settings().allowed_origins, methods)
    )
    app.add_middleware(RequestContext, logger=logger)
    return app


_thread_state = threading.local()


def _event_loop_for_this_thread() -> None:
    """Mangum runs each event on the thread's current loop. Lambda calls us on
    the main thread; the local server calls from worker threads, which have
    none until we give them one (kept for the thread's next events)."""
    loop = getattr(_thread_state, "loop", None)
    if loop is None or loop.is_closed():
        loop = asyncio.new_event_loop()
        _thread_state.loop = loop
    asyncio.set_event_loop(loop)


def lambda_handler(app: FastAPI) -> LambdaHandler:
    """The Lambda entry point for an app (API Gateway HTTP API v2 events)."""
    adapter = Mangum(app, lifespan="off")

    def handler(event: dict[str, Any], context: Any) -> dict[str, Any]:
        _event_loop_for_this_thread()
        return adapter(event, context)

    return traced(handler, app.title)
