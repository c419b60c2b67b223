"""The token function: sessions in @supabase/ssr's real cookie format,
refreshed through a GoTrue stand-in, CORS, and no refresh token leaking."""

from __future__ import annotations

import importlib
import json
import logging
import subprocess
import threading
import uuid
from pathlib import Path
from typing import Any

import pytest

from shared import container
from tests.integration.conftest import ORIGIN
from tests.support.events import HttpResult, LambdaContext, http_event, parse
from tests.support.fake_supabase import FakeSupabase
from tests.support.gotrue import RefreshGrant
from tests.support.session_cookies import cookie_header_from_set_cookie
from tests.support.tokens import SigningKeys

pytestmark = pytest.mark.integration

ROOT = Path(__file__).resolve().parents[2]
USER_ID = str(uuid.uuid4())


def node(mode: str, payload: dict[str, Any]) -> dict[str, Any]:
    done = subprocess.run(
        ["node", "tests/node/ssr_cookies.mjs", mode],
        input=json.dumps(payload),
        capture_output=True,
        text=True,
        cwd=ROOT,
        timeout=60,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    result: dict[str, Any] = json.loads(done.stdout)
    return result


@pytest.fixture(params=["direct"])
def adapter(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture
def grant(keys: SigningKeys, supabase: FakeSupabase) -> RefreshGrant:
    grant = RefreshGrant(keys, USER_ID)
    supabase.token_endpoint = grant
    return grant


@pytest.fixture
def token(environment: None, grant: RefreshGrant, monkeypatch: pytest.MonkeyPatch) -> Any:
    monkeypatch.setenv("GOTRUE_TIMEOUT_SECONDS", "0.5")
    module = importlib.import_module("functions.token.handler")
    module.token_settings.cache_clear()
    module.gotrue_http.cache_clear()

    def call(
        cookie: str | None = None, headers: dict[str, str] | None = None, method: str = "GET"
    ) -> HttpResult:
        all_headers = dict(headers or {})
        if cookie:
            all_headers["cookie"] = cookie
        return parse(
            module.handler(http_event(method, "/auth/token", headers=all_headers), LambdaContext())
        )

    return call


def _session(
    keys: SigningKeys, grant: RefreshGrant, *, ttl: int = 3600, big: bool = False
) -> dict[str, Any]:
    extra = {"user_metadata": {"bio": "x" * 4000}} if big else {}
    claims = keys.user_claims(USER_ID, mongo_id="amy", ttl=ttl, **extra)
    return {
        "access_token": keys.sign(claims),
        "token_type": "bearer",
        "expires_in": ttl,
        "expires_at": claims["exp"],
        "refresh_token": grant.issue(),
        "user": {
            "id": USER_ID,
            "aud": "authenticated",
            "role": "authenticated",
            "email": claims["email"],
            "app_metadata": claims["app_metadata"],
            "user_metadata": extra.get("user_metadata", {}),
        },
    }


def _written_by_ssr(
    supabase: FakeSupabase, keys: SigningKeys, session: dict[str, Any], encoding: str
) -> dict[str, Any]:
    return node(
        "write",
        {"url": supabase.url, "anonKey": keys.anon_key(), "encoding": encoding, "session": session},
    )


@pytest.mark.parametrize("encoding", ["base64url", "raw"])
@pytest.mark.parametrize("big", [False, True])
def test_sessions_written_by_supabase_ssr_are_read(
    token: Any,
    supabase: FakeSupabase,
    keys: SigningKeys,
    grant: RefreshGrant,
    encoding: str,
    big: bool,
) -> None:
    # Given a session stored by @supabase/ssr itself (chunked when large)
    session = _session(keys, grant, big=big)
    written = _written_by_ssr(supabase, keys, session, encoding)
    names = [c["name"] for c in written["cookies"] if c["value"]]
    name = "sb-127-auth-token"
    if big:
        assert len(names) >= 2
        assert names == [f"{name}.{i}" for i in range(len(names))]
    else:
        assert names == [name]

    # When the browser asks for its token
    result = token(written["cookieHeader"])

    # Then it gets the stored access token, with no call to GoTrue
    assert result.status == 200, result.body
    assert result.body == {
        "access_token": session["access_token"],
        "token_type": "bearer",
        "expires_at": session["expires_at"],
        "user": {"id": USER_ID, "mongo_user_id": "amy"},
    }
    assert supabase.token_requests == []
    assert result.cookies == []
    assert result.headers["cache-control"] == "no-store"
    assert {"Origin", "Cookie"} <= {v.strip() for v in result.headers["vary"].split(",")}


@pytest.mark.parametrize("encoding", ["base64url", "raw"])
@pytest.mark.parametrize("big", [False, True])
def test_a_session_due_is_refreshed_and_written_back_in_the_same_format(
    token: Any,
    supabase: FakeSupabase,
    keys: SigningKeys,
    grant: RefreshGrant,
    encoding: str,
    big: bool,
) -> None:
    # Given a session that expires within the margin
    session = _session(keys, grant, ttl=30, big=big)
    written = _written_by_ssr(supabase, keys, session, encoding)

    # When the browser asks for its token
    result = token(written["cookieHeader"], headers={"x-forwarded-proto": "https"})

    # Then GoTrue was asked to refresh as documented
    assert result.status == 200, result.body
    [request] = supabase.token_requests
    assert request["path"] == "/auth/v1/token?grant_type=refresh_token"
    assert request["apikey"] == keys.anon_key()
    assert request["body"] == {"refresh_token": session["refresh_token"]}
    # And the new token came back, never the refresh token
    assert result.body["access_token"] != session["access_token"]
    assert "refresh_token" not in json.dumps(result.body)
    # And @supabase/ssr reads the rewritten cookies as the new session
    for cookie in result.cookies:
        assert "Path=/" in cookie
        assert "SameSite=Lax" in cookie
        assert "Secure" in cookie
    header = cookie_header_from_set_cookie(written["cookieHeader"], result.cookies)
    read = node(
        "read",
        {
            "url": supabase.url,
            "anonKey": keys.anon_key(),
            "encoding": encoding,
            "cookieHeader": header,
        },
    )
    assert read["session"]["access_token"] == result.body["access_token"]
    assert read["session"]["refresh_token"] != session["refresh_token"]
    if big:  # the new session is small: the stale chunks are cleared
        assert any(
            c.startswith("sb-127-auth-token.1=;") and "Max-Age=0" in c for c in result.cookies
        )


def test_a_rejected_refresh_token_is_401_and_clears_the_cookies(
    token: Any, supabase: FakeSupabase, keys: SigningKeys, grant: RefreshGrant
) -> None:
    from shared.session.cookies import encode

    # Given an expired session whose refresh token GoTrue no longer knows
    session = _session(keys, grant, ttl=-100)
    grant.active.clear()
    chunks = encode(session, "base64url")

    # When the browser asks for its token (API Gateway: always https)
    result = token(f"sb-127-auth-token.0={chunks[:100]}; sb-127-auth-token.1={chunks[100:]}")

    # Then it must sign in again, and every stale cookie is cleared
    assert (result.status, result.error_code) == (401, "session_expired")
    assert result.cookies == [
        f"sb-127-auth-token.{i}=; Max-Age=0; Path=/; SameSite=Lax; Secure" for i in (0, 1)
    ]


@pytest.mark.parametrize("fault", ["500", "stall"])
def test_gotrue_down_or_slow_is_503_and_keeps_the_cookies(
    token: Any, supabase: FakeSupabase, keys: SigningKeys, grant: RefreshGrant, fault: str
) -> None:
    from shared.session.cookies import encode

    supabase.token_endpoint = (
        (lambda _: (500, {"msg": "boom"})) if fault == "500" else (lambda _: None)
    )
    session = _session(keys, grant, ttl=10)
    result = token(f"sb-127-auth-token={encode(session, 'base64url')}")
    assert (result.status, result.error_code) == (503, "auth_unavailable")
    assert result.cookies == []
    assert "retry-after" in result.headers


@pytest.mark.parametrize(
    "cookie", [None, "other=1", "sb-127-auth-token=base64-!!!", "sb-127-auth-token=%7Bnot-json"]
)
def test_no_or_garbage_session_is_401(token: Any, cookie: str | None) -> None:
    result = token(cookie)
    assert (result.status, result.error_code) == (401, "no_session")
    assert result.body["error"]["message"]


def test_two_tabs_refreshing_at_once_both_get_a_working_token(
    token: Any, supabase: FakeSupabase, keys: SigningKeys, grant: RefreshGrant
) -> None:
    from shared.session.cookies import encode

    cookie = f"sb-127-auth-token={encode(_session(keys, grant, ttl=5), 'base64url')}"
    results: list[HttpResult] = []
    tabs = [threading.Thread(target=lambda: results.append(token(cookie))) for _ in range(2)]
    for tab in tabs:
        tab.start()
    for tab in tabs:
        tab.join(10)
    assert [r.status for r in results] == [200, 200]
    for r in results:
        container.verifier().verify(r.body["access_token"])


def test_cors_preflight_and_origins(token: Any, keys: SigningKeys, grant: RefreshGrant) -> None:
    from shared.session.cookies import encode

    cookie = f"sb-127-auth-token={encode(_session(keys, grant), 'base64url')}"
    allowed = token(cookie, headers={"origin": ORIGIN})
    assert (
        allowed.headers["access-control-allow-origin"],
        allowed.headers["access-control-allow-credentials"],
    ) == (ORIGIN, "true")
    other = token(cookie, headers={"origin": "https://evil.example"})
    assert other.status == 200
    assert "access-control-allow-origin" not in other.headers
    preflight = token(
        method="OPTIONS", headers={"origin": ORIGIN, "access-control-request-method": "GET"}
    )
    # Starlette's CORSMiddleware answers 200 (browsers accept any 2xx).
    assert preflight.status == 200
    assert "GET" in preflight.headers["access-control-allow-methods"]
    refused = token(
        method="OPTIONS",
        headers={"origin": "https://evil.example", "access-control-request-method": "GET"},
    )
    # and 400 to a refused preflight: the browser acts on the missing allow-origin.
    assert refused.status == 400
    assert "access-control-allow-origin" not in refused.headers


def test_no_refresh_token_in_any_log_line(
    token: Any,
    keys: SigningKeys,
    grant: RefreshGrant,
    capsys: pytest.CaptureFixture[str],
    caplog: pytest.LogCaptureFixture,
) -> None:
    from shared.session.cookies import encode

    caplog.set_level(logging.DEBUG)
    refreshed = _session(keys, grant, ttl=5)
    rejected = _session(keys, grant, ttl=5)
    ok = token(f"sb-127-auth-token={encode(refreshed, 'base64url')}")
    grant.active.pop(rejected["refresh_token"])
    refused = token(f"sb-127-auth-token={encode(rejected, 'base64url')}")

    assert (ok.status, refused.status) == (200, 401)
    captured = capsys.readouterr()
    logged = captured.out + captured.err + caplog.text
    # the request lines and the HTTP client's lines (the refresh grant's too)
    # were captured
    assert "GET /auth/token 200" in logged
    assert "HTTP Request: POST" in logged
    for secret in [refreshed["refresh_token"], rejected["refresh_token"], *grant.active]:
        assert secret not in logged
        assert secret not in json.dumps(ok.body) + json.dumps(refused.body)


def _cookie(session: dict[str, Any]) -> str:
    from shared.session.cookies import encode

    return f"sb-127-auth-token={encode(session, 'base64url')}"


def _rotated(supabase: FakeSupabase, grant: RefreshGrant) -> SigningKeys:
    """GoTrue signs with a new key from now on."""
    newer = SigningKeys()
    newer.serve_at(supabase.url)
    grant.keys = newer
    return newer


def test_a_refresh_signed_by_a_key_rotated_in_since_the_last_fetch_is_verified(
    token: Any, supabase: FakeSupabase, keys: SigningKeys, grant: RefreshGrant
) -> None:
    # Given a container that fetched the project's keys a moment ago
    assert token(_cookie(_session(keys, grant))).status == 200
    # and a rotation since: GoTrue signs with a new key, which the JWKS now lists
    supabase.published = [_rotated(supabase, grant)]
    due = _session(keys, grant, ttl=5)

    # When a session due for refresh asks for its token (well within the refetch interval)
    result = token(_cookie(due))

    # Then the new token is verified after one refetch, and the new session written
    assert result.status == 200, result.body
    assert supabase.jwks_fetches == 2
    header = cookie_header_from_set_cookie(_cookie(due), result.cookies)
    assert token(header).body["access_token"] == result.body["access_token"]


def test_a_refresh_that_cannot_be_verified_yet_keeps_the_new_session(
    token: Any, supabase: FakeSupabase, keys: SigningKeys, grant: RefreshGrant
) -> None:
    # Given a rotation to a key the JWKS does not list yet (an edge's stale copy)
    newer = _rotated(supabase, grant)
    due = _session(keys, grant, ttl=5)

    # When the session is refreshed
    result = token(_cookie(due))

    # Then it is a 503 to retry, but GoTrue's new session (its refresh token
    # rotated) is written, never cleared: the user stays signed in
    assert (result.status, result.error_code) == (503, "auth_unavailable")
    assert result.headers["retry-after"] == "30"
    assert len(supabase.token_requests) == 1
    header = cookie_header_from_set_cookie(_cookie(due), result.cookies)
    from shared.session.cookies import read_session

    written = read_session(header, "sb-127-auth-token")
    assert written is not None
    assert written.session["refresh_token"] in grant.active
    assert written.session["refresh_token"] != due["refresh_token"]
    # and once the key is published (another container, or the next refetch)
    # the new session's token is served, without another refresh
    supabase.published = [newer]
    container.reset()
    again = token(header)
    assert again.status == 200, again.body
    assert again.body["access_token"] == written.session["access_token"]
    assert len(supabase.token_requests) == 1


def _forged(keys: SigningKeys, grant: RefreshGrant, **claims: Any) -> dict[str, Any]:
    return {**_session(keys, grant, ttl=5), **claims}


@pytest.mark.parametrize(
    "access_token",
    [
        "x",
        "eyJhbGciOiJub25lIn0.eyJzdWIiOiJ4In0.",
        "wrong-signature",
        "wrong-issuer",
        "wrong-audience",
        "revoked-key",
    ],
)
def test_a_session_whose_access_token_is_not_ours_never_reaches_gotrue(
    token: Any, supabase: FakeSupabase, keys: SigningKeys, grant: RefreshGrant, access_token: str
) -> None:
    claims = keys.user_claims(USER_ID, ttl=-600)  # expired: it would be refreshed
    other = SigningKeys()
    forged = {
        "wrong-signature": lambda: other.sign(claims, kid=keys.ec_kid),
        "wrong-issuer": lambda: keys.sign({**claims, "iss": "https://evil.example/auth/v1"}),
        "wrong-audience": lambda: keys.sign({**claims, "aud": "service"}),
        # a key Auth no longer lists (revoked), its token long expired
        "revoked-key": lambda: other.sign(claims),
    }
    session = {"access_token": forged.get(access_token, lambda: access_token)(),
               "refresh_token": grant.issue()}  # fmt: skip

    # When anyone sends it
    result = token(_cookie(session))

    # Then it must sign in again, its cookies are cleared, and GoTrue is never asked
    assert (result.status, result.error_code) == (401, "session_expired")
    assert result.cookies == ["sb-127-auth-token=; Max-Age=0; Path=/; SameSite=Lax; Secure"]
    assert supabase.token_requests == []


def test_a_token_naming_an_unknown_key_that_is_not_expired_is_a_503_not_a_refresh(
    token: Any, supabase: FakeSupabase, keys: SigningKeys, grant: RefreshGrant
) -> None:
    # Given a session whose token names a key the JWKS does not list, and
    # says it is valid for another minute (a key too new, or a forgery)
    unknown = SigningKeys()
    claims = keys.user_claims(USER_ID, ttl=50)
    session = {"access_token": unknown.sign(claims), "refresh_token": grant.issue()}

    result = token(_cookie(session))

    # Then it is retried later, the cookies are kept, and GoTrue is not asked
    assert (result.status, result.error_code) == (503, "auth_unavailable")
    assert result.headers["retry-after"] == "30"
    assert result.cookies == []
    assert supabase.token_requests == []


@pytest.mark.parametrize(("sent", "passed_on"), [("42", "42"), (None, "10")])
def test_gotrue_s_rate_limit_is_a_429_with_its_retry_after(
    token: Any,
    supabase: FakeSupabase,
    keys: SigningKeys,
    grant: RefreshGrant,
    caplog: pytest.LogCaptureFixture,
    sent: str | None,
    passed_on: str,
) -> None:
    body = {
        "code": 429,
        "error_code": "over_request_rate_limit",
        "msg": "Request rate limit reached",
    }
    supabase.token_endpoint = lambda _: (429, body, {"Retry-After": sent} if sent else {})

    session = _session(keys, grant, ttl=5)

    result = token(_cookie(session))

    assert (result.status, result.error_code) == (429, "auth_rate_limited")
    assert result.headers["retry-after"] == passed_on
    assert result.body["error"]["retry_after"] == int(passed_on)
    assert result.cookies == []
    assert any(
        r.levelname == "WARNING" and "answered 429 (over_request_rate_limit)" in r.getMessage()
        for r in caplog.records
    )
    assert session["refresh_token"] not in caplog.text


def test_gotrue_failing_is_a_503_whose_log_names_what_it_answered(
    token: Any,
    supabase: FakeSupabase,
    keys: SigningKeys,
    grant: RefreshGrant,
    capsys: pytest.CaptureFixture[str],
) -> None:
    supabase.token_endpoint = lambda _: (502, {"code": 502, "error_code": "unexpected_failure"})

    result = token(_cookie(_session(keys, grant, ttl=5)))

    assert (result.status, result.error_code) == (503, "auth_unavailable")
    lines = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    [warning] = [x for x in lines if x["level"] == "WARNING"]
    assert warning["cause"].endswith("POST /auth/v1/token answered 502 (unexpected_failure)")
