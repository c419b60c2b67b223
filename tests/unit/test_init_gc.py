"""The collector paused during init comes back, and only if it was on."""

from __future__ import annotations

import gc
from collections.abc import Iterator

import pytest

from shared import init_gc

pytestmark = pytest.mark.unit


@pytest.fixture(autouse=True)
def _restore_collector() -> Iterator[None]:
    was_enabled = gc.isenabled()
    yield
    gc.unfreeze()
    if was_enabled:
        gc.enable()
    else:
        gc.disable()


def test_pause_stops_collection_and_resume_freezes_and_restarts_it() -> None:
    # Given a process with the collector on
    gc.enable()
    gc.unfreeze()
    # When init pauses it
    init_gc.pause()
    # Then nothing is collected while the function loads
    assert not gc.isenabled()
    # And when the handler is built, what exists is frozen and collection is back on
    init_gc.resume()
    assert gc.isenabled()
    assert gc.get_freeze_count() > 0


def test_a_collector_the_host_turned_off_stays_off() -> None:
    # Given an embedding process that runs without the cyclic collector
    gc.unfreeze()
    gc.disable()
    # When a function is loaded into it
    init_gc.pause()
    init_gc.resume()
    # Then its choice stands and nothing was frozen on its behalf
    assert not gc.isenabled()
    assert gc.get_freeze_count() == 0


def test_a_second_resume_changes_nothing() -> None:
    # Given a process whose first handler already resumed collection
    gc.enable()
    init_gc.pause()
    init_gc.resume()
    # When the host turns it off and another handler finishes loading
    gc.disable()
    init_gc.resume()
    # Then the host's setting is kept
    assert not gc.isenabled()


def test_outside_lambda_importing_a_function_leaves_the_collector_alone(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # Given a process that is not Lambda's runtime (tests, the dev server)
    monkeypatch.delenv("AWS_LAMBDA_FUNCTION_NAME", raising=False)
    gc.enable()
    # When a function package starts loading
    init_gc.pause_in_lambda()
    # Then collection goes on
    assert gc.isenabled()


def test_in_lambda_the_collector_is_paused_while_the_function_loads(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # Given Lambda's runtime loading a function
    monkeypatch.setenv("AWS_LAMBDA_FUNCTION_NAME", "chat-functions-ci-thread-ensure")
    gc.enable()
    # When the function package starts loading
    init_gc.pause_in_lambda()
    # Then collection waits for the handler
    assert not gc.isenabled()
    init_gc.resume()
    assert gc.isenabled()
