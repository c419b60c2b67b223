"""What a reply cost, as the provider counts it: OpenAI's `usage` object,
which OpenAI sends in a last stream chunk when asked
(`stream_options: {"include_usage": true}`) and OpenRouter in its last
chunk always (its usage accounting)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class Usage:
    prompt_tokens: int
    completion_tokens: int  # reasoning tokens included, as providers bill them

    @property
    def total_tokens(self) -> int:
        return self.prompt_tokens + self.completion_tokens


def usage_of(chunk: dict[str, Any]) -> Usage | None:
    """The usage a stream chunk carries, if any (most carry none or null)."""
    usage = chunk.get("usage")
    if not isinstance(usage, dict):
        return None
    prompt, completion = usage.get("prompt_tokens"), usage.get("completion_tokens")
    if not isinstance(prompt, int) or not isinstance(completion, int):
        return None
    return Usage(max(prompt, 0), max(completion, 0))
