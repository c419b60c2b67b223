"""Per-container singletons: settings, database adapter, token verifier,
the bot pipeline's settings, queue and model HTTP client, and the one TLS
context every HTTP client shares.

Each is built on first use and cached for the life of the container;
`reset()` drops them all (tests), `use_database` replaces one (benchmarks).
Imports of what is not used are never paid for.

Every HTTP client (JWKS, PostgREST, GoTrue, the model provider) comes from
`http_client`: one TLS context per container (shared.tls: building one
costs tens of milliseconds, once per client otherwise), and one pool
(shared.http_transport: httpx's own transport, the environment's proxies
mounted), whose connections `close_connections` closes (SnapStart's
before-snapshot hook) while the clients stay usable.
"""

from __future__ import annotations

import sys
import threading
from collections.abc import Callable
from importlib.util import find_spec
from typing import TYPE_CHECKING, Any, Generic, TypeVar

from shared import snapstart
from shared.errors import ConfigurationError
from shared.secrets import load_ssm_parameters
from shared.settings import Settings, load, load_settings

if TYPE_CHECKING:
    import ssl

    import httpx

    from shared.auth.jwks import JwksCache
    from shared.auth.verifier import TokenVerifier
    from shared.bots.settings import BotTriggerSettings, BotWorkerSettings
    from shared.db.port import Database
    from shared.http_transport import Outbound
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

    def peek(self) -> T | None:
        """The value if built, without building it."""
        return self._value

    def set(self, value: T) -> None:
        """Replaces the value; the old one is not closed (a replacement may wrap it)."""
        with _lock:
            self._value = value

    def drop(self) -> None:
        if self._value is not None and self._close is not None:
            self._close(self._value)
        self._value = None


def _build_tls_context() -> ssl.SSLContext:
    from shared.tls import client_context

    return client_context()


_tls_context = _Slot(_build_tls_context)


def _build_outbound() -> Outbound:
    from shared.http_transport import Outbound

    return Outbound(_tls_context.get())


_outbound = _Slot(_build_outbound, lambda outbound: outbound.close())


def http_client(timeout: float, *, connect: float | None = None, **options: Any) -> httpx.Client:
    """An HTTP/1.1 client on the container's pool and TLS context; `timeout`
    bounds each read and write (and the wait for a pooled connection),
    `connect` (default: the smaller of 2 s and `timeout`) the connection."""
    import httpx

    limits = httpx.Timeout(timeout, connect=min(timeout, 2.0) if connect is None else connect)
    return _outbound.get().client(limits, **options)


def close_connections() -> None:
    """Closes every pooled HTTP connection; the clients reconnect on next use."""
    outbound = _outbound.peek()
    if outbound is not None:
        outbound.close()


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
        http=http_client(config.database_timeout_seconds),
    )


def _build_jwks() -> JwksCache:
    from shared.auth.jwks import JwksCache

    url = f"{settings().supabase_url}/auth/v1/.well-known/jwks.json"
    return JwksCache(url, http_client(3.0))


def _build_verifier() -> TokenVerifier:
    from shared.auth.jws import self_test
    from shared.auth.verifier import TokenVerifier

    self_test()  # ES256 verified once at init: broken crypto stops the cold start, named
    config = settings()
    secret = config.supabase_jwt_secret
    return TokenVerifier(
        jwks(),
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
    from shared.queue import SqsQueue

    return SqsQueue(sqs(), bot_trigger_settings().bot_queue_url)


def _build_sqs() -> Any:
    from shared.queue import sqs_client

    return sqs_client()


def _build_llm_http() -> httpx.Client:
    # Read timeout per chunk; the worker's deadline bounds the whole reply.
    read = bot_worker_settings().llm_timeout_seconds
    return http_client(read, connect=5.0)


_settings = _Slot(_load_settings)
_database: _Slot[Database] = _Slot(_build_database, lambda db: db.close())
_jwks = _Slot(_build_jwks)
_verifier = _Slot(_build_verifier)
_bot_trigger_settings = _Slot(_load_bot_trigger_settings)
_bot_worker_settings = _Slot(_load_bot_worker_settings)
_queue: _Slot[JobQueue] = _Slot(_build_queue)
_llm_http: _Slot[httpx.Client] = _Slot(_build_llm_http, lambda http: http.close())
_sqs: _Slot[Any] = _Slot(_build_sqs)
_ALL: tuple[_Slot[Any], ...] = (
    _outbound,
    _settings,
    _database,
    _jwks,
    _verifier,
    _bot_trigger_settings,
    _bot_worker_settings,
    _queue,
    _llm_http,
    _sqs,
)


def settings() -> Settings:
    return _settings.get()


def configured(*more: Callable[[], object]) -> None:
    """Loads the settings (and `more`) at cold start. A configuration error
    ends the process with one line naming the variable or parameter and what
    to do, and so does a failed start-up check (ES256's test vector): a
    traceback through our modules would only hide it."""
    from shared.auth.jws import CryptoSelfTestFailed

    try:
        if settings().database_url is not None and find_spec("psycopg") is None:
            raise ConfigurationError(
                "DATABASE_URL is set but this artifact has no psycopg: unset it (PostgREST) "
                "or build with `scripts/package_functions.py --with-direct-db`"
            )
        for load_more in more:
            load_more()
    except ConfigurationError as exc:
        raise SystemExit(f"configuration error: {exc}") from None
    except CryptoSelfTestFailed as exc:
        raise SystemExit(f"cold start stopped: {exc}") from None


def database() -> Database:
    return _database.get()


def jwks() -> JwksCache:
    """The project's public signing keys (may stay in a SnapStart snapshot)."""
    return _jwks.get()


def verifier() -> TokenVerifier:
    return _verifier.get()


def bot_trigger_settings() -> BotTriggerSettings:
    return _bot_trigger_settings.get()


def bot_worker_settings() -> BotWorkerSettings:
    return _bot_worker_settings.get()


def queue() -> JobQueue:
    return _queue.get()


def sqs() -> Any:
    """boto3's SQS client (imported on first use: ~150 ms)."""
    return _sqs.get()


def llm_http() -> httpx.Client:
    """One connection pool to the model provider per container."""
    return _llm_http.get()


def use_database(replacement: Database) -> None:
    """Calls `replacement` instead of the configured adapter (benchmarks)."""
    _database.set(replacement)


def reset() -> None:
    with _lock:
        for slot in _ALL:
            slot.drop()


def _uses_http_transports(db: Database | None) -> bool:
    """PostgREST's pool is one of ours: close_connections empties it."""
    postgrest = sys.modules.get("shared.db.postgrest")
    return postgrest is not None and isinstance(db, postgrest.PostgrestDatabase)


def _before_snapshot() -> None:
    """No socket may be in a snapshot: HTTP pools are emptied (clients stay
    and reconnect), the direct database adapter is closed and rebuilt on
    first use (psycopg's pool has connections and a worker thread), and the
    SQS client's pool is cleared."""
    close_connections()
    with _lock:
        if not _uses_http_transports(_database.peek()):
            _database.drop()
        queue_client = _sqs.peek()
    if queue_client is not None:
        queue_client.close()  # botocore: clears the pool, the client stays usable


snapstart.register(before_snapshot=_before_snapshot)
