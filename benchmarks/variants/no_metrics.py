"""shared/metrics.py's interface doing nothing: copied over shared/metrics.py
in a copy of each artifact, so the cold-start benchmark measures what the
metrics path (its import, the recording, the line written when the first
invocation ends) costs, side by side with the same artifact without it.
Not used by the product."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator


def count(name: str, value: int = 1) -> None:
    pass


def milliseconds(name: str, value: float) -> None:
    pass


def seconds(name: str, value: float) -> None:
    pass


def dependency_failed(code: str) -> None:
    pass


@contextlib.contextmanager
def collecting(function: str) -> Iterator[None]:  # noqa: ARG001 (the interface)
    yield


@contextlib.contextmanager
def suppressed() -> Iterator[None]:
    yield
