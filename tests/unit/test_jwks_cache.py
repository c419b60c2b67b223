"""The JWKS cache refetches on an unknown kid at most once per interval and
keeps serving known keys while the auth server is down."""

from __future__ import annotations

import json

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

    assert cache.key(keys.ec_kid) is not None
    assert cache.key("unknown") is None
    assert cache.key("unknown") is None
    assert len(fetches) == 1
    clock.now += 31
    assert cache.key("unknown") is None
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
    assert cache.key(keys.ec_kid) is not None
    up["value"] = False
    clock.now += 60
    assert cache.key("rotated") is None
    assert cache.key(keys.ec_kid) is not None


def test_auth_down_on_first_fetch_is_a_503() -> None:
    cache = JwksCache(
        "http://auth/jwks",
        httpx.Client(transport=httpx.MockTransport(lambda _: httpx.Response(500))),
    )
    with pytest.raises(ServiceUnavailable):
        cache.key("any")
