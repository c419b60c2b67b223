"""The demo page's own endpoints (make dev) answer bad input with a 4xx JSON
body and failures with a 500 JSON body, never a dropped connection."""

from __future__ import annotations

import json
import threading
import uuid
from collections.abc import Callable, Iterator
from functools import partial
from http.server import ThreadingHTTPServer
from pathlib import Path
from typing import Any

import httpx
import psycopg
import pytest

from infra.dev.auth import LocalAuth
from infra.dev.web.history import recent
from infra.dev.web.lounge import error_status, say
from infra.dev.web.server import page_handler
from shared.errors import BadRequest
from tests.support.tokens import SigningKeys

pytestmark = pytest.mark.integration

ROOT = Path(__file__).resolve().parents[2]
ADA = "00000000-0000-4000-8000-00000000a0a0"
Page = Callable[[str], httpx.Client]


@pytest.fixture
def adapter() -> str:
    return "direct"  # the page writes through psycopg only


@pytest.fixture
def page(environment: None) -> Iterator[Page]:  # environment: the verifier's settings
    servers: list[ThreadingHTTPServer] = []
    clients: list[httpx.Client] = []

    def start(database_url: str) -> httpx.Client:
        handler = page_handler({}, LocalAuth().sign_in, partial(say, database_url),
                               "sb-test-auth-token", ["ada", "bob"],
                               partial(recent, database_url))  # fmt: skip
        server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
        server.daemon_threads = True
        threading.Thread(target=server.serve_forever, daemon=True).start()
        servers.append(server)
        clients.append(httpx.Client(base_url=f"http://127.0.0.1:{server.server_port}"))
        return clients[-1]

    yield start
    for client in clients:
        client.close()
    for server in servers:
        server.shutdown()
        server.server_close()


@pytest.fixture
def lounge(admin: psycopg.Connection[Any]) -> psycopg.Connection[Any]:
    admin.execute((ROOT / "infra" / "dev" / "seed.sql").read_text().encode())
    return admin


def _said(admin: psycopg.Connection[Any]) -> list[str]:
    rows = admin.execute(
        "select content ->> 'text' from public.intentions where location_id = '#lounge'"
    ).fetchall()
    return [text for (text,) in rows]


def _say(client: httpx.Client, token: str, raw_body: str) -> httpx.Response:
    return client.post(
        "/dev/say",
        content=raw_body.encode(),
        headers={"Authorization": f"Bearer {token}", "Content-Type": "application/json"},
    )


@pytest.mark.parametrize(
    ("raw_body", "why"),
    [
        (json.dumps({"text": "a\u0000b"}), "NUL"),
        ('{"text": "\\ud800"}', "lone surrogate"),
        (json.dumps({"text": "\x01" * 4000}), "over the content limit as JSON"),
    ],
)
def test_text_the_database_cannot_store_is_a_400(
    page: Page, lounge: psycopg.Connection[Any], authenticator_dsn: str, keys: SigningKeys,
    raw_body: str, why: str,
) -> None:  # fmt: skip
    # Given Ada signed in on the page
    client = page(authenticator_dsn)

    # When she sends text PostgreSQL cannot store
    response = _say(client, keys.token(ADA, mongo_id="ada"), raw_body)

    # Then a 400 with a JSON error body, and nothing was written
    assert response.status_code == 400, why
    assert response.json()["error"]["code"] == "bad_request"
    assert _said(lounge) == []

    # And the page keeps working for good input
    assert _say(client, keys.token(ADA, mongo_id="ada"), '{"text": "hi"}').status_code == 201
    assert _said(lounge) == ["hi"]


def test_a_database_failure_is_a_500_json_body(
    page: Page, keys: SigningKeys, caplog: pytest.LogCaptureFixture
) -> None:
    # Given a page whose database is gone
    client = page("postgresql://nobody@127.0.0.1:9/none?connect_timeout=2")

    # When Ada says something
    response = _say(client, keys.token(ADA, mongo_id="ada"), '{"text": "hello"}')

    # Then a logged 500 with a JSON body, not a dropped connection
    assert response.status_code == 500
    assert response.json()["error"]["code"] == "internal_error"
    assert "the lounge insert failed" in caplog.text


def test_an_invalid_token_is_a_401(page: Page, authenticator_dsn: str) -> None:
    response = _say(page(authenticator_dsn), "not-a-token", '{"text": "hello"}')
    assert response.status_code == 401
    assert response.json()["error"]["code"] == "invalid_token"


def test_every_app_error_keeps_its_own_status() -> None:
    assert error_status(BadRequest("no")) == (
        400, {"error": {"code": "bad_request", "message": "no"}},
    )  # fmt: skip


@pytest.mark.parametrize("expires_in", ["9" * 5000, "-" + "9" * 5000, "99999999999", "1e9", "٣"])
def test_an_unusable_session_lifetime_is_a_400(
    page: Page, authenticator_dsn: str, expires_in: str
) -> None:
    response = page(authenticator_dsn).post(
        f"/dev/sign-in?expires_in={expires_in}", json={"user": "ada"}
    )
    assert response.status_code == 400
    assert response.json()["error"]["code"] == "bad_request"


def test_a_bounded_session_lifetime_signs_in(page: Page, authenticator_dsn: str) -> None:
    response = page(authenticator_dsn).post("/dev/sign-in?expires_in=-30", json={"user": "ada"})
    assert response.status_code == 200
    assert response.cookies


def test_history_is_what_rls_lets_the_caller_read_oldest_first(
    page: Page, lounge: psycopg.Connection[Any], authenticator_dsn: str, keys: SigningKeys
) -> None:
    # Given Ada said three things in #lounge
    client = page(authenticator_dsn)
    ada = {"Authorization": f"Bearer {keys.token(ADA, mongo_id='ada')}"}
    for text in ("one", "two", "three"):
        assert (
            _say(client, keys.token(ADA, mongo_id="ada"), json.dumps({"text": text})).status_code
            == 201
        )

    # Then her history of the space is those, oldest first
    rows = client.get("/dev/history", params={"space": "#lounge"}, headers=ada).json()
    assert [r["content"]["text"] for r in rows] == ["one", "two", "three"]
    # And a user in no space, or no valid token, gets nothing of it
    stranger = {"Authorization": f"Bearer {keys.token(str(uuid.uuid4()), mongo_id='cy')}"}
    assert client.get("/dev/history", params={"space": "#lounge"}, headers=stranger).json() == []
    assert client.get("/dev/history", params={"space": "#lounge"}).status_code == 401


@pytest.mark.parametrize(
    "query", [{}, {"space": "#lounge", "thread_id": "ada__bob"}, {"thread_id": "a\u0000b"}]
)
def test_a_history_request_that_names_no_one_thing_is_a_400(
    page: Page, authenticator_dsn: str, keys: SigningKeys, query: dict[str, str]
) -> None:
    headers = {"Authorization": f"Bearer {keys.token(ADA, mongo_id='ada')}"}
    response = page(authenticator_dsn).get("/dev/history", params=query, headers=headers)
    assert response.status_code == 400
    assert response.json()["error"]["code"] == "bad_request"
