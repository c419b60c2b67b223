"""The JWKS cache refetches on an unknown kid at most once per interval and
keeps serving known keys while the auth server is down."""

from __future__ import annotations

import json
from typing import Any

import httpx
import pytest

from shared.auth.jwks import JwksCache
from shared.errors import ServiceUnavailable
from tests.support.tokens import SigningKeys

pytestmark = pytest.mark.unit


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_unknown_kid_refetches_at_most_once_per_interval() -> None:
    keys = SigningKeys()
    fetches = []

    def answer(request: httpx.Request) -> httpx.Response:
        fetches.append(request.url.path)
        return httpx.Response(200, json=keys.jwks())

    clock = Clock()
    cache = JwksCache(
        "http://auth/jwks",
        httpx.Client(transport=httpx.MockTransport(answer)),
        min_refetch_seconds=30,
        clock=clock,
    )

    assert cache.keys(keys.ec_kid, "ES256")
    assert cache.keys("unknown", "ES256") == ()
    assert cache.keys("unknown", "ES256") == ()
    assert len(fetches) == 1
    clock.now += 31
    assert cache.keys("unknown", "ES256") == ()
    assert len(fetches) == 2


def test_known_keys_survive_an_auth_outage() -> None:
    keys = SigningKeys()
    up = {"value": True}

    def answer(_: httpx.Request) -> httpx.Response:
        return (
            httpx.Response(200, content=json.dumps(keys.jwks()))
            if up["value"]
            else httpx.Response(503)
        )

    clock = Clock()
    cache = JwksCache(
        "http://auth/jwks", httpx.Client(transport=httpx.MockTransport(answer)), clock=clock
    )
    assert cache.keys(keys.ec_kid, "ES256")
    up["value"] = False
    clock.now += 60
    assert cache.keys("rotated", "ES256") == ()
    assert cache.keys(keys.ec_kid, "ES256")


def test_auth_down_on_first_fetch_is_a_503() -> None:
    cache = JwksCache(
        "http://auth/jwks",
        httpx.Client(transport=httpx.MockTransport(lambda _: httpx.Response(500))),
    )
    with pytest.raises(ServiceUnavailable):
        cache.keys("any", "ES256")


class Auth:
    """Auth's JWKS endpoint: answers `status` (the keys when 200), counts fetches."""

    def __init__(self, keys: SigningKeys, status: int = 200, jwks: Any = None) -> None:
        self.status, self.fetches = status, 0
        self._jwks = keys.jwks() if jwks is None else jwks

    def client(self) -> httpx.Client:
        def reply(_: httpx.Request) -> httpx.Response:
            self.fetches += 1
            return httpx.Response(self.status, json=self._jwks if self.status == 200 else {})

        return httpx.Client(transport=httpx.MockTransport(reply))


def test_while_auth_is_down_tokens_do_not_each_wait_for_another_fetch() -> None:
    # Given a container whose first JWKS fetch failed
    keys, clock = SigningKeys(), Clock()
    auth = Auth(keys, status=503)
    cache = JwksCache("http://auth/jwks", auth.client(), failure_backoff_seconds=5, clock=clock)
    with pytest.raises(ServiceUnavailable):
        cache.keys(keys.ec_kid, "ES256")
    # When more tokens come within the backoff
    clock.now += 4
    for kid in (keys.ec_kid, "made-up-1", "made-up-2"):
        # Then each is answered 503 at once, without another fetch, saying when to retry
        with pytest.raises(ServiceUnavailable) as refused:
            cache.keys(kid, "ES256")
        assert refused.value.retry_after == 5
    assert auth.fetches == 1
    # and once it is over the next token fetches again (Auth is back: its key is found)
    auth.status = 200
    clock.now += 2
    assert cache.keys(keys.ec_kid, "ES256")
    assert auth.fetches == 2


def test_with_known_keys_an_outage_backs_off_unknown_kids_too() -> None:
    # Given known keys, then Auth down when a token names a new kid
    keys, clock = SigningKeys(), Clock()
    auth = Auth(keys)
    cache = JwksCache(
        "http://auth/jwks",
        auth.client(),
        min_refetch_seconds=30,
        failure_backoff_seconds=5,
        clock=clock,
    )
    assert cache.keys(keys.ec_kid, "ES256")
    auth.status = 503
    clock.now += 31
    assert cache.keys("new-1", "ES256") == ()
    # When more unknown kids come within the backoff
    assert cache.keys("new-2", "ES256") == ()
    assert cache.keys("new-3", "ES256") == ()
    # Then only the first fetched, and the known key still verifies
    assert auth.fetches == 2
    assert cache.keys(keys.ec_kid, "ES256")


def test_a_project_without_asymmetric_keys_refuses_unknown_kids_as_401_not_503() -> None:
    # Given a JWKS that answers with no keys (an HS256-only project)
    auth = Auth(SigningKeys(), jwks={"keys": []})
    cache = JwksCache("http://auth/jwks", auth.client(), clock=Clock())
    # When tokens name kids, Then they are unknown keys (not "auth unavailable")
    assert cache.keys("a", "ES256") == ()
    assert cache.keys("b", "ES256") == ()
    assert auth.fetches == 1
