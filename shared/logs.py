"""Every log line a function writes is one JSON object on stdout: ours and
every library's (FastAPI, Starlette, Mangum, httpx, httpcore, botocore,
psycopg, the bot worker's and the model client's loggers), through one
handler on the root logger that `configure` installs at cold start (any
other handler the root logger had, Lambda's own or basicConfig's, is
replaced). Level from LOG_LEVEL, for every logger.

Each line: timestamp, level, message, logger, the function, the request's
correlation id (API Gateway's request id, or the SQS message id), the extra
fields a call passes; an error's exception as {type, message, traceback}
inside the object. The function and the correlation id are context
variables set per invocation (shared.http.app, the worker): each thread of
the local dev server, and each request's task, sees its own.

Never pass a token, key or secret to a log call. As a second line of
defence, what looks like one (a JWT, a bearer credential, a Supabase or
provider secret key, a URL's password, an AWS signature or session token)
is masked in every line, whoever wrote it.

The standard library's logging with this formatter, not Powertools' Logger
(the same JSON, but its import cost every HTTP function's cold start about
14 ms; benchmarks/README.md).
"""

from __future__ import annotations

import contextlib
import contextvars
import json
import logging
import os
import re
import sys
import time
import traceback
from collections.abc import Iterator, Mapping
from typing import Any

__all__ = ["Logger", "configure", "correlation_id", "get_logger", "invocation"]

_correlation_id: contextvars.ContextVar[str | None] = contextvars.ContextVar(
    "correlation_id", default=None
)
_function: contextvars.ContextVar[str | None] = contextvars.ContextVar("function", default=None)
_default_function: str | None = None

# Attributes every LogRecord has; anything else came from `extra`.
_STANDARD = set(logging.makeLogRecord({}).__dict__) | {"message", "asctime", "taskName"}

_MASKS = [
    # JWTs (access tokens, legacy anon/service keys): three base64url segments
    (re.compile(r"eyJ[A-Za-z0-9_-]{4,}\.[A-Za-z0-9_-]+\.[A-Za-z0-9_-]*"), "[masked jwt]"),
    (re.compile(r"(?i)\b(bearer|basic)\s+[A-Za-z0-9._~+/=-]{8,}"), r"\1 [masked]"),
    (re.compile(r"\bsb_(secret|publishable)_[A-Za-z0-9_-]+"), r"sb_\1_[masked]"),
    (re.compile(r"\bsk-[A-Za-z0-9_-]{16,}"), "sk-[masked]"),
    (re.compile(r"(://[^/\s:@\"\\]+):[^/\s@\"\\]+@"), r"\1:[masked]@"),
    (
        # botocore writes header values as bytes: 'X-Amz-Security-Token': b'IQo...'
        re.compile(
            r"(?i)(signature=|x-amz-security-token['\"]?\s*[:=]\s*b?['\"]?)[A-Za-z0-9/+=%]+"
        ),
        r"\1[masked]",
    ),
]


# Library loggers whose DEBUG lines carry whole requests or responses:
# botocore's (the SigV4 session token and signature, SSM's decrypted
# GetParameters answer, SQS message bodies) and httpcore's (response
# headers, Set-Cookie included). Never below INFO, whatever LOG_LEVEL says;
# botocore's other loggers and httpcore's connection lines still debug.
HEADER_AND_BODY_LOGGERS = (
    "botocore.endpoint",
    "botocore.auth",
    "botocore.parsers",
    "httpcore.http11",
    "httpcore.http2",
    "httpcore.proxy",
)


def _masked(text: str) -> str:
    for pattern, replacement in _MASKS:
        text = pattern.sub(replacement, text)
    return text


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        line: dict[str, Any] = {
            "timestamp": time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(record.created))
            + f".{int(record.msecs):03d}Z",
            "level": record.levelname,
            "message": record.getMessage(),
            "logger": record.name,
            "location": f"{record.module}:{record.funcName}:{record.lineno}",
        }
        function = _function.get() or _default_function
        if function:
            line["function"] = function
        correlation = _correlation_id.get()
        if correlation is not None:
            line["correlation_id"] = correlation
        line.update((k, v) for k, v in record.__dict__.items() if k not in _STANDARD)
        if record.exc_info and record.exc_info[1] is not None:
            error = record.exc_info[1]
            line["exception"] = {
                "type": _qualified(type(error)),
                "message": str(error),
                "traceback": "".join(traceback.format_exception(*record.exc_info)),
            }
        if record.stack_info:
            line["stack"] = record.stack_info
        return _masked(json.dumps(line, default=str))


def _qualified(cls: type) -> str:
    module = cls.__module__
    return cls.__qualname__ if module == "builtins" else f"{module}.{cls.__qualname__}"


class _StdoutHandler(logging.Handler):
    """Writes to the current sys.stdout (Lambda's runtime wraps it at start;
    tests capture it), one line per record."""

    def emit(self, record: logging.LogRecord) -> None:
        try:
            line = self.format(record)
            sys.stdout.write(line + "\n")
            sys.stdout.flush()
        except RecursionError:
            raise
        except Exception:
            self.handleError(record)


def _level(name: str) -> int:
    level = logging.getLevelName(name.strip().upper() or "INFO")
    if not isinstance(level, int):
        raise SystemExit(
            f"configuration error: LOG_LEVEL={name!r} is not a level: use DEBUG, INFO, "
            "WARNING, ERROR or CRITICAL"
        )
    return level


def configure(function: str | None = None) -> None:
    """Installs the JSON handler on the root logger (once) at the level
    LOG_LEVEL names, and names the function for lines written outside an
    invocation (by default Lambda's AWS_LAMBDA_FUNCTION_NAME)."""
    global _default_function
    if function is not None:
        _default_function = function
    elif _default_function is None:
        _default_function = os.environ.get("AWS_LAMBDA_FUNCTION_NAME") or None
    root = logging.getLogger()
    level = _level(os.environ.get("LOG_LEVEL", "INFO"))
    root.setLevel(level)
    # Mangum's access line ("POST /path 200") repeats ours, which has the
    # status as a field: written at DEBUG only. Its errors are kept.
    logging.getLogger("mangum.http").setLevel(
        logging.NOTSET if level <= logging.DEBUG else max(level, logging.WARNING)
    )
    for name in HEADER_AND_BODY_LOGGERS:
        logging.getLogger(name).setLevel(max(level, logging.INFO))
    if any(isinstance(handler, _StdoutHandler) for handler in root.handlers):
        return
    for handler in list(root.handlers):
        # Lambda's runtime handler (plain text) and basicConfig's stream
        # handler: replaced, or every line would be written twice. Others
        # (a test's capture) are left alone.
        if type(handler).__name__.startswith("LambdaLoggerHandler") or (
            type(handler) is logging.StreamHandler
        ):
            root.removeHandler(handler)
    handler = _StdoutHandler()
    handler.setFormatter(JsonFormatter())
    root.addHandler(handler)


@contextlib.contextmanager
def invocation(function: str, correlation: str | None) -> Iterator[None]:
    """The function and correlation id of the lines written inside it."""
    function_token = _function.set(function)
    correlation_token = _correlation_id.set(correlation)
    try:
        yield
    finally:
        _correlation_id.reset(correlation_token)
        _function.reset(function_token)


def correlation_id() -> str | None:
    """The current invocation's correlation id."""
    return _correlation_id.get()


class Logger:
    """A named logger whose calls take `extra` fields (kept for the callers
    written against Powertools' API)."""

    def __init__(self, service: str) -> None:
        self._service = service
        self._logger = logging.getLogger(service)

    def set_correlation_id(self, value: str | None) -> None:
        """For this context (thread, task) from now on, with this logger's
        service as the function."""
        _function.set(self._service)
        _correlation_id.set(value)

    def debug(self, msg: str, *, extra: Mapping[str, Any] | None = None) -> None:
        self._logger.debug(msg, extra=extra, stacklevel=2)

    def info(self, msg: str, *, extra: Mapping[str, Any] | None = None) -> None:
        self._logger.info(msg, extra=extra, stacklevel=2)

    def warning(self, msg: str, *, extra: Mapping[str, Any] | None = None) -> None:
        self._logger.warning(msg, extra=extra, stacklevel=2)

    def exception(self, msg: str, *, extra: Mapping[str, Any] | None = None) -> None:
        self._logger.exception(msg, extra=extra, stacklevel=2)


_loggers: dict[str, Logger] = {}


def get_logger(service: str) -> Logger:
    """The service's logger; configures logging for the process (once)."""
    if service not in _loggers:
        configure(service)
        _loggers[service] = Logger(service)
    return _loggers[service]
