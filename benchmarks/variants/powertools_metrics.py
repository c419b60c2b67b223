"""shared/metrics.py's interface on Powertools' Metrics, as Powertools'
own examples use it (one module-level `Metrics`, `add_metric` with a
`MetricUnit`, dimensions added per invocation, `flush_metrics()` when it
ends): copied over shared/metrics.py in a copy of each artifact, so the
cold-start benchmark measures what Powertools would cost instead of our EMF
lines. Not used by the product."""

from __future__ import annotations

import contextlib
import contextvars
import os
from collections.abc import Iterator

from aws_lambda_powertools import Metrics
from aws_lambda_powertools.metrics import MetricUnit

NAMESPACE = os.environ.get("METRICS_NAMESPACE", "").strip() or "ChatFunctions"
STAGE = os.environ.get("STAGE", "").strip() or "local"

_metrics = Metrics(namespace=NAMESPACE)
_suppressed: contextvars.ContextVar[bool] = contextvars.ContextVar(
    "metrics_suppressed", default=False
)


def count(name: str, value: int = 1) -> None:
    _metrics.add_metric(name=name, unit=MetricUnit.Count, value=value)


def milliseconds(name: str, value: float) -> None:
    _metrics.add_metric(name=name, unit=MetricUnit.Milliseconds, value=value)


def seconds(name: str, value: float) -> None:
    _metrics.add_metric(name=name, unit=MetricUnit.Seconds, value=value)


def dependency_failed(code: str) -> None:
    if code.endswith("_unavailable"):
        count("".join(part.capitalize() for part in code.split("_")))


@contextlib.contextmanager
def collecting(function: str) -> Iterator[None]:
    try:
        yield
    finally:
        if _suppressed.get():
            _metrics.clear_metrics()
        else:
            _metrics.add_dimension(name="function", value=function)
            _metrics.add_dimension(name="stage", value=STAGE)
            _metrics.flush_metrics(raise_on_empty_metrics=False)


@contextlib.contextmanager
def suppressed() -> Iterator[None]:
    token = _suppressed.set(True)
    try:
        yield
    finally:
        _suppressed.reset(token)
