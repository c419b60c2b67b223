"""Typed errors of the domain and the platform; mapped to HTTP in one place
(shared.http.errors). Messages are safe to show to a client."""

from __future__ import annotations


class AppError(Exception):
    """An error a client may see: an HTTP status, a stable code, a message."""

    status: int = 500
    code: str = "internal_error"

    def __init__(self, message: str, *, code: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        if code:
            self.code = code


class BadRequest(AppError):
    status, code = 400, "bad_request"


class Unauthorized(AppError):
    status, code = 401, "unauthorized"


class Forbidden(AppError):
    status, code = 403, "forbidden"


class NotFound(AppError):
    status, code = 404, "not_found"


class Conflict(AppError):
    status, code = 409, "conflict"


class PayloadTooLarge(AppError):
    status, code = 413, "payload_too_large"


class UnsupportedMediaType(AppError):
    status, code = 415, "unsupported_media_type"


class Unprocessable(AppError):
    status, code = 422, "invalid_request"


class RetryAfter(AppError):
    """Refused for now: `retry_after` seconds is when trying again may succeed
    (the Retry-After header)."""

    def __init__(self, message: str, *, code: str | None = None, retry_after: int = 1) -> None:
        super().__init__(message, code=code)
        self.retry_after = max(1, retry_after)


class TooManyRequests(RetryAfter):
    """The caller is over a rate limit (the database's 'PT429')."""

    status, code = 429, "rate_limited"


class ServiceUnavailable(RetryAfter):
    """A dependency (database, auth server, queue) cannot be reached now."""

    status, code = 503, "service_unavailable"


class ConfigurationError(RuntimeError):
    """A missing or malformed setting: raised at cold start, never per request."""


_BY_STATUS: dict[int, type[AppError]] = {
    cls.status: cls
    for cls in (
        BadRequest,
        Unauthorized,
        Forbidden,
        NotFound,
        Conflict,
        PayloadTooLarge,
        UnsupportedMediaType,
        Unprocessable,
        TooManyRequests,
        ServiceUnavailable,
    )
}


def error_for_status(
    status: int, message: str, code: str | None = None, *, retry_after: int | None = None
) -> AppError:
    """The typed error for an HTTP status (for example a database's 'PT404');
    `retry_after` for the statuses that say when to try again."""
    cls = _BY_STATUS.get(status)
    if cls is None:
        error = AppError(message, code=code)
        error.status = status if 400 <= status < 600 else 500
        return error
    if issubclass(cls, RetryAfter) and retry_after is not None:
        return cls(message, code=code, retry_after=retry_after)
    return cls(message, code=code)
