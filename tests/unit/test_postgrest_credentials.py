"""Each PostgREST request carries its own caller's credentials, never a
previous caller's, and new-style secret keys are never sent as a Bearer JWT."""

from __future__ import annotations

import json
import uuid

import httpx
import pytest

from shared.auth.principal import SERVICE, Principal
from shared.db.postgrest import PostgrestDatabase

pytestmark = pytest.mark.unit


def _recording() -> tuple[list[httpx.Request], httpx.MockTransport]:
    seen: list[httpx.Request] = []

    def answer(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        return httpx.Response(
            200, content=json.dumps({"ok": True}), headers={"content-type": "application/json"}
        )

    return seen, httpx.MockTransport(answer)


def _user(token: str) -> Principal:
    return Principal(user_id=uuid.uuid4(), role="authenticated", claims={}, token=token)


def test_users_and_the_service_each_send_their_own_credentials() -> None:
    seen, transport = _recording()
    db = PostgrestDatabase(
        "https://x.supabase.co",
        "anon-key",
        "eyJ.service.jwt",
        http=httpx.Client(transport=transport),
    )
    db.call("f", {"a": 1}, _user("token-of-amy"))
    db.call("f", {"a": 1}, SERVICE)
    db.call("f", {"a": 1}, _user("token-of-bob"))
    assert [r.headers.get("authorization") for r in seen] == [
        "Bearer token-of-amy",
        "Bearer eyJ.service.jwt",
        "Bearer token-of-bob",
    ]
    assert [r.headers["apikey"] for r in seen] == ["anon-key", "eyJ.service.jwt", "anon-key"]
    assert str(seen[0].url) == "https://x.supabase.co/rest/v1/rpc/f"
    assert json.loads(seen[0].content) == {"a": 1}


def test_a_new_secret_key_goes_in_apikey_only() -> None:
    seen, transport = _recording()
    db = PostgrestDatabase(
        "https://x.supabase.co",
        "sb_publishable_x",
        "sb_secret_y",
        http=httpx.Client(transport=transport),
    )
    db.call("f", {}, SERVICE)
    assert seen[0].headers["apikey"] == "sb_secret_y"
    assert "authorization" not in seen[0].headers
