"""When Supabase or the database cannot be reached: 503 with Retry-After."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import httpx
import psycopg
import pytest

from infra.local.cluster import free_port
from shared import container
from tests.integration.conftest import Invoke
from tests.support.database import create_user

pytestmark = pytest.mark.integration


def test_an_unreachable_database_is_503_with_retry_after(
    thread_ensure: Invoke,
    admin: psycopg.Connection[Any],
    bearer: Callable[..., dict[str, str]],
    monkeypatch: pytest.MonkeyPatch,
    adapter: str,
) -> None:
    amy = create_user(admin, "amy")
    create_user(admin, "bob")
    dead = f"127.0.0.1:{free_port()}"
    if adapter == "direct":
        monkeypatch.setenv("DATABASE_URL", f"postgresql://authenticator@{dead}/postgres")
        container.reset()
    else:
        # JWKS still comes from the real stand-in; PostgREST is what is down.
        from shared.db.postgrest import PostgrestDatabase

        container.reset()
        container.use_database(
            PostgrestDatabase(f"http://{dead}", "anon", None, http=httpx.Client(timeout=1))
        )

    result = thread_ensure(
        "POST", "/chat/threads/ensure", body={"other_mongo_id": "bob"}, headers=bearer(amy)
    )

    assert (result.status, result.error_code) == (503, "database_unavailable")
    assert int(result.headers["retry-after"]) >= 1
