"""PostgREST adapter through supabase-py's PostgREST client.

One client, and so one HTTP connection pool, per container. The caller's
token goes on each request's own headers: supabase-py's
`client.postgrest.auth(token)` would set it on the shared client and leak one
user's identity into the next request.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import httpx
from postgrest import SyncPostgrestClient
from postgrest.exceptions import APIError

from shared.auth.principal import Caller, Principal
from shared.db.errors import error_from_database
from shared.errors import ServiceUnavailable


class PostgrestDatabase:
    """`http` sends every request (the container gives one on its shared
    pool, with the database timeout); its base URL and headers are not used:
    postgrest sends absolute URLs with its own headers."""

    def __init__(
        self, supabase_url: str, anon_key: str, service_key: str | None, *, http: httpx.Client
    ) -> None:
        self._http = http
        self._client = SyncPostgrestClient(
            f"{supabase_url}/rest/v1", headers={"apikey": anon_key}, http_client=http
        )
        self._anon_key = anon_key
        self._service_key = service_key

    def _credentials(self, caller: Caller) -> dict[str, str]:
        if isinstance(caller, Principal):
            return {"apikey": self._anon_key, "Authorization": f"Bearer {caller.token}"}
        if not self._service_key:
            raise ServiceUnavailable("service key not configured", code="not_configured")
        if self._service_key.count(".") == 2:  # a legacy service_role JWT
            return {"apikey": self._service_key, "Authorization": f"Bearer {self._service_key}"}
        # A new secret key (sb_secret_...) is not a JWT: it goes in apikey only.
        return {"apikey": self._service_key}

    def call(self, function: str, args: Mapping[str, Any], caller: Caller) -> Any:
        builder = self._client.rpc(function, dict(args))
        # A per-request copy (postgrest builds fresh headers in rpc()).
        builder.request.headers.update(self._credentials(caller))
        try:
            return builder.execute().data
        except APIError as exc:
            raise _mapped(exc, caller) from exc
        except httpx.HTTPError as exc:
            raise ServiceUnavailable("database unavailable", code="database_unavailable") from exc

    def close(self) -> None:
        self._http.close()


# PostgREST's group 0, "Connection": 503 (PGRST000-002) and 504 (PGRST003).
_CONNECTION_ERRORS = {"PGRST000", "PGRST001", "PGRST002", "PGRST003"}


def _mapped(exc: APIError, caller: Caller) -> Exception:
    code = exc.code or ""
    signed_in = isinstance(caller, Principal)
    if code.isdigit():
        # Not PostgREST's JSON (a gateway's error page): the code is the status.
        if int(code) in (502, 503, 504):
            return ServiceUnavailable("database unavailable", code="database_unavailable")
        return error_from_database("XX000", exc.message or "", None, signed_in=signed_in)
    if code in _CONNECTION_ERRORS:
        # PostgREST is up, its database is not (or its pool is exhausted).
        return ServiceUnavailable("database unavailable", code="database_unavailable")
    if code.startswith("PGRST3"):
        # PostgREST refused the token itself.
        return error_from_database("42501", exc.message or "", None, signed_in=False)
    if code.startswith("PGRST"):
        # Schema cache or argument errors: ours to fix, not the client's.
        return error_from_database("XX000", exc.message or "", None, signed_in=signed_in)
    return error_from_database(
        code, exc.message or "", exc.details, signed_in=signed_in, hint=exc.hint
    )
