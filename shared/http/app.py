"""One app factory for every HTTP function: FastAPI behind Mangum on Lambda.

Routes and dependencies are `async def` and call the database inline: a
Lambda container serves one request at a time, and FastAPI would otherwise
hand every sync callable to a worker thread (Mangum starts a fresh event loop,
so a fresh thread, per invocation).

Every app gets the same error bodies, body guard, CORS from ALLOWED_ORIGINS,
request ids in logs and responses, metrics (shared.metrics: requests by
status class and latency, written as EMF when the invocation ends), and its
own OpenAPI document. A function may also take EventBridge's scheduled
events (`lambda_handler(..., scheduled=...)`), measured the same way.

Under SnapStart (shared/snapstart.py) the handler primes itself at init:
every client built, the JWKS fetched (public keys), the crypto exercised on
a fixed test token (as at every cold start), and one synthetic request without credentials served
through Mangum, the middleware, routing, body validation and the auth
dependency, which refuses it before any I/O.
"""

from __future__ import annotations

import asyncio
import contextlib
import threading
import time
import uuid
from collections.abc import Callable, Sequence
from typing import Any

from fastapi import FastAPI
from fastapi.routing import APIRoute
from mangum import Mangum
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from shared import container, init_gc, logs, metrics, snapstart
from shared.http import cors, errors
from shared.http.guard import BodyGuard
from shared.logs import Logger, get_logger
from shared.tracing import traced

LambdaHandler = Callable[[dict[str, Any], Any], dict[str, Any]]


def request_id(event: dict[str, Any]) -> str:
    """API Gateway's id for the request, else a sane `x-request-id` the
    caller sent, else a new one. Sane: printable ASCII, at most 128
    characters, as it goes back in a response header (anything else there
    would fail the response) and into every log line."""
    from_gateway: Any = (event.get("requestContext") or {}).get("requestId")
    if _sane_id(from_gateway):
        return str(from_gateway)
    headers: Any = event.get("headers") or {}
    from_header = next((v for k, v in headers.items() if str(k).lower() == "x-request-id"), None)
    if _sane_id(from_header):
        return str(from_header)
    return str(uuid.uuid4())


def _sane_id(value: Any) -> bool:
    return (
        isinstance(value, str) and 0 < len(value) <= 128 and value.isascii() and value.isprintable()
    )


class RequestContext:
    """Wraps the whole app, outside Starlette's error middleware: returns the
    request id as x-request-id, writes one access line per request, 500s
    from unhandled errors included, and counts it (Requests, Requests<N>xx,
    Latency in milliseconds). Such an error was logged, with its
    traceback, by shared.http.errors; once its 500 has been sent it ends
    here (Mangum would log it again, as a second traceback). Pure ASGI:
    Starlette's BaseHTTPMiddleware costs a task and streams per request."""

    def __init__(self, app: ASGIApp, logger: Logger) -> None:
        self.app = app
        self.logger = logger

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        request_id = logs.correlation_id() or str(uuid.uuid4())
        status, sent = 500, False
        started = time.perf_counter()

        async def send_with_id(message: Message) -> None:
            nonlocal status, sent
            if message["type"] == "http.response.start":
                status = message["status"]
                message["headers"] = [
                    *message.get("headers", []),
                    (b"x-request-id", request_id.encode("latin-1")),
                ]
            elif message["type"] == "http.response.body" and not message.get("more_body"):
                sent = True
            await send(message)

        try:
            await self.app(scope, receive, send_with_id)
        except Exception:
            if not sent:
                raise
        finally:
            metrics.milliseconds("Latency", (time.perf_counter() - started) * 1000)
            metrics.count("Requests")
            metrics.count(f"Requests{status // 100}xx")
            method, path = scope["method"], scope["path"]
            self.logger.info(
                f"{method} {path} {status}",
                extra={"method": method, "path": path, "status": status},
            )


def create_app(service: str, *, methods: str = "GET, POST") -> FastAPI:
    logs.configure(service)
    app = FastAPI(title=service, docs_url=None, redoc_url=None, openapi_url="/openapi.json")
    errors.install(app)

    app.add_middleware(BodyGuard)
    app.add_middleware(
        cors.CORSMiddleware, **cors.options(container.settings().allowed_origins, methods)
    )
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


def _adopt_current_loop() -> None:
    """Mangum's constructor sets a loop on this thread: use that one rather
    than leaving it open beside ours."""
    if getattr(_thread_state, "loop", None) is None:
        with contextlib.suppress(RuntimeError):
            _thread_state.loop = asyncio.get_event_loop()


def _close_event_loop() -> None:
    """Before a snapshot: an event loop's self-pipe is a socket pair."""
    loop = getattr(_thread_state, "loop", None)
    if loop is not None and not loop.is_closed():
        loop.close()


snapstart.register(before_snapshot=_close_event_loop)


def priming_event(app: FastAPI) -> dict[str, Any]:
    """An API Gateway v2 event for the app's first route: no credentials, an
    empty JSON body, so it is refused (4xx) before any database or network."""
    route = next(r for r in app.routes if isinstance(r, APIRoute))
    method = sorted(route.methods or {"GET"})[0]
    return {
        "version": "2.0",
        "routeKey": f"{method} {route.path}",
        "rawPath": route.path,
        "rawQueryString": "",
        "headers": {"host": "snapstart.invalid", "content-type": "application/json"},
        "requestContext": {
            "http": {
                "method": method,
                "path": route.path,
                "protocol": "HTTP/1.1",
                "sourceIp": "127.0.0.1",
                "userAgent": "snapstart-priming",
            },
            "requestId": "snapstart-priming",
            "routeKey": f"{method} {route.path}",
            "stage": "$default",
        },
        "body": "{}",
        "isBase64Encoded": False,
    }


def prime(
    handler: LambdaHandler, app: FastAPI, also: Sequence[Callable[[], object]] = ()
) -> dict[str, Any]:
    """Everything a request needs, built and run once at init (SnapStart)."""
    for build in also:
        build()
    container.database()
    container.verifier()  # ES256 verification proven on a fixed test vector
    container.jwks().prefetch()
    with metrics.suppressed():
        response = handler(priming_event(app), None)
    if not 400 <= int(response["statusCode"]) < 500:
        raise RuntimeError(f"priming request answered {response['statusCode']}, expected 4xx")
    return response


def is_scheduled(event: dict[str, Any]) -> bool:
    """An EventBridge schedule's event (a rule's `schedule` in serverless.yml)."""
    return event.get("source") == "aws.events" and event.get("detail-type") == "Scheduled Event"


def lambda_handler(
    app: FastAPI,
    *,
    prime_also: Sequence[Callable[[], object]] = (),
    scheduled: Callable[[], dict[str, Any]] | None = None,
) -> LambdaHandler:
    """The Lambda entry point for an app (API Gateway HTTP API v2 events);
    `prime_also` builds what else its requests use (SnapStart priming);
    `scheduled` answers the function's EventBridge schedule, if it has one.
    Each invocation's metrics are written when it ends."""
    function = app.title
    adapter = Mangum(RequestContext(app, get_logger(function)), lifespan="off")
    _adopt_current_loop()

    def handler(event: dict[str, Any], context: Any) -> dict[str, Any]:
        if scheduled is not None and is_scheduled(event):
            with (
                logs.invocation(function, str(event.get("id") or "")),
                metrics.collecting(function),
            ):
                return scheduled()
        _event_loop_for_this_thread()
        # Set before Mangum starts the request's task, which copies them.
        with logs.invocation(function, request_id(event)), metrics.collecting(function):
            return adapter(event, context)

    if snapstart.enabled():
        prime(handler, app, prime_also)  # untraced: there is no trace during init
    entry = traced(handler, app.title)
    init_gc.resume()  # last: tracing's imports (when on) are init's too
    return entry
