"""make dev's PostgREST RPC endpoint (infra/dev/postgrest.py) on SUPABASE_URL:
the call as PostgREST makes it (role and claims, named arguments cast to
their types, a set as an array), its refusals and its error bodies."""

from __future__ import annotations

import threading
import uuid
from collections.abc import Callable, Iterator
from contextlib import ExitStack
from http.server import ThreadingHTTPServer
from typing import Any

import httpx
import psycopg
import pytest

from infra.dev.auth import LocalAuth
from infra.dev.postgrest import RpcEndpoint
from infra.dev.realtime.server import ApiKeys
from shared import container
from tests.support.database import create_user
from tests.support.tokens import SigningKeys

pytestmark = pytest.mark.integration


@pytest.fixture
def adapter() -> str:
    return "direct"


Serve = Callable[..., httpx.Client]


@pytest.fixture
def serve(environment: None, keys: SigningKeys) -> Iterator[Serve]:
    """The local auth's HTTP server with the RPC endpoint on this database."""
    stack = ExitStack()

    def start(database_url: str, api_keys: ApiKeys | None = None) -> httpx.Client:
        api_keys = api_keys or ApiKeys(keys.anon_key(), keys.service_key())
        endpoint = RpcEndpoint(database_url, api_keys, container.verifier, wait_seconds=1)
        endpoint.open()
        stack.callback(endpoint.close)
        auth = LocalAuth()
        auth.postgrest = endpoint
        server = ThreadingHTTPServer(("127.0.0.1", 0), auth.handler())
        server.daemon_threads = True
        threading.Thread(target=server.serve_forever, daemon=True).start()
        stack.callback(server.server_close)
        stack.callback(server.shutdown)
        url = f"http://127.0.0.1:{server.server_port}/rest/v1/rpc"
        return stack.enter_context(httpx.Client(base_url=url))

    with stack:
        yield start


@pytest.fixture
def rest(serve: Serve, authenticator_dsn: str) -> httpx.Client:
    return serve(authenticator_dsn)


def headers(keys: SigningKeys, token: str | None) -> dict[str, str]:
    sent = {"apikey": keys.anon_key()}
    if token:
        sent["Authorization"] = f"Bearer {token}"
    return sent


@pytest.fixture
def pair(admin: psycopg.Connection[Any], keys: SigningKeys) -> tuple[str, str]:
    ada, bob = create_user(admin, "ada"), create_user(admin, "bob")
    return keys.token(ada.id, mongo_id="ada"), keys.token(bob.id, mongo_id="bob")


def test_a_call_runs_as_the_token_with_named_arguments_and_a_set_is_an_array(
    rest: httpx.Client, keys: SigningKeys, pair: tuple[str, str]
) -> None:
    ada, bob = pair
    thread = rest.post("/ensure_chat_thread", json={"_other_mongo_id": "bob"},
                       headers=headers(keys, ada))  # fmt: skip
    assert thread.status_code == 200, thread.text
    assert thread.json()["thread_id"] == "ada__bob"  # a composite: one object
    sent = rest.post("/insert_chat_message", json={"_thread_id": "ada__bob", "_body": "hi"},
                     headers=headers(keys, bob)).json()  # fmt: skip
    assert sent["sender_mongo_id"] == "bob"  # jsonb: its value

    page = rest.post("/chat_messages_before", json={"_thread_id": "ada__bob", "_limit": 10},
                     headers=headers(keys, ada))  # fmt: skip
    counts = rest.post("/chat_unread_counts", headers=headers(keys, ada))

    assert [m["body"] for m in page.json()] == ["hi"]
    assert counts.json() == [
        {"thread_id": "ada__bob", "other_mongo_id": "bob", "unread_count": 1,
         "last_read_message_id": None, "last_message_at": counts.json()[0]["last_message_at"]},
    ]  # fmt: skip
    assert counts.headers["Access-Control-Allow-Origin"] == "*"


def test_errors_have_postgrests_status_and_body(
    rest: httpx.Client, keys: SigningKeys, pair: tuple[str, str]
) -> None:
    ada, _ = pair
    rest.post("/ensure_chat_thread", json={"_other_mongo_id": "bob"}, headers=headers(keys, ada))

    refused = rest.post("/chat_messages_before", json={"_thread_id": "ada__nobody"},
                        headers=headers(keys, ada))  # fmt: skip
    bad_limit = rest.post("/chat_messages_before", json={"_thread_id": "ada__bob", "_limit": 0},
                          headers=headers(keys, ada))  # fmt: skip
    not_a_uuid = rest.post("/mark_chat_thread_read",
                           json={"_thread_id": "ada__bob", "_message_id": "nope"},
                           headers=headers(keys, ada))  # fmt: skip

    assert refused.status_code == 404
    assert refused.json() == {"code": "PT404", "details": "unknown_thread", "hint": None,
                              "message": "no such thread"}  # fmt: skip
    assert (bad_limit.status_code, bad_limit.json()["details"]) == (400, "invalid_limit")
    assert (not_a_uuid.status_code, not_a_uuid.json()["code"]) == (400, "22P02")


def test_anon_unknown_functions_bad_tokens_keys_and_bodies_are_refused(
    rest: httpx.Client, keys: SigningKeys, pair: tuple[str, str]
) -> None:
    ada, _ = pair
    anon = rest.post("/chat_unread_counts", headers=headers(keys, None))
    unknown = rest.post("/chat_unread_counts", json={"_nope": 1}, headers=headers(keys, ada))
    missing = rest.post("/no_such_function", headers=headers(keys, ada))
    forged = rest.post("/chat_unread_counts", headers=headers(keys, ada[:-4] + "AAAA"))
    expired = keys.token(uuid.uuid4(), mongo_id="ada", exp=1)
    late = rest.post("/chat_unread_counts", headers=headers(keys, expired))
    wrong_key = rest.post("/chat_unread_counts", headers={"apikey": "wrong"})
    not_an_object = rest.post("/chat_unread_counts", content=b"[1]", headers=headers(keys, ada))
    a_filter = rest.post("/chat_unread_counts?thread_id=eq.x", headers=headers(keys, ada))

    assert (anon.status_code, anon.json()["code"]) == (401, "42501")
    assert (unknown.status_code, unknown.json()["code"]) == (404, "PGRST202")
    assert (missing.status_code, missing.json()["code"]) == (404, "PGRST202")
    assert (forged.status_code, forged.json()["code"]) == (401, "PGRST301")
    assert (late.status_code, late.json()["code"]) == (401, "PGRST303")
    assert (wrong_key.status_code, wrong_key.json()["message"]) == (401, "Invalid API key")
    assert (not_an_object.status_code, not_an_object.json()["code"]) == (400, "PGRST102")
    assert a_filter.status_code == 404
    assert rest.options("/chat_unread_counts").status_code == 200


def test_a_database_that_does_not_answer_is_a_503_json_body(
    serve: Serve, keys: SigningKeys, pair: tuple[str, str]
) -> None:
    client = serve("postgresql://nobody@127.0.0.1:9/none?connect_timeout=1")
    response = client.post("/chat_unread_counts", headers=headers(keys, pair[0]))
    assert response.status_code == 503
    assert response.json()["code"] == "PGRST000"


def test_a_bearer_api_key_must_be_one_of_the_projects(serve: Serve, authenticator_dsn: str) -> None:
    # Given a project with the new API keys (publishable and secret: never JWTs)
    publishable, secret = "sb_publishable_local_known", "sb_secret_local_known"
    rest = serve(authenticator_dsn, ApiKeys(publishable, secret))

    def call(bearer: str) -> httpx.Response:
        sent = {"apikey": publishable, "Authorization": f"Bearer {bearer}"}
        return rest.post("/chat_unread_counts", headers=sent)

    # When the bearer is the project's publishable key, the call runs as anon
    known = call(publishable)
    assert (known.status_code, known.json()["code"]) == (401, "42501")  # anon may not
    # and when it is a key the project does not have, the gateway refuses it
    for guess in ("sb_secret_guessed", "sb_publishable_other_project", "sb_"):
        unknown = call(guess)
        assert (unknown.status_code, unknown.json()["message"]) == (401, "Invalid API key")
