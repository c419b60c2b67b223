"""Settings from the environment, validated once per container (cold start).

Names users set: SUPABASE_URL, SUPABASE_ANON_KEY (or SUPABASE_PUBLISHABLE_KEY),
SUPABASE_SERVICE_ROLE_KEY (or SUPABASE_SECRET_KEY), SUPABASE_JWT_SECRET
(legacy HS256 projects), DATABASE_URL (selects the direct Postgres adapter),
ALLOWED_ORIGINS (comma-separated exact origins).
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from typing import Any, TypeVar
from urllib.parse import urlsplit

from pydantic import (
    AliasChoices,
    BaseModel,
    ConfigDict,
    Field,
    SecretStr,
    ValidationError,
    field_validator,
)

from shared.errors import ConfigurationError


class EnvSettings(BaseModel):
    """Settings read from environment variables named by each field's
    validation_alias. Plain pydantic: pydantic-settings would add about a
    fifth of FastAPI's import time to every cold start for features (dotenv,
    JSON-decoded complex values, secrets dirs) we do not use."""

    # defer_build: a function validates only its own settings classes, so
    # the others' validators are never built on its cold start.
    model_config = ConfigDict(extra="ignore", frozen=True, defer_build=True)


SettingsT = TypeVar("SettingsT", bound=EnvSettings)


class Settings(EnvSettings):
    supabase_url: str = Field(validation_alias="SUPABASE_URL")
    supabase_anon_key: SecretStr = Field(
        validation_alias=AliasChoices("SUPABASE_ANON_KEY", "SUPABASE_PUBLISHABLE_KEY")
    )
    supabase_service_role_key: SecretStr | None = Field(
        default=None,
        validation_alias=AliasChoices("SUPABASE_SERVICE_ROLE_KEY", "SUPABASE_SECRET_KEY"),
    )
    supabase_jwt_secret: SecretStr | None = Field(
        default=None, validation_alias="SUPABASE_JWT_SECRET"
    )
    database_url: SecretStr | None = Field(default=None, validation_alias="DATABASE_URL")
    allowed_origins: tuple[str, ...] = Field(default=(), validation_alias="ALLOWED_ORIGINS")
    database_timeout_seconds: float = Field(
        default=5.0, gt=0, validation_alias="DATABASE_TIMEOUT_SECONDS"
    )

    @field_validator("supabase_url")
    @classmethod
    def _url(cls, value: str) -> str:
        parts = urlsplit(value.strip())
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ValueError("must be an http(s) URL such as https://<ref>.supabase.co")
        return f"{parts.scheme}://{parts.netloc}{parts.path.rstrip('/')}"

    @field_validator("database_url")
    @classmethod
    def _dsn(cls, value: SecretStr | None) -> SecretStr | None:
        if value is None or not value.get_secret_value().strip():
            return None
        if urlsplit(value.get_secret_value()).scheme not in ("postgres", "postgresql"):
            raise ValueError("must be a postgresql:// URL")
        return value

    @field_validator("supabase_jwt_secret", "supabase_service_role_key")
    @classmethod
    def _blank_is_unset(cls, value: SecretStr | None) -> SecretStr | None:
        return value if value is not None and value.get_secret_value().strip() else None

    @field_validator("allowed_origins", mode="before")
    @classmethod
    def _origins(cls, value: Any) -> tuple[str, ...]:
        items = value.split(",") if isinstance(value, str) else list(value or ())
        origins = []
        for raw in items:
            origin = str(raw).strip().rstrip("/")
            if not origin:
                continue
            parts = urlsplit(origin)
            if parts.scheme not in ("http", "https") or not parts.hostname or parts.path:
                raise ValueError(f"{origin!r} is not an origin like https://app.example.com")
            origins.append(origin)
        return tuple(origins)

    @property
    def project_ref(self) -> str:
        """The first label of the API host: `abcd` in https://abcd.supabase.co."""
        host = urlsplit(self.supabase_url).hostname or ""
        return host.split(".")[0]


def _env_name(cls: type[EnvSettings], field: str) -> str:
    alias = cls.model_fields[field].validation_alias
    if isinstance(alias, AliasChoices):
        return " or ".join(str(choice) for choice in alias.choices)
    return str(alias or field.upper())


def load(cls: type[SettingsT], environ: Mapping[str, str] | None = None) -> SettingsT:
    """Reads and validates the environment; the error names every bad setting."""
    try:
        return cls.model_validate(dict(os.environ if environ is None else environ))
    except ValidationError as exc:
        problems = []
        for error in exc.errors():
            loc = str(error["loc"][0]) if error["loc"] else "?"
            field = next((f for f in cls.model_fields if loc in _env_name(cls, f).split(" or ")),
                         loc)  # fmt: skip
            name = _env_name(cls, field) if field in cls.model_fields else loc
            if error["type"] == "missing":
                problems.append(f"{name} is not set")
            else:
                problems.append(f"{name}: {error['msg']}")
        raise ConfigurationError(
            "invalid settings: "
            + "; ".join(problems)
            + " (set them in the function's environment: on AWS the deploy params"
            " and SSM parameters, see README, Deploy; locally infra/dev/local.env)"
        ) from None


def load_settings() -> Settings:
    return load(Settings)
