"""Per-container singletons: settings, database adapter, token verifier.

Built on first use and cached for the life of the container; `reset()` drops
them (tests, or a settings change in `make dev`). Imports of the adapter not
chosen are never paid for.
"""

from __future__ import annotations

import threading
from typing import TYPE_CHECKING

from shared.settings import Settings, load_settings

if TYPE_CHECKING:
    from shared.auth.verifier import TokenVerifier
    from shared.db.port import Database

_lock = threading.RLock()  # builders call settings() while holding it
_settings: Settings | None = None
_database: Database | None = None
_verifier: TokenVerifier | None = None


def settings() -> Settings:
    global _settings
    if _settings is None:
        with _lock:
            if _settings is None:
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
    global _settings, _database, _verifier
    with _lock:
        if _database is not None:
            _database.close()
        _settings, _database, _verifier = None, None, None
