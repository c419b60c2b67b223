"""The model's reader thread (shared/llm/client.py): its log lines carry the
job's correlation id."""

from __future__ import annotations

import json
from collections.abc import Iterator

import httpx
import pytest

from shared import logs
from shared.llm.client import ChatMessage, OpenAICompatible
from tests.support.fake_llm import FakeLlm, running

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
