"""A streaming client for OpenAI-compatible chat completions (OpenRouter by
default), and the offline echo model used when no key is configured."""

from __future__ import annotations

import contextlib
import contextvars
import json
import logging
import queue
import re
import socket
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any, Literal, Protocol

import httpx

from shared.llm import MaxTokensParameter
from shared.llm.sse import EventParser, StreamTooLarge
from shared.llm.usage import Usage, usage_of

logger = logging.getLogger(__name__)

Role = Literal["system", "user", "assistant"]


@dataclass(frozen=True)
class ChatMessage:
    role: Role
    content: str
    name: str | None = None


class LlmError(Exception):
    """The provider failed. `retryable` says whether trying later may help;
    `retry_after` is the provider's own Retry-After, in seconds, if it sent one."""

    def __init__(
        self,
        message: str,
        *,
        retryable: bool,
        status: int | None = None,
        retry_after: float | None = None,
    ) -> None:
        super().__init__(message)
        self.retryable = retryable
        self.status = status
        self.retry_after = retry_after


class LlmTimeout(LlmError):
    """No answer in time: the reply's deadline passed, or the provider's
    connection timed out. Always retryable."""

    def __init__(self, message: str) -> None:
        super().__init__(message, retryable=True)


class ChatModel(Protocol):
    def stream(
        self, model: str, messages: Sequence[ChatMessage], *, deadline: float
    ) -> Iterator[str]:
        """Yields the reply's text as it arrives, all of it before `deadline`
        (time.monotonic()), else raises a retryable LlmError."""
        ...


_RETRYABLE_STATUS = {408, 409, 425, 429}
MAX_ERROR_BODY_BYTES = 64 * 1024
_READ_AHEAD_EVENTS = 16  # parsed events waiting for the caller: the reader pauses beyond


def _error_for_status(status: int, retry_after: str | None = None) -> LlmError:
    retryable = status in _RETRYABLE_STATUS or status >= 500
    seconds = None
    if retry_after is not None and retry_after.strip().isdigit():
        seconds = float(retry_after.strip())
    return LlmError(
        f"provider answered {status}", retryable=retryable, status=status, retry_after=seconds
    )


def _payload(message: ChatMessage) -> dict[str, str]:
    payload = {"role": message.role, "content": message.content}
    if message.name:
        payload["name"] = message.name
    return payload


class OpenAICompatible:
    """POST {base_url}/chat/completions with stream: true.

    The deadline bounds the whole call, whatever the provider sends:
    connecting, the headers, and every byte of the stream, comments and
    partial lines included. The HTTP exchange runs on a reader thread that
    hands parsed events over; the caller waits for each one only until the
    deadline, so no socket read, slow drip or endless line can hold it
    longer. Lines and events are capped (shared.llm.sse), as is the number
    of events read ahead, so memory stays bounded too. When the caller stops
    (the deadline, a closed stream) the reader's socket is shut down, so the
    thread ends at once and the half-read connection is closed, not pooled
    (still connecting or waiting for the headers, it ends within its
    timeouts, at most the time that was left).
    """

    def __init__(
        self,
        base_url: str,
        api_key: str,
        http: httpx.Client,
        *,
        deadline_seconds: float,
        max_tokens: int | None = None,
        max_tokens_parameter: MaxTokensParameter = "max_tokens",
    ) -> None:
        self._url = f"{base_url}/chat/completions"
        self._key = api_key
        self._http = http
        self._deadline = deadline_seconds
        self.max_tokens = max_tokens  # the reply's cap, sent to the provider
        self._max_tokens_parameter = max_tokens_parameter
        self.usage: Usage | None = None  # the last stream's, if the provider said

    def stream(
        self, model: str, messages: Sequence[ChatMessage], *, deadline: float | None = None
    ) -> Iterator[str]:
        body: dict[str, object] = {
            "model": model,
            "messages": [_payload(m) for m in messages],
            "stream": True,
            "stream_options": {"include_usage": True},
        }
        if self.max_tokens is not None:
            body[self._max_tokens_parameter] = self.max_tokens
        self.usage = None
        headers = {
            "Authorization": f"Bearer {self._key}",
            "Accept": "text/event-stream",
            "Accept-Encoding": "identity",
        }
        own = time.monotonic() + self._deadline
        reader = _StreamReader(
            self._http, self._url, body, headers, own if deadline is None else min(deadline, own)
        )
        reader.start()
        try:
            yield from self._deltas(reader.events(), self._saw_usage)
        finally:
            reader.cancel()

    def _saw_usage(self, usage: Usage) -> None:
        self.usage = usage

    @staticmethod
    def _deltas(
        events: Iterator[str], on_usage: Callable[[Usage], None] | None = None
    ) -> Iterator[str]:
        finished = False
        text = _UnicodeText()
        try:
            for data in events:
                if data.strip() == "[DONE]":
                    yield from text.close()
                    return
                try:
                    chunk = json.loads(data)
                except ValueError:
                    logger.warning("skipping a malformed stream event")
                    continue
                except RecursionError:  # nested past the parser's depth: not a chunk of ours
                    raise LlmError("provider sent a malformed stream", retryable=True) from None
                if not isinstance(chunk, dict):
                    continue
                usage = usage_of(chunk)
                if usage is not None and on_usage is not None:
                    on_usage(usage)
                if isinstance(chunk.get("error"), dict):
                    code = chunk["error"].get("code")
                    status = code if type(code) is int else 502
                    raise _error_for_status(status)
                for choice in _choices(chunk):
                    content = choice["delta"].get("content")
                    if isinstance(content, str) and content:
                        yield from text.feed(content)
                    if choice.get("finish_reason"):
                        finished = True
        except LlmError:
            if finished:  # the answer was complete; only its trailer was late or broken
                yield from text.close()
                return
            raise
        if not finished:
            raise LlmError("stream ended early", retryable=True)
        yield from text.close()


def _choices(chunk: dict[str, Any]) -> list[dict[str, Any]]:
    """The chunk's choices that have the shape OpenAI documents (objects with
    a `delta` object); anything else is skipped, with a warning."""
    choices = chunk.get("choices")
    if choices is None:
        return []
    if not isinstance(choices, list):
        logger.warning("skipping a stream chunk whose choices are not a list")
        return []
    usable = []
    for choice in choices:
        if not isinstance(choice, dict):
            logger.warning("skipping a stream choice that is not an object")
            continue
        delta = choice.get("delta")
        if delta is None:
            choice = {**choice, "delta": {}}
        elif not isinstance(delta, dict):
            logger.warning("skipping a stream choice whose delta is not an object")
            continue
        usable.append(choice)
    return usable


_SURROGATES = re.compile("[\ud800-\udfff]")


class _UnicodeText:
    """Deltas as valid Unicode: JSON's escapes can split a character outside
    the BMP into a surrogate pair across two chunks (`"\\ud83d"`, then
    `"\\ude00"`), which no database or encoder takes as is. A trailing high
    surrogate waits for the next delta; pairs are joined, lone halves become
    U+FFFD."""

    def __init__(self) -> None:
        self._held = ""

    def feed(self, delta: str) -> Iterator[str]:
        text, self._held = self._held + delta, ""
        if "\ud800" <= text[-1] <= "\udbff":
            text, self._held = text[:-1], text[-1]
        if _SURROGATES.search(text):
            text = text.encode("utf-16-le", "surrogatepass").decode("utf-16-le", "replace")
        if text:
            yield text

    def close(self) -> Iterator[str]:
        if self._held:
            self._held = ""
            yield "\ufffd"


class _StreamReader(threading.Thread):
    """One request to the provider, read on its own thread; `events()` hands
    over what it parsed, each within the deadline."""

    def __init__(
        self,
        http: httpx.Client,
        url: str,
        body: dict[str, object],
        headers: dict[str, str],
        deadline: float,
    ) -> None:
        super().__init__(name="llm-stream", daemon=True)
        self._http = http
        self._url = url
        self._body = body
        self._headers = headers
        self._deadline = deadline
        self._items: queue.Queue[tuple[str, str | LlmError | None]] = queue.Queue(
            _READ_AHEAD_EVENTS
        )
        self._cancelled = threading.Event()
        self._socket: socket.socket | None = None
        # Threads do not inherit context variables: the reader's log lines
        # carry the correlation id of the job that started it.
        self._context = contextvars.copy_context()

    def cancel(self) -> None:
        """Stops the reader now, not when its read timeout (up to the whole
        deadline) runs out: its socket is shut down, so a read waiting on it
        returns at once and the connection is closed, never pooled half-read."""
        self._cancelled.set()
        sock = self._socket
        if sock is not None:
            with contextlib.suppress(OSError):
                # socket.socket's own: an SSLSocket's would drop its TLS state
                # under the reading thread.
                socket.socket.shutdown(sock, socket.SHUT_RDWR)

    def events(self) -> Iterator[str]:
        while True:
            remaining = self._deadline - time.monotonic()
            if remaining <= 0:
                raise LlmTimeout("no answer in time")
            try:
                kind, value = self._items.get(timeout=remaining)
            except queue.Empty:
                continue
            if isinstance(value, LlmError):
                raise value
            if kind == "end":
                return
            assert value is not None
            yield value

    def run(self) -> None:
        self._context.run(self._run)

    def _run(self) -> None:
        try:
            self._exchange()
        except StreamTooLarge as exc:
            logger.warning("the provider's stream went past a cap: %s", exc)
            self._put("error", LlmError("provider stream too large", retryable=True))
        except httpx.TimeoutException:
            self._put("error", LlmTimeout("provider timed out"))
        except httpx.HTTPError:
            self._put("error", LlmError("provider unreachable", retryable=True))
        except Exception:  # the caller must hear of it, not wait for the deadline
            if self._cancelled.is_set():
                return  # stopped by cancel(): nobody is waiting for more
            logger.exception("reading the provider's stream failed")
            self._put("error", LlmError("provider stream failed", retryable=True))

    def _exchange(self) -> None:
        left = max(self._deadline - time.monotonic(), 0.001)
        timeout = httpx.Timeout(left, connect=min(5.0, left))
        with self._http.stream(
            "POST", self._url, json=self._body, headers=self._headers, timeout=timeout
        ) as response:
            stream = response.extensions.get("network_stream")
            self._socket = stream.get_extra_info("socket") if stream is not None else None
            if self._cancelled.is_set():
                return
            if response.status_code != 200:
                read = 0
                for chunk in response.iter_raw():  # an error body is read, but only so much
                    read += len(chunk)
                    if read > MAX_ERROR_BODY_BYTES or self._cancelled.is_set():
                        break
                self._put(
                    "error",
                    _error_for_status(response.status_code, response.headers.get("retry-after")),
                )
                return
            parser = EventParser()
            for chunk in response.iter_bytes():
                if self._cancelled.is_set():
                    return
                for data in parser.feed(chunk):
                    if not self._put("event", data):
                        return
            for data in parser.close():
                if not self._put("event", data):
                    return
        self._put("end", None)

    def _put(self, kind: str, value: str | LlmError | None) -> bool:
        while not self._cancelled.is_set():
            try:
                self._items.put((kind, value), timeout=0.1)
            except queue.Full:
                continue
            return True
        return False


class EchoModel:
    """Offline stand-in: echoes the last message, clearly labelled, word by
    word (paced, so a local run shows the reply streaming)."""

    LABEL = "[echo model: no LLM key configured]"

    def __init__(self, word_delay_seconds: float = 0.0) -> None:
        self._delay = word_delay_seconds

    def stream(
        self,
        model: str,  # noqa: ARG002
        messages: Sequence[ChatMessage],
        *,
        deadline: float | None = None,
    ) -> Iterator[str]:
        last = next((m.content for m in reversed(messages) if m.role == "user"), "")
        words = f"{self.LABEL} You said: {last}".split(" ")
        for i, word in enumerate(words):
            if i and self._delay:
                time.sleep(self._delay)
            if deadline is not None and time.monotonic() > deadline:
                raise LlmTimeout("no answer in time")
            yield word if i == 0 else f" {word}"
