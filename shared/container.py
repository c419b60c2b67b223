"""Per-container singletons: settings, database adapter, token verifier.

Built on first use and cached for the life of the container; `reset()` drops
them (tests, or a settings change in `make dev`). Imports of the adapter not
chosen are never paid for.
"""

from __future__ import annotations

import threading
from typing import TYPE_CHECKING

from shared.secrets import load_ssm_parameters
from shared.settings import Settings, load_settings

if TYPE_CHECKING:
    import httpx

    from shared.auth.verifier import TokenVerifier
    from shared.bots.settings import BotTriggerSettings, BotWorkerSettings
    from shared.db.port import Database
    from shared.queue import JobQueue

_lock = threading.RLock()  # builders call settings() while holding it
_settings: Settings | None = None
_database: Database | None = None
_verifier: TokenVerifier | None = None
_bot_trigger_settings: BotTriggerSettings | None = None
_bot_worker_settings: BotWorkerSettings | None = None
_queue: JobQueue | None = None
_llm_http: httpx.Client | None = None


def settings() -> Settings:
    global _settings
    if _settings is None:
        with _lock:
            if _settings is None:
                load_ssm_parameters()
                _settings = load_settings()
    return _settings


def database() -> Database:
    global _database
    if _database is None:
        with _lock:
            if _database is None:
                _database = _build_database(settings())
    return _database


def verifier() -> TokenVerifier:
    global _verifier
    if _verifier is None:
        with _lock:
            if _verifier is None:
                _verifier = _build_verifier(settings())
    return _verifier


def bot_trigger_settings() -> BotTriggerSettings:
    global _bot_trigger_settings
    if _bot_trigger_settings is None:
        from shared.bots.settings import BotTriggerSettings
        from shared.settings import load

        _bot_trigger_settings = load(BotTriggerSettings)
    return _bot_trigger_settings


def bot_worker_settings() -> BotWorkerSettings:
    global _bot_worker_settings
    if _bot_worker_settings is None:
        from shared.bots.settings import BotWorkerSettings
        from shared.settings import load

        _bot_worker_settings = load(BotWorkerSettings)
    return _bot_worker_settings


def queue() -> JobQueue:
    global _queue
    if _queue is None:
        with _lock:
            if _queue is None:
                import boto3

                from shared.queue import SqsQueue

                _queue = SqsQueue(boto3.client("sqs"), bot_trigger_settings().bot_queue_url)
    return _queue


def use_queue(replacement: JobQueue) -> None:
    """Sends jobs to `replacement` instead of SQS (the local dev server's queue)."""
    global _queue
    _queue = replacement


def llm_http() -> httpx.Client:
    """One connection pool to the model provider per container."""
    global _llm_http
    if _llm_http is None:
        with _lock:
            if _llm_http is None:
                import httpx

                # Read timeout per chunk; the worker's deadline bounds the whole reply.
                read = bot_worker_settings().llm_timeout_seconds
                _llm_http = httpx.Client(timeout=httpx.Timeout(read, connect=5.0))
    return _llm_http


def _build_database(config: Settings) -> Database:
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


def _build_verifier(config: Settings) -> TokenVerifier:
    import httpx

    from shared.auth.jwks import JwksCache
    from shared.auth.verifier import TokenVerifier

    http = httpx.Client(timeout=httpx.Timeout(3.0, connect=2.0))
    jwks = JwksCache(f"{config.supabase_url}/auth/v1/.well-known/jwks.json", http)
    secret = config.supabase_jwt_secret
    return TokenVerifier(jwks, secret.get_secret_value() if secret else None)


def reset() -> None:
    global _settings, _database, _verifier, _bot_trigger_settings, _bot_worker_settings
    global _queue, _llm_http
    with _lock:
        if _database is not None:
            _database.close()
        if _llm_http is not None:
            _llm_http.close()
        _settings, _database, _verifier = None, None, None
        _bot_trigger_settings, _bot_worker_settings, _queue, _llm_http = None, None, None, None
