"""The one place where errors become HTTP responses:
`{"error": {"code": "...", "message": "..."}}`, never a traceback. A 503
for a dependency (`auth_unavailable`, `database_unavailable`, ...) is also
counted (AuthUnavailable, DatabaseUnavailable, ...: shared.metrics)."""

from __future__ import annotations

import logging
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

from shared import metrics
from shared.errors import AppError, RetryAfter, Unauthorized

logger = logging.getLogger("shared.http")

_HTTP_CODES = {404: "not_found", 405: "method_not_allowed"}


def error_response(
    status: int, code: str, message: str, *, headers: dict[str, str] | None = None, **extra: Any
) -> JSONResponse:
    body: dict[str, Any] = {"code": code, "message": message, **extra}
    return JSONResponse({"error": body}, status_code=status, headers=headers)


def _cause(exc: BaseException) -> str | None:
    """What failed underneath, as `module.Type: message` (the dependency's
    own error: httpx's, psycopg's, botocore's, postgrest's)."""
    cause = exc.__cause__ or exc.__context__
    if cause is None:
        return None
    kind = type(cause)
    return f"{kind.__module__}.{kind.__qualname__}: {cause}"[:1000]


def response_for(exc: AppError) -> JSONResponse:
    if exc.status >= 500:
        # The client gets the code; the log says which dependency failed and how.
        logger.warning(
            "%s %s: %s", exc.status, exc.code, exc.message,
            extra={"error_code": exc.code, "cause": _cause(exc)},
        )  # fmt: skip
        metrics.dependency_failed(exc.code)
    headers: dict[str, str] = {}
    extra: dict[str, Any] = {}
    if isinstance(exc, Unauthorized):
        headers["WWW-Authenticate"] = (
            f'Bearer error="invalid_token", error_description="{exc.code}"'
        )
    if isinstance(exc, RetryAfter):
        # 429 and 503: in the header for HTTP clients, in the body for scripts.
        headers["Retry-After"] = str(exc.retry_after)
        extra["retry_after"] = exc.retry_after
    return error_response(exc.status, exc.code, exc.message, headers=headers, **extra)


def _field(loc: tuple[Any, ...] | list[Any]) -> str:
    parts = [str(p) for p in loc if p not in ("body", "query", "header", "path")]
    return ".".join(parts) or "body"


async def _app_error(_: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, AppError)
    return response_for(exc)


async def _validation_error(_: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, RequestValidationError)
    errors = list(exc.errors())
    if any(e.get("type") == "json_invalid" for e in errors):
        return error_response(400, "invalid_json", "request body is not valid JSON")
    fields = [{"field": _field(e.get("loc", ())), "message": str(e.get("msg", ""))} for e in errors]
    names = ", ".join(dict.fromkeys(f["field"] for f in fields))
    return error_response(422, "invalid_request", f"invalid fields: {names}", fields=fields)


async def _http_error(_: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, StarletteHTTPException)
    code = _HTTP_CODES.get(exc.status_code, "http_error")
    return error_response(exc.status_code, code, str(exc.detail), headers=dict(exc.headers or {}))


async def _unexpected(_: Request, exc: Exception) -> JSONResponse:
    logger.exception("unhandled error: %s", type(exc).__name__)
    return error_response(500, "internal_error", "internal error")


def install(app: FastAPI) -> None:
    app.add_exception_handler(AppError, _app_error)
    app.add_exception_handler(RequestValidationError, _validation_error)
    app.add_exception_handler(StarletteHTTPException, _http_error)
    app.add_exception_handler(Exception, _unexpected)
