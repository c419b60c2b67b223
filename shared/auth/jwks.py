"""The project's signing keys, fetched once per container, refetched when
older than `max_age_seconds` (so a key Auth no longer publishes, a revoked
one, stops verifying), and refetched, at most every `min_refetch_seconds`,
when a token names a key we do not know. A key is named by its `kid` and
the algorithm together: RFC 7517 4.5 lets keys of different types share a
`kid`, and each must stay usable.

A fetch that fails (no answer, an error status, or a 200 whose document is
not a key set, or is empty while we hold keys: a broken edge must not sign
everyone out) keeps the last good set and is not retried for
`failure_backoff_seconds`: while Auth is down, tokens must not each wait
for another timed-out fetch. The last good set keeps verifying for at most
`max_stale_seconds` past its max age; then, still unable to fetch, tokens
are answered 503 auth_unavailable. So a revoked key verifies here at most
max age (5 min) after Auth's JWKS stops listing it (Supabase's edge caches
that document up to 10 more minutes), or, while it cannot be fetched, at
most max age + max stale (1 h 5 min: the default access-token lifetime,
past which no token issued before the outage is valid anyway).

The keys are public, so a SnapStart snapshot may keep them (`prefetch` at
init): a restored container refetches them once they are past their max
age, as any other. Its monotonic clock can be behind the one that fetched
them; a clock gone backwards makes the set due at once, never trusted
until the old clock's time comes round again.

Counted (shared.metrics): JwksFetches and JwksFetchFailures."""

from __future__ import annotations

import logging
import math
import threading
import time
from typing import Any

import httpx

from shared import metrics
from shared.auth.jws import VerifyingKey, key_from_jwk
from shared.errors import ServiceUnavailable

logger = logging.getLogger(__name__)


class JwksCache:
    def __init__(
        self,
        url: str,
        http: httpx.Client,
        *,
        max_age_seconds: float = 300.0,
        max_stale_seconds: float = 3600.0,
        min_refetch_seconds: float = 30.0,
        failure_backoff_seconds: float = 5.0,
        clock: Any = time.monotonic,
    ) -> None:
        self._url = url
        self._http = http
        self._max_age = max_age_seconds
        self._max_stale = max_stale_seconds
        self._min_refetch = min_refetch_seconds
        self._failure_backoff = failure_backoff_seconds
        self._clock = clock
        self._keys: dict[tuple[str, str], tuple[VerifyingKey, ...]] = {}
        self._fetched_at: float | None = None  # the last good fetch
        self._failed_at: float | None = None  # the last failed one, since
        self._lock = threading.Lock()

    def keys(
        self, kid: str, algorithm: str, *, refetch_unknown: bool = False
    ) -> tuple[VerifyingKey, ...]:
        """The keys with this id for this algorithm (usually one), refetching
        the set when due; none if unknown; ServiceUnavailable while no set
        can be trusted (never fetched, or past its max stale age) and none
        can be fetched. `refetch_unknown`: an unknown kid refetches now, not
        only once `min_refetch_seconds` have passed (a token GoTrue has just
        issued, signed by a key new to this container)."""
        known = self._keys.get((kid, algorithm))
        if known and self._age(self._clock()) < self._max_age:
            return known
        with self._lock:
            now = self._clock()
            if self._age(now) >= self._max_age:
                if self._age(now) >= self._max_age + self._max_stale:
                    self._keys = {}  # too old to trust, even while Auth is down
                if self._may_retry(now):
                    self._refresh(now)
                if not self._keys and self._failed_at is not None:
                    raise self._unavailable()
            elif (
                (kid, algorithm) not in self._keys
                and self._may_retry(now)
                and (refetch_unknown or self._age(now) >= self._min_refetch)
            ):
                self._refresh(now)
            return self._keys.get((kid, algorithm), ())

    @property
    def min_refetch_seconds(self) -> float:
        """How often a token naming an unknown key may refetch the set."""
        return self._min_refetch

    def prefetch(self) -> None:
        """Fetches the set once if never fetched; an outage is not an error
        here (the first token with a kid will try again)."""
        with self._lock:
            now = self._clock()
            if self._fetched_at is None and self._may_retry(now):
                self._refresh(now)

    def _age(self, now: float) -> float:
        """Seconds since the last good fetch; infinite if none, or if the
        clock went backwards since (a restored snapshot)."""
        if self._fetched_at is None or now < self._fetched_at:
            return math.inf
        return now - self._fetched_at

    def _may_retry(self, now: float) -> bool:
        """Not within the back-off after a failed fetch."""
        if self._failed_at is None:
            return True
        elapsed: float = now - self._failed_at
        return elapsed >= self._failure_backoff or elapsed < 0

    def _unavailable(self) -> ServiceUnavailable:
        """Retry-After: when this container will next try to fetch."""
        return ServiceUnavailable(
            "cannot fetch signing keys",
            code="auth_unavailable",
            retry_after=max(1, math.ceil(self._failure_backoff)),
        )

    def _refresh(self, now: float) -> None:
        """Replaces the set with a good fetch; after a failed one, keeps it
        (the caller decides whether it is still fit to use)."""
        try:
            keys = self._fetch()
        except _FetchFailed as exc:
            metrics.count("JwksFetchFailures")
            self._failed_at = now
            held = "keeping the key set fetched" if self._keys else "no key set held"
            age = "" if self._fetched_at is None else f" {self._age(now):.0f} s ago"
            logger.warning("JWKS refetch failed (%s): %s%s", exc, held, age)
            return
        metrics.count("JwksFetches")
        self._keys, self._fetched_at, self._failed_at = keys, now, None

    def _fetch(self) -> dict[tuple[str, str], tuple[VerifyingKey, ...]]:
        try:
            response = self._http.get(self._url)
            response.raise_for_status()
            document = response.json()
        except httpx.HTTPStatusError as exc:
            raise _FetchFailed(f"answered {exc.response.status_code}") from exc
        except (httpx.HTTPError, ValueError) as exc:
            raise _FetchFailed(type(exc).__name__) from exc
        listed = document.get("keys") if isinstance(document, dict) else None
        if not isinstance(listed, list):
            raise _FetchFailed("the document is not a key set")
        keys: dict[tuple[str, str], tuple[VerifyingKey, ...]] = {}
        for jwk in listed:
            if not isinstance(jwk, dict) or not isinstance(jwk.get("kid"), str) or not jwk["kid"]:
                continue
            key = key_from_jwk(jwk)
            if key is not None:  # a key we cannot use is simply not a candidate
                named = (jwk["kid"], key.algorithm)
                keys[named] = (*keys.get(named, ()), key)
        if not keys and self._keys:
            # A project going back to its legacy secret publishes no keys; an
            # edge serving an empty document must not sign everyone out: the
            # held set is kept (up to its max stale age, then this is taken).
            raise _FetchFailed("the key set is empty")
        return keys


class _FetchFailed(Exception):
    """The JWKS could not be fetched, or what came back is not a key set."""
