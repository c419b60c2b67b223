"""The model's reader thread (shared/llm/client.py): its log lines carry the
job's correlation id, and it stops as soon as nobody waits for it (the
stream closed, the deadline passed), not when its read timeout runs out."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Generator, Iterator
from typing import cast

import httpx
import pytest

from shared import logs
from shared.llm.client import ChatMessage, LlmError, OpenAICompatible
from tests.support.fake_llm import FakeLlm, Step, reply, running

pytestmark = pytest.mark.unit

ASK = [ChatMessage("user", "hi")]


@pytest.fixture
def llm() -> Iterator[FakeLlm]:
    with running(FakeLlm()) as fake:
        yield fake


@pytest.fixture
def http() -> Iterator[httpx.Client]:
    # A per-read timeout far beyond any deadline here, as the container's client has
    with httpx.Client(timeout=httpx.Timeout(60.0, connect=5.0)) as client:
        yield client


def _reader(before: set[threading.Thread]) -> threading.Thread:
    [thread] = [t for t in threading.enumerate() if t.name == "llm-stream" and t not in before]
    return thread


def test_the_reader_s_log_lines_carry_the_job_s_correlation_id(
    llm: FakeLlm, http: httpx.Client, capsys: pytest.CaptureFixture[str]
) -> None:
    logs.configure()
    capsys.readouterr()
    model = OpenAICompatible(llm.url, "sk-test", http, deadline_seconds=10)
    with logs.invocation("bot-worker", "job-message-1"):
        assert "".join(model.stream("m", ASK)) == "Hello from the model"
    # httpx's request line is written by the thread that makes the request
    lines = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    [request] = [x for x in lines if x["logger"] == "httpx"]
    assert request["correlation_id"] == "job-message-1"
    assert request["function"] == "bot-worker"


def test_a_stream_closed_early_stops_its_reader_at_once(llm: FakeLlm, http: httpx.Client) -> None:
    # Given a provider that sends a token, then nothing for 20 s
    llm.script = [reply("first second", delay_between=20)]
    model = OpenAICompatible(llm.url, "sk-test", http, deadline_seconds=30)
    before = set(threading.enumerate())
    stream = cast(Generator[str, None, None], model.stream("m", ASK))
    # When the caller has what it wants (a long reply cut, a budget) and closes the stream
    assert next(stream) == "first"
    reader = _reader(before)
    stream.close()
    # Then the reader does not wait on its socket for the next token
    reader.join(5)
    assert not reader.is_alive()


def test_at_the_deadline_the_reader_ends_with_it(llm: FakeLlm, http: httpx.Client) -> None:
    # Given a provider whose tokens come every 4 s: the second just before
    # the 4.5 s deadline, the third long after it
    llm.script = [Step(tokens=["a", "b", "c"], delay_between=4)]
    model = OpenAICompatible(llm.url, "sk-test", http, deadline_seconds=4.5)
    before = set(threading.enumerate())
    stream = model.stream("m", ASK)
    assert next(stream) == "a"
    reader = _reader(before)
    # When the deadline passes while the reader waits on its socket
    with pytest.raises(LlmError, match="no answer in time"):
        list(stream)
    failed_at = time.monotonic()
    # Then the reader ends with it, not when its read timeout (up to the
    # whole deadline after the last byte) runs out
    reader.join(1.5)
    assert not reader.is_alive(), time.monotonic() - failed_at
