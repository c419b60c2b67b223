"""The local Realtime endpoint delivers as hosted Supabase Realtime does:
private broadcasts to everyone authorized at join (no RLS per message, until
the next token), postgres_changes as each change wrote the row."""

from __future__ import annotations

import json
import logging
import threading
import time
from collections.abc import Iterator
from http.server import ThreadingHTTPServer
from typing import Any

import httpx
import jwt
import psycopg
import pytest
from websockets.sync.client import ClientConnection, connect

from infra.dev.auth import LocalAuth
from infra.dev.realtime.protocol import Frame, decode, encode
from infra.dev.realtime.server import ApiKeys, RealtimeServer
from infra.local.cluster import BOOTSTRAP_SUPERUSER, PgCluster
from shared.auth.jwks import JwksCache
from shared.auth.verifier import TokenVerifier
from tests.support.spaces import make_world

pytestmark = pytest.mark.db

SECRET = "realtime-server-test-secret-0123456789abcdef"
ISSUER = "http://127.0.0.1:9/auth/v1"
ADA = "00000000-0000-4000-8000-00000000a0a0"
ANON_KEY = "test-anon-key"


def _token(sub: str = ADA, lifetime: int = 3600) -> str:
    now = int(time.time())
    claims = {"iss": ISSUER, "sub": sub, "aud": "authenticated", "role": "authenticated",
              "iat": now, "exp": now + lifetime}  # fmt: skip
    return jwt.encode(claims, SECRET, algorithm="HS256")


@pytest.fixture
def server(pg_cluster: PgCluster, database: str) -> Iterator[RealtimeServer]:
    """The endpoint on a free port, connected as the platform's superuser (as in make dev)."""
    http = httpx.Client()
    verifier = TokenVerifier(JwksCache(f"{ISSUER}/.well-known/jwks.json", http), SECRET,
                             issuer=ISSUER)  # fmt: skip
    server = RealtimeServer(
        pg_cluster.dsn(database, user=BOOTSTRAP_SUPERUSER), ApiKeys(ANON_KEY, ""), lambda: verifier
    )
    server.start()
    try:
        yield server
    finally:
        server.stop()
        http.close()


@pytest.fixture
def realtime(server: RealtimeServer) -> str:
    return f"ws://127.0.0.1:{server.port}/realtime/v1/websocket?apikey={ANON_KEY}&vsn=2.0.0"


class Client:
    """A realtime-js stand-in that speaks vsn 2.0.0 frames by hand."""

    def __init__(self, ws: ClientConnection) -> None:
        self.ws, self.refs = ws, 0

    def push(self, topic: str, event: str, payload: dict[str, Any]) -> None:
        self.refs += 1
        self.ws.send(encode(Frame("1", str(self.refs), f"realtime:{topic}", event, payload),
                            "2.0.0"))  # fmt: skip

    def join(self, topic: str, config: dict[str, Any], token: str) -> Frame:
        self.push(topic, "phx_join", {"config": config, "access_token": token})
        return self.next("phx_reply")

    def next(self, event: str, timeout: float = 3) -> Frame:
        deadline = time.monotonic() + timeout
        while True:
            frame = decode(self.ws.recv(timeout=max(0.0, deadline - time.monotonic())), "2.0.0")
            if frame.event == event:
                return frame

    def frames(self, event: str, count: int) -> list[Frame]:
        return [self.next(event) for _ in range(count)]

    def nothing(self, event: str, wait: float = 0.7) -> bool:
        try:
            self.next(event, wait)
        except TimeoutError:
            return True
        return False


@pytest.fixture
def client(realtime: str) -> Iterator[Client]:
    ws = connect(realtime)
    with ws:
        yield Client(ws)


def test_a_private_channel_authorized_at_join_receives_every_broadcast_until_its_next_token(
    admin: psycopg.Connection[Any], client: Client
) -> None:
    # Given a policy a per-message RLS check would use to hide `hidden` rows
    admin.execute(
        "create policy lobby_readers on realtime.messages for select to authenticated using"
        " (realtime.topic() = 'room:lobby' and extension = 'broadcast'"
        " and event is distinct from 'hidden')"
    )
    private = {"private": True, "broadcast": {"self": False, "ack": False}}
    assert client.join("room:lobby", private, _token()).payload["status"] == "ok"

    # When the database broadcasts an event the policy's event filter excludes
    admin.execute("select realtime.send('{\"n\": 1}', 'hidden', 'room:lobby', true)")

    # Then Ada receives it: hosted Realtime authorizes the channel, not each message
    got = client.next("broadcast").payload
    assert (got["event"], got["payload"]["n"]) == ("hidden", 1)

    # When Ada loses access, the channel keeps receiving until her next token
    admin.execute("drop policy lobby_readers on realtime.messages")
    admin.execute("select realtime.send('{\"n\": 2}', 'after', 'room:lobby', true)")
    assert client.next("broadcast").payload["payload"]["n"] == 2

    # And the next token re-runs the read check: refused, the channel closes
    client.push("room:lobby", "access_token", {"access_token": _token(lifetime=7200)})
    assert "no longer have permission" in client.next("system").payload["message"]
    client.next("phx_close")
    admin.execute("select realtime.send('{\"n\": 3}', 'late', 'room:lobby', true)")
    assert client.nothing("broadcast")


def test_a_new_token_is_checked_for_the_extensions_the_join_was(
    admin: psycopg.Connection[Any], client: Client
) -> None:
    # Given a topic whose policy lets members read presence only
    admin.execute(
        "create policy presence_only on realtime.messages for select to authenticated using"
        " (realtime.topic() = 'room:presence' and extension = 'presence')"
    )
    config = {"private": True, "presence": {"enabled": True, "key": ""}}
    assert client.join("room:presence", config, _token()).payload["status"] == "ok"

    # When a new token arrives
    client.push("room:presence", "access_token", {"access_token": _token(lifetime=7200)})

    # Then it passes the same check the join passed: the channel stays open
    assert client.nothing("phx_close")


def test_postgres_changes_carry_each_version_the_change_wrote(
    admin: psycopg.Connection[Any], superuser: psycopg.Connection[Any], client: Client
) -> None:
    # Given a published table authenticated users may read, and a subscriber
    admin.execute("create table public.drafts (id int primary key, state text, body text)")
    admin.execute("alter table public.drafts enable row level security")
    admin.execute("create policy readers on public.drafts for select to authenticated using (true)")
    admin.execute("grant select on public.drafts to authenticated")
    admin.execute("alter publication supabase_realtime add table public.drafts")
    binding = {"event": "*", "schema": "public", "table": "drafts"}
    reply = client.join("drafts", {"postgres_changes": [binding], "private": False}, _token())
    assert reply.payload["status"] == "ok"
    assert client.next("system").payload["status"] == "ok"

    # When a row is inserted and updated at once, then updated twice quickly
    with admin.transaction():
        admin.execute("insert into public.drafts values (1, 'active', 'Hel')")
        admin.execute("update public.drafts set body = 'Hello' where id = 1")
    admin.execute("update public.drafts set body = 'Hello, world' where id = 1")
    admin.execute("update public.drafts set state = 'complete' where id = 1")

    # Then each event carries the row as that change left it, in order
    changes = [f.payload["data"] for f in client.frames("postgres_changes", 4)]
    assert [(c["type"], c["record"]["state"], c["record"]["body"]) for c in changes] == [
        ("INSERT", "active", "Hel"),
        ("UPDATE", "active", "Hello"),
        ("UPDATE", "active", "Hello, world"),
        ("UPDATE", "complete", "Hello, world"),
    ]
    assert changes[1]["old_record"] == {"id": 1}

    # And nothing stays staged once the changes went out
    [(left,)] = superuser.execute("select count(*) from local_realtime.staged_changes").fetchall()
    assert left == 0


def test_postgres_changes_stay_checked_per_row_and_subscriber(
    admin: psycopg.Connection[Any], client: Client
) -> None:
    # Given a published table whose policy hides drafts marked secret
    admin.execute("create table public.notes (id int primary key, secret boolean)")
    admin.execute("alter table public.notes enable row level security")
    admin.execute(
        "create policy readers on public.notes for select to authenticated using (not secret)"
    )
    admin.execute("grant select on public.notes to authenticated")
    admin.execute("alter publication supabase_realtime add table public.notes")
    binding = {"event": "INSERT", "schema": "public", "table": "notes"}
    client.join("notes", {"postgres_changes": [binding], "private": False}, _token())
    assert client.next("system").payload["status"] == "ok"

    # When a hidden row and a visible one are inserted
    admin.execute("insert into public.notes values (1, true)")
    admin.execute("insert into public.notes values (2, false)")

    # Then only the visible one arrives
    assert client.next("postgres_changes").payload["data"]["record"] == {"id": 2, "secret": False}
    assert client.nothing("postgres_changes")


def test_what_it_cannot_handle_is_logged_in_one_line_and_the_next_message_arrives(
    admin: psycopg.Connection[Any], client: Client, caplog: pytest.LogCaptureFixture
) -> None:
    # Given a member of #lounge following its intentions and its public broadcasts
    world = make_world(admin)
    binding = {"event": "INSERT", "schema": "public", "table": "intentions"}
    guest = _token(sub=str(world.guest.id))
    assert client.join("lounge", {"postgres_changes": [binding]}, guest).payload["status"] == "ok"
    assert client.next("system").payload["status"] == "ok"
    hostile = "[" * 5000 + "]" * 5000  # 10 KB, inside the content limit, too deep for json.loads
    caplog.set_level(logging.INFO, logger="dev.realtime")

    # When the member says something nested 5,000 levels deep, the database
    # broadcasts as deep a payload, and a client sends as deep a frame
    _say_as(admin, world.guest.claims(), "/msg-hostile", hostile)
    admin.execute(
        "select realtime.send(jsonb_build_object('deep', %s::jsonb), 'deep', 'lounge', false)",
        (hostile,),
    )
    client.ws.send(hostile)
    client.ws.send(encode(Frame(None, "beat", "phoenix", "heartbeat", {}), "2.0.0"))
    assert client.next("phx_reply").payload["status"] == "ok"  # the connection lives on

    # Then a normal utterance and a normal broadcast still arrive
    _say_as(admin, world.guest.claims(), "/msg-after", '{"text": "still here"}')
    admin.execute("select realtime.send('{\"n\": 1}', 'fine', 'lounge', false)")
    arrived = [client.next("postgres_changes").payload["data"]["record"]["id"]]
    assert arrived == ["/msg-after"]
    assert client.next("broadcast").payload["event"] == "fine"

    # And each thing it could not handle left one line in the log, no traceback
    warnings = [r for r in caplog.records if r.levelno >= logging.WARNING]
    assert len(warnings) == 2, [r.getMessage() for r in warnings]
    assert all("RecursionError" in r.getMessage() and r.exc_info is None for r in warnings)
    assert any("unreadable frame" in r.getMessage() for r in caplog.records)


def _say_as(conn: psycopg.Connection[Any], claims: dict[str, Any], said: str, content: str) -> None:
    """An utterance in #lounge through RLS, as PostgREST would insert it."""
    with conn.transaction():
        conn.execute(
            "select set_config('role', 'authenticated', true),"
            " set_config('request.jwt.claims', %s, true)",
            (json.dumps(claims),),
        )
        conn.execute(
            "insert into public.intentions (id, name, type, owner_id, location_id, state, content)"
            " values (%s, 'Message', 'utterance', '@guest', '#lounge', 'complete', %s::jsonb)",
            (said, content),
        )


@pytest.fixture
def supabase_url(server: RealtimeServer) -> Iterator[str]:
    """The local auth server (SUPABASE_URL in make dev), which serves the REST broadcast."""
    auth = LocalAuth()
    auth.realtime = server
    http = ThreadingHTTPServer(("127.0.0.1", 0), auth.handler())
    threading.Thread(target=http.serve_forever, daemon=True).start()
    try:
        yield f"http://127.0.0.1:{http.server_port}"
    finally:
        http.shutdown()
        http.server_close()


def test_the_rest_broadcast_obeys_whatever_the_insert_policies_say(
    admin: psycopg.Connection[Any], client: Client, supabase_url: str
) -> None:
    # Given a policy letting authenticated users read and send on room:lobby only
    admin.execute(
        "create policy lobby on realtime.messages for all to authenticated"
        " using (realtime.topic() = 'room:lobby') with check (realtime.topic() = 'room:lobby')"
    )
    private = {"private": True, "broadcast": {"self": False, "ack": False}}
    assert client.join("room:lobby", private, _token()).payload["status"] == "ok"
    headers = {"apikey": ANON_KEY, "Authorization": f"Bearer {_token()}"}
    api = f"{supabase_url}/realtime/v1/api/broadcast"

    # When Ada posts there privately (httpSend's form), and to another room
    sent = httpx.post(f"{api}/room:lobby/events/hello?private=true", json={"n": 1}, headers=headers)
    other = httpx.post(
        f"{api}/room:attic/events/hello?private=true", json={"n": 2}, headers=headers
    )

    # Then the first is delivered, the second refused as Realtime refuses it
    assert sent.status_code == 202
    got = client.next("broadcast").payload
    assert (got["event"], got["payload"]) == ("hello", {"n": 1})
    assert other.status_code == 403
    assert other.json() == {"message": "Unauthorized"}
    assert other.headers["access-control-allow-origin"] == "*"

    # And malformed requests get a 4xx with a JSON body, never a dropped connection
    assert httpx.post(api, content=b"[[[", headers=headers).status_code == 400
    assert httpx.post(api, json={"messages": []}, headers=headers).status_code == 422
    assert httpx.post(api, json={"messages": [{"topic": "x"}]}, headers=headers).status_code == 422
    assert httpx.post(api, json={"messages": []}, headers={"apikey": "nope"}).status_code in (
        401,
        422,
    )
    refused = httpx.post(api, json={"messages": [{"topic": "room:lobby", "event": "e", "payload": {}}]},
                         headers={"apikey": "nope"})  # fmt: skip
    assert refused.status_code == 401
    assert client.nothing("broadcast")


def test_an_api_key_as_the_token_must_be_one_of_the_projects(client: Client) -> None:
    public = {"private": False, "broadcast": {"self": False, "ack": False}}
    # The project's own key stands for its role
    assert client.join("room:keyed", public, ANON_KEY).payload["status"] == "ok"
    # A publishable or secret key the project does not have is refused, as a bad token
    for guess in ("sb_publishable_other_project", "sb_secret_guessed"):
        refused = client.join(f"room:{guess}", public, guess).payload
        assert refused["status"] == "error"
        assert refused["response"]["reason"] == "InvalidJWTToken: Invalid API key"
