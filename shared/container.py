"""Per-container singletons: settings, database adapter, token verifier,
the bot pipeline's settings, queue and model HTTP client.

Each is built on first use and cached for the life of the container;
`reset()` drops them all (tests), `use_database`/`use_queue` replace one (the
local dev server, benchmarks). Imports of what is not used are never paid for.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, Generic, TypeVar

from shared.secrets import load_ssm_parameters
from shared.settings import Settings, load, load_settings

if TYPE_CHECKING:
    import httpx

    from shared.auth.verifier import TokenVerifier
    from shared.bots.settings import BotTriggerSettings, BotWorkerSettings
    from shared.db.port import Database
    from shared.queue import JobQueue

T = TypeVar("T")
_lock = threading.RLock()  # builders call other slots while holding it


class _Slot(Generic[T]):
    """One lazily built, cached value; `close` runs when it is dropped."""

    def __init__(self, build: Callable[[], T], close: Callable[[T], None] | None = None) -> None:
        self._build = build
        self._close = close
        self._value: T | None = None

    def get(self) -> T:
        if self._value is None:
            with _lock:
                if self._value is None:
                    self._value = self._build()
        return self._value

    def set(self, value: T) -> None:
        """Replaces the value; the old one is not closed (a replacement may wrap it)."""
        with _lock:
            self._value = value

    def drop(self) -> None:
        if self._value is not None and self._close is not None:
            self._close(self._value)
        self._value = None


def _load_settings() -> Settings:
    load_ssm_parameters()
    return load_settings()


def _build_database() -> Database:
    config = settings()
    if config.database_url is not None:
        from shared.db.direct import DirectDatabase

        return DirectDatabase(
            config.database_url.get_secret_value(), timeout_seconds=config.database_timeout_seconds
        )
    from shared.db.postgrest import PostgrestDatabase

    service_key = config.supabase_service_role_key
    return PostgrestDatabase(
        config.supabase_url,
        config.supabase_anon_key.get_secret_value(),
        service_key.get_secret_value() if service_key else None,
        timeout_seconds=config.database_timeout_seconds,
    )


def _build_verifier() -> TokenVerifier:
    import httpx

    from shared.auth.jwks import JwksCache
    from shared.auth.verifier import TokenVerifier

    config = settings()
    http = httpx.Client(timeout=httpx.Timeout(3.0, connect=2.0))
    jwks = JwksCache(f"{config.supabase_url}/auth/v1/.well-known/jwks.json", http)
    secret = config.supabase_jwt_secret
    return TokenVerifier(
        jwks,
        secret.get_secret_value() if secret else None,
        issuer=f"{config.supabase_url}/auth/v1",
    )


def _load_bot_trigger_settings() -> BotTriggerSettings:
    from shared.bots.settings import BotTriggerSettings

    return load(BotTriggerSettings)


def _load_bot_worker_settings() -> BotWorkerSettings:
    from shared.bots.settings import BotWorkerSettings

    return load(BotWorkerSettings)


def _build_queue() -> JobQueue:
    import boto3

    from shared.queue import SqsQueue

    return SqsQueue(boto3.client("sqs"), bot_trigger_settings().bot_queue_url)


def _build_llm_http() -> httpx.Client:
    import httpx

    # Read timeout per chunk; the worker's deadline bounds the whole reply.
    read = bot_worker_settings().llm_timeout_seconds
    return httpx.Client(timeout=httpx.Timeout(read, connect=5.0))


_settings = _Slot(_load_settings)
_database: _Slot[Database] = _Slot(_build_database, lambda db: db.close())
_verifier = _Slot(_build_verifier)
_bot_trigger_settings = _Slot(_load_bot_trigger_settings)
_bot_worker_settings = _Slot(_load_bot_worker_settings)
_queue: _Slot[JobQueue] = _Slot(_build_queue)
_llm_http: _Slot[httpx.Client] = _Slot(_build_llm_http, lambda http: http.close())
_ALL: tuple[_Slot[Any], ...] = (
    _settings,
    _database,
    _verifier,
    _bot_trigger_settings,
    _bot_worker_settings,
    _queue,
    _llm_http,
)


def settings() -> Settings:
    return _settings.get()


def database() -> Database:
    return _database.get()


def verifier() -> TokenVerifier:
    return _verifier.get()


def bot_trigger_settings() -> BotTriggerSettings:
    return _bot_trigger_settings.get()


def bot_worker_settings() -> BotWorkerSettings:
    return _bot_worker_settings.get()


def queue() -> JobQueue:
    return _queue.get()


def llm_http() -> httpx.Client:
    """One connection pool to the model provider per container."""
    return _llm_http.get()


def use_database(replacement: Database) -> None:
    """Calls `replacement` instead of the configured adapter (benchmarks)."""
    _database.set(replacement)


def use_queue(replacement: JobQueue) -> None:
    """Sends jobs to `replacement` instead of SQS (the local dev server's queue)."""
    _queue.set(replacement)


def reset() -> None:
    with _lock:
        for slot in _ALL:
            slot.drop()
