"""The project's signing keys, fetched once per container and refetched, at
most every `min_refetch_seconds`, when a token names a key we do not know.
A key is named by its `kid` and the algorithm together: RFC 7517 4.5 lets
keys of different types share a `kid`, and each must stay usable.
A fetch that fails is not retried for `failure_backoff_seconds`: while Auth
is down, tokens naming unknown keys (anyone can send those) must not each
wait for another timed-out fetch.

The keys are public, so a SnapStart snapshot may keep them (`prefetch` at
init); a restored container's monotonic clock can be behind the one that
fetched them, and a clock gone backwards allows a refetch rather than
blocking it until the old clock's time comes round again.

Counted (shared.metrics): JwksFetches and JwksFetchFailures."""

from __future__ import annotations

import contextlib
import math
import threading
import time
from typing import Any

import httpx

from shared import metrics
from shared.auth.jws import VerifyingKey, key_from_jwk
from shared.errors import ServiceUnavailable


class JwksCache:
    def __init__(
        self,
        url: str,
        http: httpx.Client,
        *,
        min_refetch_seconds: float = 30.0,
        failure_backoff_seconds: float = 5.0,
        clock: Any = time.monotonic,
    ) -> None:
        self._url = url
        self._http = http
        self._min_refetch = min_refetch_seconds
        self._failure_backoff = failure_backoff_seconds
        self._clock = clock
        self._keys: dict[tuple[str, str], tuple[VerifyingKey, ...]] = {}
        self._fetched_at: float | None = None
        self._failed_at: float | None = None
        self._lock = threading.Lock()

    def keys(self, kid: str, algorithm: str) -> tuple[VerifyingKey, ...]:
        """The keys with this id for this algorithm (usually one), refetching
        the set if allowed; none if unknown; ServiceUnavailable while no key
        could ever be fetched."""
        known = self._keys.get((kid, algorithm))
        if known:
            return known
        with self._lock:
            if (kid, algorithm) not in self._keys:
                if self._may_refetch():
                    self._keys = self._fetch()
                elif self._failed_at is not None and not self._keys:
                    raise self._unavailable()
            return self._keys.get((kid, algorithm), ())

    def prefetch(self) -> None:
        """Fetches the set once if never fetched; an outage is not an error
        here (the first token with a kid will try again)."""
        with self._lock:
            if self._fetched_at is None and self._may_refetch():
                with contextlib.suppress(ServiceUnavailable):
                    self._keys = self._fetch()

    def _unavailable(self) -> ServiceUnavailable:
        """Retry-After: when this container will next try to fetch."""
        return ServiceUnavailable(
            "cannot fetch signing keys",
            code="auth_unavailable",
            retry_after=max(1, math.ceil(self._failure_backoff)),
        )

    def _may_refetch(self) -> bool:
        if self._failed_at is not None:
            last, interval = self._failed_at, self._failure_backoff
        elif self._fetched_at is not None:
            last, interval = self._fetched_at, self._min_refetch
        else:
            return True
        elapsed: float = self._clock() - last
        return elapsed >= interval or elapsed < 0

    def _fetch(self) -> dict[tuple[str, str], tuple[VerifyingKey, ...]]:
        started = self._clock()
        try:
            response = self._http.get(self._url)
            response.raise_for_status()
            document = response.json()
        except (httpx.HTTPError, ValueError) as exc:
            metrics.count("JwksFetchFailures")
            # Keep what we had: a known key still verifies while auth is down.
            self._failed_at = started
            if self._keys:
                return self._keys
            raise self._unavailable() from exc
        self._fetched_at, self._failed_at = started, None
        metrics.count("JwksFetches")
        keys: dict[tuple[str, str], tuple[VerifyingKey, ...]] = {}
        for jwk in document.get("keys", []) if isinstance(document, dict) else []:
            if not isinstance(jwk, dict) or not isinstance(jwk.get("kid"), str) or not jwk["kid"]:
                continue
            key = key_from_jwk(jwk)
            if key is not None:  # a key we cannot use is simply not a candidate
                named = (jwk["kid"], key.algorithm)
                keys[named] = (*keys.get(named, ()), key)
        return keys
