"""Metrics as CloudWatch Embedded Metric Format (EMF): what an invocation
measured, written as one JSON log line when it ends, through the project's
JSON logger (shared.logs). CloudWatch Logs turns such a line into metrics:
no API call, no permission beyond writing logs, nothing at init.

One namespace (METRICS_NAMESPACE, default "ChatFunctions") and two
dimensions: `function` (the log line's own field, the function's name as
its logs give it) and `stage` (STAGE; "local" outside AWS). Counts are
summed over the invocation, durations kept one value each; a line holds at
most 100 metrics and 100 values per metric, as the format allows (more are
split over several lines).

Recorded from anywhere in the code (`count`, `milliseconds`, `seconds`):
what an invocation records is kept in a context variable, so the threads of
the local dev server and the tasks of a request each write their own; what
is recorded outside any invocation (a JWKS fetch during init) joins the
next one. The entry points open and flush an invocation (`collecting`):
shared.http.app for every HTTP function, the worker's handler for SQS.

Why not Powertools' Metrics: it costs the cold start its import (its
package loads its Logger too), keeps one metric set per class, shared by
concurrent requests in one process, and writes with print() beside our
JSON lines; benchmarks/README.md has the measurement.
"""

from __future__ import annotations

import contextlib
import contextvars
import logging
import os
import re
import threading
import time
from collections.abc import Iterator

__all__ = [
    "collecting",
    "count",
    "dependency_failed",
    "milliseconds",
    "seconds",
    "suppressed",
]

Unit = str  # "Count", "Milliseconds", "Seconds": CloudWatch's StandardUnit names

MAX_METRICS_PER_LINE = 100
MAX_VALUES_PER_METRIC = 100
DEFAULT_NAMESPACE = "ChatFunctions"
DIMENSIONS = ("function", "stage")
# CloudWatch's own rule for a namespace (and what the EMF libraries check).
_NAMESPACE = re.compile(r"[A-Za-z0-9._#:/-]{1,255}")


def _setting(name: str, default: str) -> str:
    value = os.environ.get(name, "").strip() or default
    if not _NAMESPACE.fullmatch(value):
        raise SystemExit(
            f"configuration error: {name}={value!r} must be 1-255 characters of "
            "letters, digits and . _ # : / -"
        )
    return value


NAMESPACE = _setting("METRICS_NAMESPACE", DEFAULT_NAMESPACE)
STAGE = _setting("STAGE", "local")

_logger = logging.getLogger("shared.metrics")
# Metrics are written whatever LOG_LEVEL says: they are not diagnostics.
_logger.setLevel(logging.INFO)


class MetricSet:
    """What one invocation measured: name -> (unit, values); a count is
    summed into one value, anything else keeps each value."""

    __slots__ = ("_lock", "_metrics")

    def __init__(self) -> None:
        self._metrics: dict[str, tuple[Unit, list[float]]] = {}
        self._lock = threading.Lock()  # the worker's model reader is another thread

    def add(self, name: str, value: float, unit: Unit) -> None:
        with self._lock:
            known = self._metrics.get(name)
            if known is None:
                self._metrics[name] = (unit, [value])
            elif unit == "Count":
                known[1][0] += value
            else:
                known[1].append(value)

    def take(self, other: MetricSet) -> None:
        """Moves `other`'s measurements into this set."""
        with other._lock:
            taken, other._metrics = other._metrics, {}
        for name, (unit, values) in taken.items():
            for value in values:
                self.add(name, value, unit)

    def documents(self, timestamp_ms: int) -> list[dict[str, object]]:
        """The EMF members of each line: the `_aws` metadata and the values
        (the dimensions' values are the line's `function` and `stage`)."""
        with self._lock:
            metrics = {name: (unit, list(values)) for name, (unit, values) in self._metrics.items()}
        chunks: list[list[tuple[str, Unit, list[float]]]] = [[]]
        # Metrics with the most values first: their parts open the lines the
        # others then fill, so no more lines are written than needed.
        by_size = sorted(metrics.items(), key=lambda item: -len(item[1][1]))
        for name, (unit, values) in by_size:
            for start in range(0, len(values), MAX_VALUES_PER_METRIC):
                part = values[start : start + MAX_VALUES_PER_METRIC]
                # A name appears once per line: its further values go on later lines.
                line = next(
                    (c for c in chunks if len(c) < MAX_METRICS_PER_LINE
                     and all(n != name for n, _, _ in c)),
                    None,
                )  # fmt: skip
                if line is None:
                    line = []
                    chunks.append(line)
                line.append((name, unit, part))
        documents = []
        for chunk in chunks:
            if not chunk:
                continue
            document: dict[str, object] = {
                "_aws": {
                    "Timestamp": timestamp_ms,
                    "CloudWatchMetrics": [
                        {
                            "Namespace": NAMESPACE,
                            "Dimensions": [list(DIMENSIONS)],
                            "Metrics": [{"Name": name, "Unit": unit} for name, unit, _ in chunk],
                        }
                    ],
                },
                "stage": STAGE,
            }
            for name, _, values in chunk:
                document[name] = values[0] if len(values) == 1 else values
            documents.append(document)
        return documents


_current: contextvars.ContextVar[MetricSet | None] = contextvars.ContextVar("metrics", default=None)
_suppressed: contextvars.ContextVar[bool] = contextvars.ContextVar(
    "metrics_suppressed", default=False
)
# Recorded outside any invocation (during init): joins the next one.
_outside = MetricSet()
_first_invocation = True


def _add(name: str, value: float, unit: Unit) -> None:
    target = _current.get()
    (_outside if target is None else target).add(name, value, unit)


def count(name: str, value: int = 1) -> None:
    """Adds `value` to the invocation's count `name`."""
    _add(name, value, "Count")


def milliseconds(name: str, value: float) -> None:
    """One duration, in milliseconds."""
    _add(name, round(value, 3), "Milliseconds")


def seconds(name: str, value: float) -> None:
    """One measurement in seconds (an age)."""
    _add(name, round(value, 3), "Seconds")


def dependency_failed(code: str) -> None:
    """A dependency could not be reached (`<name>_unavailable`, the code of
    its 503): counted as `<Name>Unavailable`, e.g. DatabaseUnavailable."""
    if code.endswith("_unavailable"):
        count("".join(part.capitalize() for part in code.split("_")))


@contextlib.contextmanager
def collecting(function: str) -> Iterator[MetricSet]:
    """One invocation of `function`: what is recorded inside is written as
    EMF when it ends (with ColdStart on the first of the process)."""
    global _first_invocation
    measured = MetricSet()
    token = _current.set(measured)
    try:
        yield measured
    finally:
        _current.reset(token)
        measured.take(_outside)
        if not _suppressed.get():
            if _first_invocation:
                _first_invocation = False
                measured.add("ColdStart", 1, "Count")
            write(measured, function)


@contextlib.contextmanager
def suppressed() -> Iterator[None]:
    """Nothing recorded inside, or before, is written: SnapStart's priming
    request is not a user's, and what init measured would otherwise be
    reported again by every container restored from the snapshot."""
    token = _suppressed.set(True)
    try:
        yield
    finally:
        _suppressed.reset(token)


def write(measured: MetricSet, function: str) -> None:
    for document in measured.documents(int(time.time() * 1000)):
        _logger.info("metrics", extra={"function": function, **document})
