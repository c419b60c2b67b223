"""Refreshing a session through GoTrue (Supabase Auth)'s documented API:
POST /auth/v1/token?grant_type=refresh_token with the apikey header.

Counted (shared.metrics): TokenRefreshes, TokenRefreshFailures (GoTrue down,
slow, confused or rate-limiting) and TokenRefreshesRefused (the session had ended)."""

from __future__ import annotations

import logging
import re
import time
from typing import Any

import httpx

from shared import metrics
from shared.errors import ServiceUnavailable, TooManyRequests, Unauthorized

logger = logging.getLogger(__name__)

# GoTrue's 429 without a Retry-After: its per-IP token buckets refill in
# seconds (Supabase's rate limits page), so a short wait.
DEFAULT_RETRY_AFTER_SECONDS = 10
MAX_RETRY_AFTER_SECONDS = 3600
_ERROR_CODE = re.compile(r"[a-z0-9_]{1,64}")


class GoTrueAnswered(Exception):
    """What GoTrue answered, for the log: its status and error code (never
    its body, which may echo what was sent)."""

    def __init__(self, response: httpx.Response) -> None:
        code = None
        try:
            body = response.json()
            code = body.get("error_code") or body.get("code") if isinstance(body, dict) else None
        except ValueError:
            pass
        named = f" ({code})" if isinstance(code, str) and _ERROR_CODE.fullmatch(code) else ""
        super().__init__(f"POST /auth/v1/token answered {response.status_code}{named}")


def _retry_after(header: str | None) -> int:
    if header is not None and header.strip().isdigit():
        return min(max(int(header.strip()), 1), MAX_RETRY_AFTER_SECONDS)
    return DEFAULT_RETRY_AFTER_SECONDS


def refresh(
    http: httpx.Client, supabase_url: str, anon_key: str, refresh_token: str
) -> dict[str, Any]:
    """The new session. A refused refresh token is Unauthorized; GoTrue's
    rate limit (429, per IP: every user of this function's addresses) is
    TooManyRequests with GoTrue's Retry-After; GoTrue down, slow or confused
    is ServiceUnavailable naming what it answered (the caller keeps its
    cookies).

    GoTrue lets the parent refresh token be reused for a short interval, so
    two tabs refreshing with the same token both get a working session: we
    send the token once and never revoke anything."""
    try:
        session = _refresh(http, supabase_url, anon_key, refresh_token)
    except Unauthorized:
        metrics.count("TokenRefreshesRefused")
        raise
    except (ServiceUnavailable, TooManyRequests):
        metrics.count("TokenRefreshFailures")
        raise
    metrics.count("TokenRefreshes")
    return session


def _refresh(
    http: httpx.Client, supabase_url: str, anon_key: str, refresh_token: str
) -> dict[str, Any]:
    try:
        response = http.post(
            f"{supabase_url}/auth/v1/token",
            params={"grant_type": "refresh_token"},
            headers={"apikey": anon_key},
            json={"refresh_token": refresh_token},
        )
    except httpx.HTTPError as exc:
        raise ServiceUnavailable("the auth server did not answer", code="auth_unavailable") from exc
    if response.status_code in (400, 401, 403, 404):
        raise Unauthorized("the session has ended: sign in again", code="session_expired")
    if response.status_code == 429:
        # Only 5xx answers are logged by shared.http.errors: say here why.
        answered, wait = GoTrueAnswered(response), _retry_after(response.headers.get("retry-after"))
        logger.warning("the auth server refused a refresh: %s", answered,
                       extra={"retry_after": wait})  # fmt: skip
        raise TooManyRequests(
            "too many session refreshes: try again later",
            code="auth_rate_limited",
            retry_after=wait,
        ) from answered
    if response.status_code != 200:
        raise ServiceUnavailable(
            "the auth server failed", code="auth_unavailable"
        ) from GoTrueAnswered(response)
    try:
        session = response.json()
    except ValueError:
        raise ServiceUnavailable(
            "the auth server answered garbage", code="auth_unavailable"
        ) from None
    if (
        not isinstance(session, dict)
        or not session.get("access_token")
        or not session.get("refresh_token")
    ):
        raise ServiceUnavailable("the auth server answered garbage", code="auth_unavailable")
    if "expires_at" not in session and isinstance(session.get("expires_in"), int):
        session["expires_at"] = int(time.time()) + session["expires_in"]
    return session
