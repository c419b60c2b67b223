"""Who is calling: a verified Supabase user, or the service itself."""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field
from typing import Any


@dataclass(frozen=True)
class Principal:
    """A user whose access token was verified. `claims` go to the database as
    `request.jwt.claims`; `token` is forwarded to PostgREST as is."""

    user_id: uuid.UUID
    role: str
    claims: dict[str, Any] = field(repr=False)
    token: str = field(repr=False)

    @property
    def app_metadata(self) -> dict[str, Any]:
        metadata = self.claims.get("app_metadata")
        return metadata if isinstance(metadata, dict) else {}

    @property
    def mongo_user_id(self) -> str | None:
        """From app_metadata, which only the service can write (never user_metadata)."""
        value = self.app_metadata.get("mongo_user_id")
        return value if isinstance(value, str) and value else None


@dataclass(frozen=True)
class Service:
    """The functions acting as themselves (service_role)."""

    claims: dict[str, Any] = field(default_factory=lambda: {"role": "service_role"})


SERVICE = Service()
Caller = Principal | Service
