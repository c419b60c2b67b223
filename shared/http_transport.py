"""Outbound HTTP: what every client of a container (JWKS, PostgREST through
supabase-py's postgrest client, GoTrue, the model provider) sends through.

httpx's own transport (httpcore and h11): interim 1xx responses skipped, a
connection reused only once its response was read to the end, an idle
connection the server closed never written to, nothing resent, per-phase
timeouts, bodies cut short or malformed reported as errors
(tests/unit/test_http_transport.py holds each). One pool per container, on
the container's one TLS context (shared.tls): JWKS, PostgREST and GoTrue
share an origin, so a cold start's first request opens one connection (one
TLS handshake) to Supabase, not one per client.

Two things httpx does not do for a transport it is given, done here:
- proxies from the environment (HTTP_PROXY, HTTPS_PROXY, ALL_PROXY and
  NO_PROXY, read as httpx reads them): httpx reads them only when it builds
  its own transport, so the clients get them as mounts, each proxy a pool of
  its own (tests/unit/test_http_proxies.py compares the routing with a
  stock `httpx.Client`);
- closing and rebuilding around a SnapStart snapshot: `close()` closes every
  pool (no socket may be in a snapshot) and the next request builds a fresh
  one, so the clients built at init keep working after a restore.
"""

from __future__ import annotations

import ssl
import threading
from collections.abc import Callable
from typing import Any

import httpx

# httpx's own reading of the environment's proxy variables (what
# `httpx.Client(trust_env=True)` mounts when it builds its transport).
from httpx._utils import get_environment_proxies

from shared.errors import ConfigurationError


class PooledTransport(httpx.BaseTransport):
    """An `httpx.HTTPTransport` that `close()` closes and the next request
    replaces with a new one. (httpcore's pool happens to accept requests
    after its `close()`, which httpx does not promise: a closed transport is
    never used again here.)"""

    def __init__(self, build: Callable[[], httpx.HTTPTransport]) -> None:
        self._build = build
        self._lock = threading.Lock()
        self._current: httpx.HTTPTransport | None = build()  # bad settings fail at cold start

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        transport = self._current
        if transport is None:
            with self._lock:
                if self._current is None:
                    self._current = self._build()
                transport = self._current
        return transport.handle_request(request)

    def close(self) -> None:
        with self._lock:
            transport, self._current = self._current, None
        if transport is not None:
            transport.close()


class Outbound:
    """A container's transports: the direct pool, and one per proxy the
    environment names (NO_PROXY's hosts go direct)."""

    def __init__(self, ssl_context: ssl.SSLContext) -> None:
        self.direct = PooledTransport(lambda: httpx.HTTPTransport(verify=ssl_context))
        self.mounts: dict[str, httpx.BaseTransport | None] = {
            pattern: None if url is None else _proxy(ssl_context, pattern, url)
            for pattern, url in get_environment_proxies().items()
        }

    def client(self, timeout: httpx.Timeout, **options: Any) -> httpx.Client:
        return httpx.Client(timeout=timeout, transport=self.direct, mounts=self.mounts, **options)

    def close(self) -> None:
        """Closes every connection; the clients reconnect on next use."""
        for transport in (self.direct, *self.mounts.values()):
            if transport is not None:
                transport.close()


def _proxy(ssl_context: ssl.SSLContext, pattern: str, url: str) -> PooledTransport:
    variable = {"http://": "HTTP_PROXY", "https://": "HTTPS_PROXY"}.get(pattern, "ALL_PROXY")
    try:
        return PooledTransport(lambda: httpx.HTTPTransport(verify=ssl_context, proxy=url))
    except (ImportError, ValueError, httpx.InvalidURL) as exc:
        # e.g. a socks5:// proxy without socksio, or an unknown scheme. The
        # URL is not repeated: it may carry the proxy's credentials.
        scheme = url.split("://", 1)[0]
        raise ConfigurationError(
            f"{variable} names a {scheme}:// proxy, which cannot be used here "
            f"({type(exc).__name__}): use an http:// or https:// proxy"
        ) from None
