"""make dev's line to the functions' process (infra/dev/reloader.py): calls
reuse one kept connection rather than a new one each (which tripled make
dev's CPU per request), and a kept connection to a process that died fails
the call at once, after which the next call gets a new process."""

from __future__ import annotations

import os
from collections.abc import Iterator

import pytest

from infra.dev.reloader import FunctionFailed, FunctionHost

pytestmark = pytest.mark.integration


@pytest.fixture
def host() -> Iterator[FunctionHost]:
    said: list[str] = []
    functions = FunctionHost(os.environ, said.append)
    functions.start()
    try:
        yield functions
    finally:
        functions.stop()


def test_calls_share_one_kept_connection_and_a_dead_process_is_replaced(
    host: FunctionHost,
) -> None:
    process = host.current()

    # When calls follow one another
    for _ in range(5):
        assert process.request({"ping": True}, 60)["ready"] is True

    # Then they all went over one connection, kept for the next
    assert len(process.idle) == 1
    [(conn, _)] = process.idle
    assert process.request({"ping": True}, 60)["ready"] is True
    assert [kept for kept, _ in process.idle] == [conn]

    # When the process dies under its kept connection
    process.popen.kill()
    process.popen.wait()

    # Then a call on it fails at once, saying so, and leaves no dead connection
    with pytest.raises(FunctionFailed, match="exited"):
        process.request({"ping": True}, 60)
    assert process.idle == []
    # And the next call is served by a new process
    replacement = host.current()
    assert replacement is not process
    assert replacement.request({"ping": True}, 60)["ready"] is True
