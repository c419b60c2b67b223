"""The reply deadline bounds the whole model call, whatever the provider does
at the socket: never answering, sending headers then nothing, dripping."""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Callable, Iterator

import httpx
import pytest

from shared.llm.client import ChatMessage, LlmError, LlmTimeout, OpenAICompatible

pytestmark = pytest.mark.unit

HEADERS = b"HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\n\r\n"


def _silent(conn: socket.socket, stop: threading.Event) -> None:
    stop.wait(10)  # accepts, reads nothing, answers nothing


def _headers_then_nothing(conn: socket.socket, stop: threading.Event) -> None:
    conn.sendall(HEADERS)
    stop.wait(10)


def _drip(conn: socket.socket, stop: threading.Event) -> None:
    conn.sendall(HEADERS + b'data: {"choices": [{"delta": {"content": "slow"}}]}\n\n')
    while not stop.wait(0.2):  # each byte well within any per-read timeout
        conn.sendall(b":")


@pytest.fixture(params=[_silent, _headers_then_nothing, _drip])
def provider(request: pytest.FixtureRequest) -> Iterator[str]:
    behave: Callable[[socket.socket, threading.Event], None] = request.param
    stop = threading.Event()
    listener = socket.create_server(("127.0.0.1", 0))
    port = listener.getsockname()[1]

    def serve() -> None:
        conn, _ = listener.accept()
        try:
            behave(conn, stop)
        except OSError:
            pass
        finally:
            conn.close()

    threading.Thread(target=serve, daemon=True).start()
    yield f"http://127.0.0.1:{port}/api/v1"
    stop.set()
    listener.close()


def test_the_deadline_holds_whatever_the_socket_does(provider: str) -> None:
    # A per-read timeout far beyond the deadline, as the container's client has
    with httpx.Client(timeout=httpx.Timeout(30.0, connect=5.0)) as http:
        model = OpenAICompatible(provider, "sk-test", http, deadline_seconds=60)
        started = time.monotonic()
        stream = model.stream("m", [ChatMessage("user", "hi")], deadline=started + 1.0)
        with pytest.raises(LlmError) as failed:
            list(stream)
        took = time.monotonic() - started
    # The deadline, as the caller's wait or as the reader's read timeout
    # (set to the same instant: under load either may fire first)
    assert isinstance(failed.value, LlmTimeout)
    assert failed.value.retryable
    assert 1.0 <= took < 1.5, took
