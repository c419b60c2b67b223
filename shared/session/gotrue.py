"""Refreshing a session through GoTrue (Supabase Auth)'s documented API:
POST /auth/v1/token?grant_type=refresh_token with the apikey header.

Counted (shared.metrics): TokenRefreshes, TokenRefreshFailures (GoTrue down,
slow or confused) and TokenRefreshesRefused (the session had ended)."""

from __future__ import annotations

import time
from typing import Any

import httpx

from shared import metrics
from shared.errors import ServiceUnavailable, Unauthorized


def refresh(
    http: httpx.Client, supabase_url: str, anon_key: str, refresh_token: str
) -> dict[str, Any]:
    """The new session. A refused refresh token is Unauthorized; GoTrue down,
    slow or confused is ServiceUnavailable (the caller keeps its cookies).

    GoTrue lets the parent refresh token be reused for a short interval, so
    two tabs refreshing with the same token both get a working session: we
    send the token once and never revoke anything."""
    try:
        session = _refresh(http, supabase_url, anon_key, refresh_token)
    except Unauthorized:
        metrics.count("TokenRefreshesRefused")
        raise
    except ServiceUnavailable:
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
    if response.status_code != 200:
        raise ServiceUnavailable("the auth server failed", code="auth_unavailable")
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
