"""token: GET /auth/token, the caller's Supabase access token from the
@supabase/ssr session cookie, refreshed through GoTrue when due, so the
browser can `realtime.setAuth(token)` and join private channels."""

from __future__ import annotations

import math
import time
from functools import cache
from typing import TYPE_CHECKING, Any

from fastapi import Request
from fastapi.responses import JSONResponse
from pydantic import BaseModel

from functions.token.settings import TokenSettings
from shared import container
from shared.auth.principal import Principal
from shared.auth.verifier import UnknownSigningKey
from shared.errors import AppError, ServiceUnavailable, Unauthorized
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


def _ended() -> Unauthorized:
    return Unauthorized("the session has ended: sign in again", code="session_expired")


def _not_verifiable_yet() -> ServiceUnavailable:
    """A token this container cannot verify yet (signed by a key newer than
    its key set): the next refetch of the set may bring the key."""
    return ServiceUnavailable(
        "the session cannot be verified yet: try again",
        code="auth_unavailable",
        retry_after=math.ceil(container.jwks().min_refetch_seconds),
    )


def _stored_principal(stored: StoredSession) -> Principal:
    """The stored access token's user, its expiry aside: only a session whose
    access token is ours (signature, iss, aud) may be refreshed, so a forged
    cookie never reaches GoTrue (whose refresh limit is per IP: this
    function's, shared by every user). A token naming a key the JWKS no
    longer lists (revoked) means signing in again, unless its own exp is
    still ahead: then the key may be too new for this container (503)."""
    access = stored.session.get("access_token")
    if not isinstance(access, str):
        raise _ended()
    try:
        return container.verifier().verify(access, verify_exp=False)
    except UnknownSigningKey as exc:
        if exc.unexpired:
            raise _not_verifiable_yet() from exc
        raise _ended() from exc
    except Unauthorized as exc:
        raise _ended() from exc


def _due(principal: Principal) -> bool:
    remaining = int(principal.claims["exp"]) - time.time()
    return remaining <= token_settings().refresh_margin_seconds


@app.get("/auth/token", response_model=TokenResponse)
async def token(request: Request) -> JSONResponse:
    """The caller's access token, refreshed (and the cookies rewritten) when due."""
    name = _cookie_name()
    stored = read_session(request.headers.get("cookie", ""), name)
    if stored is None:
        return _error(Unauthorized("no session: sign in first", code="no_session"))

    secure, domain = _is_https(request), token_settings().auth_cookie_domain
    cleared = [clear_cookie(n, secure=secure, domain=domain) for n in stored.cookie_names]
    try:
        principal = _stored_principal(stored)
    except Unauthorized as exc:
        return _error(exc, cleared)
    except AppError as exc:
        return _error(exc)  # keys unavailable or not known yet: cookies untouched
    if not _due(principal):
        return JSONResponse(_body(principal), headers=NO_STORE)

    refresh_token = stored.session.get("refresh_token")
    if not isinstance(refresh_token, str) or not refresh_token:
        return _error(_ended(), cleared)
    config = container.settings()
    try:
        session = gotrue.refresh(
            gotrue_http(),
            config.supabase_url,
            config.supabase_anon_key.get_secret_value(),
            refresh_token,
        )
    except Unauthorized as exc:
        return _error(exc, cleared)
    except AppError as exc:
        return _error(exc)  # auth limited or unavailable: cookies untouched, try again later

    # GoTrue has rotated the refresh token: from here the new session is
    # written whatever happens, or the user is signed out for good.
    cookies = session_cookies(name, session, stored.encoding, stored.cookie_names,
                              secure=secure, domain=domain)  # fmt: skip
    try:
        principal = container.verifier().verify(str(session["access_token"]), refetch_unknown=True)
    except ServiceUnavailable as exc:
        return _error(exc, cookies)
    except Unauthorized as exc:
        failure = _not_verifiable_yet()
        failure.__cause__ = exc  # the log names why (shared.http.errors)
        return _error(failure, cookies)
    response = JSONResponse(_body(principal), headers=NO_STORE)
    for cookie in cookies:
        response.headers.append("set-cookie", cookie)
    return response


handler = lambda_handler(app)
