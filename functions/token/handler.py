"""token: GET /auth/token, the caller's Supabase access token from the
@supabase/ssr session cookie, refreshed through GoTrue when due, so the
browser can `realtime.setAuth(token)` and join private channels."""

from __future__ import annotations

import time
from functools import cache
from typing import TYPE_CHECKING, Any

from fastapi import Request
from fastapi.responses import JSONResponse
from pydantic import BaseModel

from functions.token.settings import TokenSettings
from shared import container
from shared.auth.principal import Principal
from shared.errors import AppError, Unauthorized
from shared.http.app import create_app, lambda_handler
from shared.http.errors import response_for
from shared.session import gotrue
from shared.session.cookies import StoredSession, clear_cookie, read_session, session_cookies
from shared.settings import load

if TYPE_CHECKING:
    import httpx


@cache
def token_settings() -> TokenSettings:
    return load(TokenSettings)


@cache
def gotrue_http() -> httpx.Client:
    return container.http_client(token_settings().gotrue_timeout_seconds)


# Fail at cold start, naming any bad setting; build the verifier and the
# GoTrue client in init, which Lambda runs at full CPU (and SnapStart keeps).
container.configured(token_settings, container.verifier, gotrue_http)
app = create_app("token", methods="GET")
NO_STORE = {"Cache-Control": "no-store", "Vary": "Cookie"}


class TokenUser(BaseModel):
    id: str
    mongo_user_id: str | None


class TokenResponse(BaseModel):
    access_token: str
    token_type: str = "bearer"  # noqa: S105 (a token type, not a secret)
    expires_at: int
    user: TokenUser


def _cookie_name() -> str:
    return token_settings().auth_cookie_name or f"sb-{container.settings().project_ref}-auth-token"


def _is_https(request: Request) -> bool:
    forwarded = request.headers.get("x-forwarded-proto", "")
    return request.url.scheme == "https" or forwarded.split(",")[0].strip() == "https"


def _body(principal: Principal) -> dict[str, Any]:
    return TokenResponse(
        access_token=principal.token,
        expires_at=int(principal.claims["exp"]),
        user=TokenUser(id=str(principal.user_id), mongo_user_id=principal.mongo_user_id),
    ).model_dump()


def _error(exc: AppError, cookies: list[str] | None = None) -> JSONResponse:
    response = response_for(exc)
    response.headers.update(NO_STORE)
    for cookie in cookies or []:
        response.headers.append("set-cookie", cookie)
    return response


def _current(stored: StoredSession) -> Principal | None:
    """The stored access token if it is ours and valid beyond the margin."""
    access = stored.session.get("access_token")
    if not isinstance(access, str):
        return None
    try:
        principal = container.verifier().verify(access, verify_exp=False)
    except Unauthorized:
        return None
    remaining = int(principal.claims["exp"]) - time.time()
    return principal if remaining > token_settings().refresh_margin_seconds else None


@app.get("/auth/token", response_model=TokenResponse)
async def token(request: Request) -> JSONResponse:
    """The caller's access token, refreshed (and the cookies rewritten) when due."""
    name = _cookie_name()
    stored = read_session(request.headers.get("cookie", ""), name)
    if stored is None:
        return _error(Unauthorized("no session: sign in first", code="no_session"))

    principal = _current(stored)
    if principal is not None:
        return JSONResponse(_body(principal), headers=NO_STORE)

    secure, domain = _is_https(request), token_settings().auth_cookie_domain
    cleared = [clear_cookie(n, secure=secure, domain=domain) for n in stored.cookie_names]
    refresh_token = stored.session.get("refresh_token")
    if not isinstance(refresh_token, str) or not refresh_token:
        return _error(
            Unauthorized("the session has ended: sign in again", code="session_expired"), cleared
        )
    config = container.settings()
    try:
        session = gotrue.refresh(
            gotrue_http(),
            config.supabase_url,
            config.supabase_anon_key.get_secret_value(),
            refresh_token,
        )
        principal = container.verifier().verify(str(session["access_token"]))
    except Unauthorized as exc:
        return _error(exc, cleared)
    except AppError as exc:
        return _error(exc)  # auth unavailable: cookies untouched, try again later

    response = JSONResponse(_body(principal), headers=NO_STORE)
    for cookie in session_cookies(name, session, stored.encoding, stored.cookie_names,
                                  secure=secure, domain=domain):  # fmt: skip
        response.headers.append("set-cookie", cookie)
    return response


handler = lambda_handler(app)
