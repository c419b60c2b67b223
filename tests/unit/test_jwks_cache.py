"""The JWKS cache refetches on an unknown kid at most once per interval,
refetches the whole set once it is past its max age (a revoked key stops
verifying), and keeps serving the last good set, for a bounded time, while
the auth server is down or answers something that is not a key set."""

from __future__ import annotations

import contextlib
import json
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from shared.auth.jwks import JwksCache
from shared.errors import ServiceUnavailable
from tests.support.loopback import JsonHandler, serve
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


class LoopbackJwks:
    """Auth's JWKS endpoint on loopback: answers `status` with `document`
    (JSON, or bytes as they are), counts fetches."""

    def __init__(self, document: Any) -> None:
        self.status, self.document, self.fetches = 200, document, 0

    @contextlib.contextmanager
    def serving(self) -> Iterator[str]:
        endpoint = self

        class Handler(JsonHandler):
            def do_GET(self) -> None:
                endpoint.fetches += 1
                if isinstance(endpoint.document, bytes):
                    self.send_response(endpoint.status)
                    self.send_header("Content-Length", str(len(endpoint.document)))
                    self.end_headers()
                    self.wfile.write(endpoint.document)
                else:
                    self.reply_json(endpoint.status, endpoint.document)

        with serve(Handler) as url:
            yield f"{url}/auth/v1/.well-known/jwks.json"


@pytest.fixture
def rotation() -> Iterator[tuple[SigningKeys, LoopbackJwks, JwksCache, Clock]]:
    """A project's JWKS with its ES256 and RS256 keys, and a container's cache of it."""
    keys, clock = SigningKeys(), Clock()
    endpoint = LoopbackJwks(keys.jwks())
    with endpoint.serving() as url, httpx.Client(timeout=5) as http:
        yield keys, endpoint, JwksCache(url, http, clock=clock), clock


def _without(keys: SigningKeys, kid: str) -> dict[str, Any]:
    return {"keys": [k for k in keys.jwks()["keys"] if k["kid"] != kid]}


def test_a_revoked_key_stops_verifying_once_the_set_is_past_its_max_age(
    rotation: tuple[SigningKeys, LoopbackJwks, JwksCache, Clock],
) -> None:
    keys, endpoint, cache, clock = rotation
    assert cache.keys(keys.rsa_kid, "RS256")
    # Given the project revokes its RSA key (Auth stops publishing it)
    endpoint.document = _without(keys, keys.rsa_kid)
    # Then a warm container trusts it until its set is 5 minutes old, not one fetch more
    clock.now += 299
    assert cache.keys(keys.rsa_kid, "RS256")
    assert endpoint.fetches == 1
    # and then no more, while the key still published keeps verifying
    clock.now += 2
    assert cache.keys(keys.rsa_kid, "RS256") == ()
    assert cache.keys(keys.ec_kid, "ES256")
    assert endpoint.fetches == 2


def test_while_auth_is_down_the_last_set_serves_for_a_bounded_time(
    rotation: tuple[SigningKeys, LoopbackJwks, JwksCache, Clock],
    caplog: pytest.LogCaptureFixture,
) -> None:
    keys, endpoint, cache, clock = rotation
    assert cache.keys(keys.ec_kid, "ES256")
    # Given Auth's JWKS failing once the set is due
    endpoint.status, endpoint.document = 503, {"message": "unavailable"}
    clock.now += 301
    # Then the last set keeps verifying, a warning says so, and tokens
    # within the back-off do not each wait for another fetch
    assert cache.keys(keys.ec_kid, "ES256")
    assert any("JWKS refetch failed (answered 503)" in r.getMessage() for r in caplog.records)
    clock.now += 4
    assert cache.keys(keys.ec_kid, "ES256")
    assert endpoint.fetches == 2
    # for an hour past its max age at most: then tokens are a 503, not trusted on an old set
    clock.now += 3600 - 4 - 2
    assert cache.keys(keys.ec_kid, "ES256")
    clock.now += 2
    with pytest.raises(ServiceUnavailable) as refused:
        cache.keys(keys.ec_kid, "ES256")
    assert refused.value.code == "auth_unavailable"
    # and once Auth answers again, they verify
    endpoint.status, endpoint.document = 200, keys.jwks()
    clock.now += 5
    assert cache.keys(keys.ec_kid, "ES256")


@pytest.mark.parametrize(
    "document",
    [
        {"keys": []},
        {"keys": [{"kty": "EC", "kid": "no-curve"}]},
        {"keys": "not a list"},
        {"message": "no keys here"},
        [],
        b"<html>gateway says hello</html>",
        b"",
    ],
    ids=["empty", "unusable", "keys-not-a-list", "no-keys", "a-list", "html", "nothing"],
)
def test_a_200_that_is_not_a_key_set_does_not_replace_a_good_one(
    rotation: tuple[SigningKeys, LoopbackJwks, JwksCache, Clock],
    caplog: pytest.LogCaptureFixture,
    document: Any,
) -> None:
    keys, endpoint, cache, clock = rotation
    assert cache.keys(keys.ec_kid, "ES256")
    # Given an edge that answers 200 with something that is not the key set
    endpoint.document = document
    clock.now += 301
    # Then the good set is kept, with a warning, and the fetch backs off
    assert cache.keys(keys.ec_kid, "ES256")
    assert any("JWKS refetch failed" in r.getMessage() for r in caplog.records)
    clock.now += 1
    assert cache.keys(keys.ec_kid, "ES256")
    assert endpoint.fetches == 2
    # and the next good answer, after the back-off, is taken
    endpoint.document = _without(keys, keys.ec_kid)
    clock.now += 5
    assert cache.keys(keys.ec_kid, "ES256") == ()
    assert endpoint.fetches == 3


def test_a_project_back_on_its_legacy_secret_drops_the_old_keys_after_the_stale_bound(
    rotation: tuple[SigningKeys, LoopbackJwks, JwksCache, Clock],
) -> None:
    keys, endpoint, cache, clock = rotation
    assert cache.keys(keys.ec_kid, "ES256")
    # Given Auth publishing no keys at all from now on
    endpoint.document = {"keys": []}
    clock.now += 301 + 3600
    # Then the held set is no longer trusted and the empty set is taken:
    # tokens naming a key are unknown (401), not "auth unavailable" (503)
    assert cache.keys(keys.ec_kid, "ES256") == ()
    clock.now += 1
    assert cache.keys(keys.ec_kid, "ES256") == ()
    assert endpoint.fetches == 2


def test_a_restored_snapshot_whose_clock_is_behind_refetches_at_once(
    rotation: tuple[SigningKeys, LoopbackJwks, JwksCache, Clock],
) -> None:
    keys, endpoint, cache, clock = rotation
    cache.prefetch()  # at init, into the snapshot
    endpoint.document = _without(keys, keys.rsa_kid)
    clock.now -= 500  # restored on a host whose monotonic clock is behind
    assert cache.keys(keys.rsa_kid, "RS256") == ()
    assert endpoint.fetches == 2


def test_a_fresh_token_s_unknown_key_may_refetch_at_once(
    rotation: tuple[SigningKeys, LoopbackJwks, JwksCache, Clock],
) -> None:
    keys, endpoint, cache, clock = rotation
    newer = SigningKeys()
    assert cache.keys(keys.ec_kid, "ES256")
    endpoint.document = {"keys": [*keys.jwks()["keys"], *newer.jwks()["keys"]]}
    # Within the refetch interval an unknown kid is refused without a fetch
    clock.now += 1
    assert cache.keys(newer.ec_kid, "ES256") == ()
    assert endpoint.fetches == 1
    # unless the caller knows the token is fresh from GoTrue
    assert cache.keys(newer.ec_kid, "ES256", refetch_unknown=True)
    assert endpoint.fetches == 2
