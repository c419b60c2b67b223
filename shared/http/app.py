"""One app factory for every HTTP function: FastAPI behind Mangum on Lambda.

Every app gets the same error bodies, body guard, CORS from ALLOWED_ORIGINS,
request ids in logs and responses, and its own OpenAPI document.
"""

from __future__ import annotations

import uuid
from collections.abc import Awaitable, Callable
from typing import Any

from fastapi import FastAPI, Request, Response
from mangum import Mangum

from shared import container
from shared.http import errors
from shared.http.cors import CorsMiddleware
from shared.http.guard import BodyGuard
from shared.logs import get_logger

LambdaHandler = Callable[[dict[str, Any], Any], dict[str, Any]]


def _request_id(request: Request) -> str:
    event = request.scope.get("aws.event") or {}
    from_gateway = (event.get("requestContext") or {}).get("requestId")
    from_header = request.headers.get("x-request-id", "")
    if isinstance(from_gateway, str) and from_gateway:
        return from_gateway
    if from_header and len(from_header) <= 128 and from_header.isprintable():
        return from_header
    return str(uuid.uuid4())


def create_app(service: str, *, methods: str = "GET, POST") -> FastAPI:
    logger = get_logger(service)
    app = FastAPI(title=service, docs_url=None, redoc_url=None, openapi_url="/openapi.json")
    errors.install(app)

    @app.middleware("http")
    async def request_context(
        request: Request, call_next: Callable[[Request], Awaitable[Response]]
    ) -> Response:
        request_id = _request_id(request)
        logger.set_correlation_id(request_id)
        response = await call_next(request)
        response.headers["x-request-id"] = request_id
        logger.info(
            "request", extra={"method": request.method, "path": request.url.path,
                              "status": response.status_code}
        )  # fmt: skip
        return response

    app.add_middleware(BodyGuard)
    app.add_middleware(
        CorsMiddleware, origins=lambda: container.settings().allowed_origins, methods=methods
    )
    return app


def lambda_handler(app: FastAPI) -> LambdaHandler:
    """The Lambda entry point for an app (API Gateway HTTP API v2 events)."""
    adapter = Mangum(app, lifespan="off")

    def handler(event: dict[str, Any], context: Any) -> dict[str, Any]:
        return adapter(event, context)

    return handler
