"""The prompt a bot is asked with (shared/bots/worker.py, `conversation`):
the space's last lines as chat turns, within a byte budget that keeps the
newest lines, so what one question costs is bounded whatever its history."""

from __future__ import annotations

from typing import Any

import pytest

from shared.bots.budget import prompt_tokens
from shared.bots.settings import PROMPT_MAX_BYTES
from shared.bots.worker import conversation
from shared.llm.client import ChatMessage

pytestmark = pytest.mark.unit


def _context(lines: list[tuple[str, str]], prompt: str | None = "You echo.") -> dict[str, Any]:
    """bot_context's answer: (speaker, text) lines, oldest first; "@echo" is the bot."""
    return {
        "bot": {"id": "@echo", "name": "echo", "prompt": prompt},
        "messages": [
            {"speaker_name": who.lstrip("@"), "text": text, "is_self": who == "@echo"}
            for who, text in lines
        ],
    }


def _bytes(messages: list[ChatMessage]) -> int:
    return sum(len(m.content.encode()) for m in messages)


def test_a_short_history_is_kept_whole_as_chat_turns() -> None:
    context = _context([("@ada", "hi"), ("@echo", "hello"), ("@ada", "how are you?")])
    assert conversation(context) == [
        ChatMessage("system", "You echo."),
        ChatMessage("user", "ada: hi"),
        ChatMessage("assistant", "hello"),
        ChatMessage("user", "ada: how are you?"),
    ]


def test_ten_lines_of_16_kib_are_cut_to_the_newest_that_fit() -> None:
    # The review's case: every line of the history at the content limit
    context = _context([("@ada", f"{i}" + "x" * 16_000) for i in range(10)])

    prompt = conversation(context)

    # Then only the newest line fits beside the bot's prompt, and what the
    # budget is asked to hold follows (about 5,400 tokens, not 53,000)
    assert [m.content[:6] for m in prompt] == ["You ec", "ada: 9"]
    assert _bytes(prompt) <= PROMPT_MAX_BYTES
    assert prompt_tokens(prompt) < prompt_tokens(conversation(context, 10**9)) / 9


def test_the_newest_lines_are_kept_in_order_and_the_oldest_dropped() -> None:
    context = _context([("@ada", f"line {i}: " + "y" * 990) for i in range(10)])
    prompt = conversation(context, max_bytes=4_200)
    assert [m.content[:11] for m in prompt] == [
        "You echo.", "ada: line 6", "ada: line 7", "ada: line 8", "ada: line 9",
    ]  # fmt: skip
    assert _bytes(prompt) <= 4_200


def test_the_line_being_answered_and_the_bots_prompt_are_always_kept() -> None:
    big = "z" * 20_000
    assert conversation(_context([("@ada", "old"), ("@ada", big)]), max_bytes=1024) == [
        ChatMessage("system", "You echo."),
        ChatMessage("user", f"ada: {big}"),
    ]
    # A prompt that takes the whole budget leaves room for the newest line only
    long_prompt = "Be brief. " * 300
    prompt = conversation(_context([("@ada", "a"), ("@ada", "b")], long_prompt), max_bytes=2048)
    assert prompt == [ChatMessage("system", long_prompt), ChatMessage("user", "ada: b")]


def test_no_gap_is_left_where_a_long_line_was_dropped() -> None:
    # An older short line beyond a long one that did not fit is dropped too
    lines = [("@ada", "short and old"), ("@bob", "w" * 3_000), ("@ada", "the question")]
    assert conversation(_context(lines, None), max_bytes=2_000) == [
        ChatMessage("user", "ada: the question")
    ]


def test_the_budget_counts_bytes_not_characters() -> None:
    # 'é' is 2 bytes in UTF-8: 800 of them weigh 1,600 bytes
    lines = [("@ada", "é" * 800), ("@ada", "é" * 800), ("@ada", "?")]
    prompt = conversation(_context(lines, None), max_bytes=2_000)
    assert [m.content[-1] for m in prompt] == ["é", "?"]
