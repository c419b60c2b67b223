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
