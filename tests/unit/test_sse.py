"""Server-sent events and OpenAI-style stream chunks are parsed robustly."""

from __future__ import annotations

import json

import pytest

from shared.llm.client import LlmError, OpenAICompatible
from shared.llm.sse import events

pytestmark = pytest.mark.unit


def test_events_join_data_lines_and_skip_comments() -> None:
    lines = [
        ": OPENROUTER PROCESSING",
        "",
        "data: a",
        "data: b",
        "",
        "event: x",
        "data:c",
        "id: 1",
        "",
        "data: tail",
    ]
    assert list(events(lines)) == ["a\nb", "c", "tail"]


def _chunk(content: str | None, finish: str | None = None) -> str:
    delta = {"content": content} if content is not None else {}
    return "data: " + json.dumps({"choices": [{"delta": delta, "finish_reason": finish}]})


def test_deltas_ignore_empty_and_malformed_chunks_and_stop_at_done() -> None:
    lines = [
        _chunk(""),
        "",
        "data: {broken",
        "",
        _chunk("Hel"),
        "",
        _chunk("lo"),
        "",
        _chunk(None, "stop"),
        "",
        "data: [DONE]",
        "",
        _chunk("after done"),
        "",
    ]
    assert "".join(OpenAICompatible._deltas(iter(lines), deadline=float("inf"))) == "Hello"


def test_a_stream_without_an_end_is_a_retryable_error() -> None:
    with pytest.raises(LlmError) as failed:
        list(OpenAICompatible._deltas(iter([_chunk("Hel"), ""]), deadline=float("inf")))
    assert failed.value.retryable


def test_an_error_event_midstream_carries_its_status() -> None:
    lines = [_chunk("Hi"), "", 'data: {"error": {"code": 401, "message": "bad key"}}', ""]
    with pytest.raises(LlmError) as failed:
        list(OpenAICompatible._deltas(iter(lines), deadline=float("inf")))
    assert (failed.value.status, failed.value.retryable) == (401, False)
