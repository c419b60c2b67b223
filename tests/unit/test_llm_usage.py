"""The provider's token count, read from the stream as OpenAI sends it with
`stream_options.include_usage` (`"usage": null` on every chunk, then a last
chunk with no choices and the counts) and as OpenRouter always does."""

from __future__ import annotations

import json
from typing import Any

import pytest

from shared.llm.client import OpenAICompatible
from shared.llm.usage import Usage, usage_of

pytestmark = pytest.mark.unit


def _event(body: dict[str, Any]) -> list[str]:
    """One server-sent event's data, as the stream parser hands it over."""
    return [json.dumps(body)]


def test_the_last_chunks_usage_is_reported_after_the_text() -> None:
    lines = [
        *_event({"choices": [{"delta": {"content": "Hi"}}], "usage": None}),
        *_event({"choices": [{"delta": {}, "finish_reason": "stop"}], "usage": None}),
        *_event({"choices": [], "usage": {"prompt_tokens": 31, "completion_tokens": 2,
                                          "total_tokens": 33, "cost": 0.0001}}),
        "[DONE]",
    ]  # fmt: skip
    seen: list[Usage] = []
    text = "".join(OpenAICompatible._deltas(iter(lines), seen.append))
    assert text == "Hi"
    assert seen == [Usage(prompt_tokens=31, completion_tokens=2)]
    assert seen[0].total_tokens == 33


@pytest.mark.parametrize(
    "usage",
    [None, "lots", {}, {"prompt_tokens": 3}, {"prompt_tokens": "3", "completion_tokens": 1}],
)
def test_a_missing_or_malformed_usage_is_none(usage: Any) -> None:
    assert usage_of({"choices": [], "usage": usage}) is None


def test_negative_counts_are_taken_as_zero() -> None:
    assert usage_of({"usage": {"prompt_tokens": -5, "completion_tokens": 7}}) == Usage(0, 7)
