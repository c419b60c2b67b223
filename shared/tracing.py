"""X-Ray tracing, only when TRACING_ENABLED=true: importing the tracer costs
about 300 ms of cold start, so a function that does not trace never pays it."""

from __future__ import annotations

import os
from collections.abc import Callable
from typing import Any, TypeVar, cast

Handler = TypeVar("Handler", bound=Callable[..., Any])


def enabled() -> bool:
    return os.environ.get("TRACING_ENABLED", "false").strip().lower() in ("1", "true", "yes")


def traced(handler: Handler, service: str) -> Handler:
    if not enabled():
        return handler
    from aws_lambda_powertools import Tracer

    return cast(Handler, Tracer(service=service).capture_lambda_handler(handler))
