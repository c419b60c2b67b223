"""FastAPI dependencies shared by the functions."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Header

from shared import container
from shared.auth.principal import Principal
from shared.db.port import Database
from shared.errors import Unauthorized


async def current_user(
    authorization: Annotated[str | None, Header(include_in_schema=False)] = None,
) -> Principal:
    """The caller, from `Authorization: Bearer <Supabase access token>`."""
    if not authorization:
        raise Unauthorized("missing bearer token", code="missing_token")
    scheme, _, token = authorization.strip().partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        raise Unauthorized("expected a bearer token", code="invalid_token")
    return container.verifier().verify(token.strip())


async def database() -> Database:
    return container.database()


CurrentUser = Annotated[Principal, Depends(current_user)]
DatabaseDep = Annotated[Database, Depends(database)]
