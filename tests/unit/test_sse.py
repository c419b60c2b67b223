"""Server-sent events and OpenAI-style stream chunks are parsed robustly, from
bytes as they arrive, within caps."""

from __future__ import annotations

import itertools
import json

import pytest
from hypothesis import given
from hypothesis import strategies as st

from shared.llm.client import LlmError, OpenAICompatible
from shared.llm.sse import EventParser, StreamTooLarge, events

pytestmark = pytest.mark.unit

STREAM = b": OPENROUTER PROCESSING\n\ndata: a\ndata: b\n\nevent: x\ndata:c\nid: 1\n\ndata: tail"


def test_events_join_data_lines_and_skip_comments() -> None:
    assert list(events([STREAM])) == ["a\nb", "c", "tail"]


@given(st.lists(st.integers(min_value=0, max_value=len(STREAM)), max_size=8))
def test_events_do_not_depend_on_how_the_bytes_are_split(cuts: list[int]) -> None:
    bounds = [0, *sorted(cuts), len(STREAM)]
    chunks = [STREAM[a:b] for a, b in itertools.pairwise(bounds)]
    assert list(events(chunks)) == ["a\nb", "c", "tail"]


def test_every_line_ending_the_spec_allows() -> None:
    for ending in (b"\n", b"\r\n", b"\r"):
        stream = ending.join([b"data: one", b"", b"data: two", b"", b""])
        assert list(events([stream])) == ["one", "two"], ending
    # a CRLF split between two chunks is one line end, not two
    assert list(events([b"data: x\r", b"\ndata: y\r\n\r\n"])) == ["x\ny"]


@pytest.mark.parametrize(
    ("chunks", "what"),
    [
        ([b"x" * 1024] * 300, "line"),  # bytes that never end a line
        ([b"data: " + b"y" * 1000 + b"\n"] * 1100, "event"),  # data lines never closed
    ],
)
def test_a_line_or_an_event_past_its_cap_is_an_error(chunks: list[bytes], what: str) -> None:
    with pytest.raises(StreamTooLarge, match=what):
        list(events(chunks))


def test_comments_alone_never_grow_anything() -> None:
    parser = EventParser(max_line=100, max_event=100)
    for _ in range(10_000):
        assert list(parser.feed(b": OPENROUTER PROCESSING\n\n")) == []


def _chunk(content: str | None, finish: str | None = None) -> str:
    delta = {"content": content} if content is not None else {}
    return json.dumps({"choices": [{"delta": delta, "finish_reason": finish}]})


def test_deltas_ignore_empty_and_malformed_chunks_and_stop_at_done() -> None:
    data = [
        _chunk(""),
        "{broken",
        _chunk("Hel"),
        _chunk("lo"),
        _chunk(None, "stop"),
        "[DONE]",
        _chunk("after done"),
    ]
    assert "".join(OpenAICompatible._deltas(iter(data))) == "Hello"


def test_a_stream_without_an_end_is_a_retryable_error() -> None:
    with pytest.raises(LlmError) as failed:
        list(OpenAICompatible._deltas(iter([_chunk("Hel")])))
    assert failed.value.retryable


def test_an_error_event_midstream_carries_its_status() -> None:
    data = [_chunk("Hi"), '{"error": {"code": 401, "message": "bad key"}}']
    with pytest.raises(LlmError) as failed:
        list(OpenAICompatible._deltas(iter(data)))
    assert (failed.value.status, failed.value.retryable) == (401, False)


def test_a_late_trailer_after_the_finish_does_not_fail_a_complete_answer() -> None:
    def late() -> object:
        yield _chunk("All")
        yield _chunk(" done", "stop")
        raise LlmError("no answer in time", retryable=True)

    assert "".join(OpenAICompatible._deltas(late())) == "All done"  # type: ignore[arg-type]


def test_chunks_of_the_wrong_shape_are_skipped() -> None:
    data = [
        '{"choices": ["x"]}',
        '{"choices": [{"delta": "text"}]}',
        '{"choices": "abc"}',
        '{"choices": [null, {"delta": null}]}',
        _chunk("fine"),
        _chunk(None, "stop"),
    ]
    assert "".join(OpenAICompatible._deltas(iter(data))) == "fine"


def test_an_event_nested_too_deep_is_a_retryable_error() -> None:
    with pytest.raises(LlmError) as failed:
        list(OpenAICompatible._deltas(iter([_chunk("a"), "[" * 5000 + "]" * 5000])))
    assert failed.value.retryable


@given(st.text(min_size=1), st.lists(st.integers(min_value=0, max_value=64), max_size=6))
def test_characters_come_whole_however_escapes_split_them(text: str, cuts: list[int]) -> None:
    # UTF-16 code units, as a provider's JSON escapes them, split anywhere
    units = [text.encode("utf-16-le")[i : i + 2].decode("utf-16-le", "surrogatepass")
             for i in range(0, len(text.encode("utf-16-le")), 2)]  # fmt: skip
    bounds = [0, *sorted(c for c in cuts if c < len(units)), len(units)]
    pieces = ["".join(units[a:b]) for a, b in itertools.pairwise(bounds) if a < b]
    data = [_chunk(p) for p in pieces] + [_chunk(None, "stop")]
    assert "".join(OpenAICompatible._deltas(iter(data))) == text


def test_lone_surrogates_become_the_replacement_character() -> None:
    data = [_chunk("a\udc00"), _chunk("b\ud83d"), _chunk("\ud83d"), _chunk(None, "stop")]
    assert "".join(OpenAICompatible._deltas(iter(data))) == "a\ufffdb\ufffd\ufffd"
