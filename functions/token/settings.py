"""Settings of the token function, beyond the shared ones."""

from __future__ import annotations

from pydantic import Field

from shared.settings import EnvSettings


class TokenSettings(EnvSettings):
    # Default: sb-<project ref>-auth-token, as @supabase/ssr names it.
    auth_cookie_name: str | None = Field(default=None, validation_alias="AUTH_COOKIE_NAME")
    auth_cookie_domain: str | None = Field(default=None, validation_alias="AUTH_COOKIE_DOMAIN")
    refresh_margin_seconds: int = Field(
        default=60, ge=0, validation_alias="TOKEN_REFRESH_MARGIN_SECONDS"
    )
    gotrue_timeout_seconds: float = Field(
        default=5.0, gt=0, validation_alias="GOTRUE_TIMEOUT_SECONDS"
    )
