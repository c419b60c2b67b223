"""Warm overhead per request, the database call excluded: a warm handler
serves API Gateway events with the database port answered in memory."""

from __future__ import annotations

import os
import uuid
from collections.abc import Mapping
from functools import partial
from typing import Any

from benchmarks.edge import canned_supabase
from benchmarks.report import Row, median_ms
from shared import container
from shared.auth.principal import Caller
from tests.support.events import LambdaContext, http_event
from tests.support.rpc_answers import MESSAGE, THREAD
from tests.support.tokens import SigningKeys


class InMemoryDatabase:
    """The port, answering from memory: what is left is our own overhead."""

    def __init__(self, answers: dict[str, Any]) -> None:
        self.answers = answers

    def call(self, function: str, args: Mapping[str, Any], caller: Caller) -> Any:  # noqa: ARG002
        return dict(self.answers[function])

    def close(self) -> None:
        pass


def run() -> list[Row]:
    keys = SigningKeys()
    answers = {"ensure_chat_thread": THREAD, "insert_chat_message": MESSAGE}
    rows = []
    with canned_supabase(keys.jwks(), answers) as url:
        keys.serve_at(url)
        os.environ.update(SUPABASE_URL=url, SUPABASE_ANON_KEY=keys.anon_key(), LOG_LEVEL="WARNING",
                          ALLOWED_ORIGINS="https://app.example.test")  # fmt: skip
        os.environ.pop("DATABASE_URL", None)
        container.reset()
        container.use_database(InMemoryDatabase(answers))
        from functions.chat_message.handler import handler as chat_message
        from functions.thread_ensure.handler import handler as thread_ensure
        from functions.token.handler import handler as token
        from shared.session.cookies import encode

        token_str = keys.token(uuid.uuid4(), mongo_id="amy")
        headers = {"authorization": f"Bearer {token_str}", "origin": "https://app.example.test"}
        cases = [
            ("thread-ensure", thread_ensure, http_event("POST", "/chat/threads/ensure",
                                                        body={"other_mongo_id": "bob"}, headers=headers)),
            ("chat-message", chat_message, http_event("POST", "/chat/messages",
                                                      body={"thread_id": "amy__bob", "body": "hi"}, headers=headers)),
            ("token (valid cookie)", token, http_event("GET", "/auth/token", headers={
                "origin": "https://app.example.test",
                "cookie": "sb-127-auth-token=" + encode({"access_token": token_str, "refresh_token": "r"}, "base64url"),
            })),
        ]  # fmt: skip
        for name, handler, event in cases:
            context = LambdaContext()
            for _ in range(200):
                handler(event, context)
            ms = median_ms(partial(handler, event, context), 2000)
            rows.append(
                Row(
                    f"warm {name}",
                    "median per request, DB excluded",
                    f"{ms:.3f} ms",
                    "< 1 ms",
                    ms < 1,
                )
            )
        container.reset()
    return rows
