"""Who is calling: a verified Supabase user, or the service itself.

Plain slotted classes rather than dataclasses: every function builds these
on its cold start path, and a dataclass compiles its methods at import.
"""

from __future__ import annotations

import uuid
from typing import Any


class Principal:
    """A user whose access token was verified. `claims` go to the database as
    `request.jwt.claims`; `token` is forwarded to PostgREST as is. Neither
    appears in the repr (logs, tracebacks)."""

    __slots__ = ("claims", "role", "token", "user_id")

    def __init__(self, user_id: uuid.UUID, role: str, claims: dict[str, Any], token: str) -> None:
        self.user_id = user_id
        self.role = role
        self.claims = claims
        self.token = token

    def __repr__(self) -> str:
        return f"Principal(user_id={self.user_id!r}, role={self.role!r})"

    @property
    def app_metadata(self) -> dict[str, Any]:
        metadata = self.claims.get("app_metadata")
        return metadata if isinstance(metadata, dict) else {}

    @property
    def mongo_user_id(self) -> str | None:
        """From app_metadata, which only the service can write (never user_metadata)."""
        value = self.app_metadata.get("mongo_user_id")
        return value if isinstance(value, str) and value else None


class Service:
    """The functions acting as themselves (service_role)."""

    __slots__ = ("claims",)

    def __init__(self) -> None:
        self.claims: dict[str, Any] = {"role": "service_role"}

    def __repr__(self) -> str:
        return "Service()"


SERVICE = Service()
Caller = Principal | Service
