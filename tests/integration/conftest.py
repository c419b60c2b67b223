"""Handlers in-process through their Lambda entry points, against the real
database, through either adapter: direct Postgres or supabase-py's PostgREST
client talking to the loopback PostgREST stand-in."""

from __future__ import annotations

import importlib
from collections.abc import Callable, Iterator
from typing import Any

import pytest

from shared import container
from tests.support.events import HttpResult, LambdaContext, http_event, parse
from tests.support.fake_supabase import FakeSupabase, running
from tests.support.tokens import SigningKeys

ORIGIN = "https://app.example.test"


@pytest.fixture(scope="session")
def keys() -> SigningKeys:
    return SigningKeys()


@pytest.fixture
def supabase(keys: SigningKeys, authenticator_dsn: str) -> Iterator[FakeSupabase]:
    with running(FakeSupabase(keys, database_dsn=authenticator_dsn)) as fake:
        yield fake


@pytest.fixture(params=["direct", "postgrest"])
def adapter(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture
def environment(
    monkeypatch: pytest.MonkeyPatch,
    supabase: FakeSupabase,
    keys: SigningKeys,
    authenticator_dsn: str,
    adapter: str,
) -> Iterator[None]:
    monkeypatch.setenv("SUPABASE_URL", supabase.url)
    monkeypatch.setenv("SUPABASE_ANON_KEY", keys.anon_key())
    monkeypatch.setenv("SUPABASE_SERVICE_ROLE_KEY", keys.service_key())
    monkeypatch.setenv("ALLOWED_ORIGINS", f"{ORIGIN},http://localhost:5173")
    monkeypatch.delenv("SUPABASE_JWT_SECRET", raising=False)
    if adapter == "direct":
        monkeypatch.setenv("DATABASE_URL", authenticator_dsn)
    else:
        monkeypatch.delenv("DATABASE_URL", raising=False)
    container.reset()
    yield
    container.reset()


Invoke = Callable[..., HttpResult]


def invoker(module: str) -> Invoke:
    handler = importlib.import_module(module).handler

    def invoke(method: str, path: str, **kwargs: Any) -> HttpResult:
        return parse(handler(http_event(method, path, **kwargs), LambdaContext()))

    return invoke


@pytest.fixture
def thread_ensure(environment: None) -> Invoke:
    return invoker("functions.thread_ensure.handler")


@pytest.fixture
def chat_message(environment: None) -> Invoke:
    return invoker("functions.chat_message.handler")


@pytest.fixture
def bearer(keys: SigningKeys) -> Callable[..., dict[str, str]]:
    def make(user: Any, **extra: Any) -> dict[str, str]:
        return {"authorization": f"Bearer {keys.token(user.id, mongo_id=user.mongo_id, **extra)}"}

    return make
