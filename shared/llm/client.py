"""A streaming client for OpenAI-compatible chat completions (OpenRouter by
default), and the offline echo model used when no key is configured."""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any, Literal, Protocol

import httpx

from shared.llm.sse import events
from shared.llm.usage import Usage, usage_of

logger = logging.getLogger(__name__)

Role = Literal["system", "user", "assistant"]


@dataclass(frozen=True)
class ChatMessage:
    role: Role
    content: str
    name: str | None = None


class LlmError(Exception):
    """The provider failed. `retryable` says whether trying later may help."""

    def __init__(self, message: str, *, retryable: bool, status: int | None = None) -> None:
        super().__init__(message)
        self.retryable = retryable
        self.status = status


class ChatModel(Protocol):
    def stream(self, model: str, messages: Sequence[ChatMessage]) -> Iterator[str]:
        """Yields the reply's text as it arrives."""
        ...


_RETRYABLE_STATUS = {408, 409, 425, 429}


def _error_for_status(status: int) -> LlmError:
    retryable = status in _RETRYABLE_STATUS or status >= 500
    return LlmError(f"provider answered {status}", retryable=retryable, status=status)


def _payload(message: ChatMessage) -> dict[str, str]:
    payload = {"role": message.role, "content": message.content}
    if message.name:
        payload["name"] = message.name
    return payload


class OpenAICompatible:
    """POST {base_url}/chat/completions with stream: true."""

    def __init__(
        self,
        base_url: str,
        api_key: str,
        http: httpx.Client,
        *,
        deadline_seconds: float,
        max_tokens: int | None = None,
    ) -> None:
        self._url = f"{base_url}/chat/completions"
        self._key = api_key
        self._http = http
        self._deadline = deadline_seconds
        self.max_tokens = max_tokens  # the reply's cap, sent to the provider
        self.usage: Usage | None = None  # the last stream's, if the provider said

    def stream(self, model: str, messages: Sequence[ChatMessage]) -> Iterator[str]:
        body: dict[str, Any] = {
            "model": model,
            "messages": [_payload(m) for m in messages],
            "stream": True,
            "stream_options": {"include_usage": True},
        }
        if self.max_tokens is not None:
            body["max_tokens"] = self.max_tokens
        self.usage = None
        headers = {"Authorization": f"Bearer {self._key}", "Accept": "text/event-stream"}
        deadline = time.monotonic() + self._deadline
        try:
            with self._http.stream("POST", self._url, json=body, headers=headers) as response:
                if response.status_code != 200:
                    response.read()
                    raise _error_for_status(response.status_code)
                yield from self._deltas(response.iter_lines(), deadline, self._saw_usage)
        except httpx.TimeoutException as exc:
            raise LlmError("provider timed out", retryable=True) from exc
        except httpx.HTTPError as exc:
            raise LlmError("provider unreachable", retryable=True) from exc

    def _saw_usage(self, usage: Usage) -> None:
        self.usage = usage

    @staticmethod
    def _deltas(
        lines: Iterator[str],
        deadline: float,
        on_usage: Callable[[Usage], None] | None = None,
    ) -> Iterator[str]:
        finished = False
        for data in events(lines):
            if time.monotonic() > deadline:
                raise LlmError("provider too slow", retryable=True)
            if data.strip() == "[DONE]":
                finished = True
                break
            try:
                chunk = json.loads(data)
            except ValueError:
                logger.warning("skipping a malformed stream event")
                continue
            if not isinstance(chunk, dict):
                continue
            usage = usage_of(chunk)
            if usage is not None and on_usage is not None:
                on_usage(usage)
            if isinstance(chunk.get("error"), dict):
                code = chunk["error"].get("code")
                status = code if isinstance(code, int) else 502
                raise _error_for_status(status)
            for choice in chunk.get("choices") or []:
                delta = (choice or {}).get("delta") or {}
                text = delta.get("content")
                if isinstance(text, str) and text:
                    yield text
                if (choice or {}).get("finish_reason"):
                    finished = True
        if not finished:
            raise LlmError("stream ended early", retryable=True)


class EchoModel:
    """Offline stand-in: echoes the last message, clearly labelled, word by
    word (paced, so a local run shows the reply streaming)."""

    LABEL = "[echo model: no LLM key configured]"

    def __init__(self, word_delay_seconds: float = 0.0) -> None:
        self._delay = word_delay_seconds

    def stream(self, model: str, messages: Sequence[ChatMessage]) -> Iterator[str]:  # noqa: ARG002
        last = next((m.content for m in reversed(messages) if m.role == "user"), "")
        words = f"{self.LABEL} You said: {last}".split(" ")
        for i, word in enumerate(words):
            if i and self._delay:
                time.sleep(self._delay)
            yield word if i == 0 else f" {word}"
