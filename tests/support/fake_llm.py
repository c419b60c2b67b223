"""An OpenAI-compatible chat completions server on loopback that streams
server-sent events, with scripted faults: each request takes the next step
of the script (the last step repeats)."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler
from typing import Any

from tests.support.loopback import serve


@dataclass
class Step:
    """One answer: a status, or a stream of tokens with optional pauses and faults."""

    status: int = 200
    tokens: list[str] = field(default_factory=list)
    delay_between: float = 0.0
    stall_seconds: float = 0.0  # before sending anything
    malformed_at: int | None = None  # insert a broken event before this token
    keepalives: bool = True
    finish: bool = True
    gate: threading.Event | None = None  # the stream waits here after the first token
    # After the headers, these bytes again and again (every `pause` seconds),
    # up to `endless_limit` bytes or until the client goes: a provider that
    # never finishes (comments only, unterminated lines, a slow drip).
    endless: bytes | None = None
    pause: float = 0.0
    endless_limit: int = 64 * 1024 * 1024
    # The usage chunk, sent as OpenAI does when the request asks for it
    # (stream_options.include_usage): (prompt, completion) tokens, by default
    # a word count of the messages and the number of tokens streamed.
    usage: tuple[int, int] | None = None
    report_usage: bool = True
    # Data payloads sent as they are, one event each, after the tokens: what
    # a broken or hostile provider may send.
    events: list[str] = field(default_factory=list)


def reply(text: str, **kwargs: Any) -> Step:
    words = text.split(" ")
    return Step(tokens=[w if i == 0 else f" {w}" for i, w in enumerate(words)], **kwargs)


@dataclass
class FakeLlm:
    script: list[Step] = field(default_factory=lambda: [reply("Hello from the model")])
    requests: list[dict[str, Any]] = field(default_factory=list)
    first_token_sent_at: list[float] = field(default_factory=list)  # time.perf_counter()
    url: str = ""
    # An outage: every request answers `outage_status` until time.monotonic()
    # passes `outage_until`; the script resumes after.
    outage_until: float = 0.0
    outage_status: int = 500
    outage_answers: int = 0
    # Request fields this model refuses, as OpenAI's newer models refuse
    # `max_tokens` (a 400 naming it; they take `max_completion_tokens`).
    refused_parameters: tuple[str, ...] = ()

    def next_step(self) -> Step:
        if time.monotonic() < self.outage_until:
            self.outage_answers += 1
            return Step(status=self.outage_status)
        return self.script.pop(0) if len(self.script) > 1 else self.script[0]


def _chunk(content: str | None, finish: str | None = None) -> bytes:
    delta = {"content": content} if content is not None else {}
    body = {
        "id": "gen-1",
        "object": "chat.completion.chunk",
        "model": "m",
        "choices": [{"index": 0, "delta": delta, "finish_reason": finish}],
    }
    return f"data: {json.dumps(body)}\n\n".encode()


def _usage_chunk(step: Step, body: dict[str, Any]) -> bytes:
    prompt, completion = step.usage or (
        sum(len(str(m.get("content", "")).split()) for m in body.get("messages", [])),
        len(step.tokens),
    )
    usage = {
        "prompt_tokens": prompt,
        "completion_tokens": completion,
        "total_tokens": prompt + completion,
    }
    return f"data: {json.dumps({'id': 'gen-1', 'choices': [], 'usage': usage})}\n\n".encode()


def _handler(fake: FakeLlm) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, format: str, *args: Any) -> None:
            pass

        def do_POST(self) -> None:
            body = json.loads(self.rfile.read(int(self.headers.get("Content-Length") or 0)))
            fake.requests.append(
                {
                    "path": self.path,
                    "authorization": self.headers.get("Authorization"),
                    "body": body,
                }
            )
            refused = [name for name in fake.refused_parameters if name in body]
            if refused:
                self._unsupported(refused[0])
                return
            step = fake.next_step()
            if step.stall_seconds:
                time.sleep(step.stall_seconds)
            if step.status != 200:
                data = json.dumps({"error": {"message": "fault", "code": step.status}}).encode()
                self.send_response(step.status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)
                return
            self.send_response(200)
            self.send_header("Content-Type", "text/event-stream")
            self.send_header("Connection", "close")
            self.end_headers()
            if step.endless is not None:
                self._endless(step)
                return
            try:
                if step.keepalives:
                    self.wfile.write(b": OPENROUTER PROCESSING\n\n")
                self.wfile.write(_chunk(""))  # role-only first chunk, as providers send
                for i, token in enumerate(step.tokens):
                    if step.malformed_at == i:
                        self.wfile.write(b"data: {not json\n\n")
                    self.wfile.write(_chunk(token))
                    self.wfile.flush()
                    if i == 0:
                        fake.first_token_sent_at.append(time.perf_counter())
                    if i == 0 and step.gate is not None:
                        step.gate.wait(10)
                    if step.delay_between:
                        time.sleep(step.delay_between)
                for event in step.events:
                    self.wfile.write(f"data: {event}\n\n".encode())
                if step.finish:
                    self.wfile.write(_chunk(None, "stop"))
                    asked = (body.get("stream_options") or {}).get("include_usage")
                    if asked and step.report_usage:
                        self.wfile.write(_usage_chunk(step, body))
                    self.wfile.write(b"data: [DONE]\n\n")
                self.wfile.flush()
            except (BrokenPipeError, ConnectionResetError):
                pass
            self.close_connection = True

        def _unsupported(self, name: str) -> None:
            """OpenAI's answer to a parameter the model does not support."""
            message = f"Unsupported parameter: '{name}' is not supported with this model."
            if name == "max_tokens":
                message += " Use 'max_completion_tokens' instead."
            error = {"message": message, "type": "invalid_request_error", "param": name,
                     "code": "unsupported_parameter"}  # fmt: skip
            data = json.dumps({"error": error}).encode()
            self.send_response(400)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def _endless(self, step: Step) -> None:
            chunk, sent = step.endless or b"", 0
            try:
                while sent < step.endless_limit:
                    self.wfile.write(chunk)
                    self.wfile.flush()
                    sent += len(chunk)
                    if step.pause:
                        time.sleep(step.pause)
            except (BrokenPipeError, ConnectionResetError):
                pass
            self.close_connection = True

    return Handler


@contextmanager
def running(fake: FakeLlm) -> Iterator[FakeLlm]:
    with serve(_handler(fake)) as url:
        fake.url = url + "/api/v1"
        yield fake
