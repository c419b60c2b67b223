"""SnapStart without AWS: each handler is imported as Lambda initialises a
SnapStart version (priming included), the registered before-snapshot hooks
run, the process is forked twice (two containers restored from one
snapshot), each runs the after-restore hooks and serves a real request."""

from __future__ import annotations

import json
import subprocess
import sys
import uuid
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler
from pathlib import Path
from typing import Any

import pytest

from tests.support.loopback import serve
from tests.support.rpc_answers import MESSAGE, THREAD
from tests.support.tokens import SigningKeys

pytestmark = pytest.mark.unit

ROOT = Path(__file__).resolve().parents[2]

# Runs in a fresh interpreter: the handler is imported with SnapStart on.
PROBE = r"""
import gc, json, os, random, socket, sys
module, event = sys.argv[1], json.loads(sys.argv[2])
handler = __import__(f"functions.{module}.handler", fromlist=["handler"]).handler
from shared import snapstart
from shared.auth.principal import Principal

def every_object():
    # Init ends with gc.freeze() on Lambda, and get_objects() skips frozen ones.
    gc.unfreeze()
    try:
        return gc.get_objects()
    finally:
        gc.freeze()

report = {"frozen_at_init": gc.get_freeze_count(),
          "principals_after_priming": sum(isinstance(o, Principal) for o in every_object())}
snapstart.run_before_snapshot()
report["open_sockets_in_snapshot"] = sum(
    isinstance(o, socket.socket) and o.fileno() != -1 for o in every_object()
)
print("SNAPSHOT", flush=True)
sys.stdin.readline()  # the test notes what the server saw before the snapshot

restored = []
snapshot_random = random.getstate()
for _ in range(2):
    read, write = os.pipe()
    if os.fork() == 0:
        os.close(read)
        # A restored snapshot has the snapshot's memory: fork would reseed
        # `random` itself (os.register_at_fork), a restore does not.
        random.setstate(snapshot_random)
        snapstart.run_after_restore()
        response = handler(event, None) if event else {"statusCode": 0, "headers": {}}
        seen = {"status": response["statusCode"],
                "request_id": response.get("headers", {}).get("x-request-id"),
                "random": random.random(), "uuid": str(__import__("uuid").uuid4())}
        os.write(write, json.dumps(seen).encode())
        os._exit(0)
    os.close(write)
    with os.fdopen(read) as pipe:
        restored.append(json.loads(pipe.read()))
    os.wait()
report["restored"] = restored
print("REPORT " + json.dumps(report), flush=True)
"""


class Edge:
    """Supabase's edge on loopback, noting each request and its connection."""

    def __init__(self, keys: SigningKeys) -> None:
        self.requests: list[tuple[int, str, str, bool]] = []  # connection, method, path, auth
        self.connections = 0
        edge = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"
            disable_nagle_algorithm = True

            def setup(self) -> None:
                super().setup()
                edge.connections += 1
                self.connection_number = edge.connections

            def log_message(self, format: str, *args: Any) -> None:
                pass

            def _reply(self, body: Any) -> None:
                has_auth = "authorization" in {k.lower() for k in self.headers}
                edge.requests.append((self.connection_number, self.command, self.path, has_auth))
                data = json.dumps(body).encode()
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def do_GET(self) -> None:
                self._reply(keys.jwks())

            def do_POST(self) -> None:
                self.rfile.read(int(self.headers.get("Content-Length") or 0))
                rpc = self.path.rsplit("/", 1)[-1]
                self._reply({"ensure_chat_thread": THREAD, "insert_chat_message": MESSAGE}[rpc])

        self.handler = Handler


@pytest.fixture
def edge() -> Iterator[tuple[Edge, str, SigningKeys]]:
    keys = SigningKeys()
    stand_in = Edge(keys)
    with serve(stand_in.handler) as url:
        keys.serve_at(url)
        yield stand_in, url, keys


def _event(method: str, path: str, body: Any, headers: dict[str, str]) -> dict[str, Any]:
    """An API Gateway v2 event without a gateway request id: the function
    makes one (uuid4), which is what must differ between restored copies."""
    return {
        "version": "2.0",
        "routeKey": f"{method} {path}",
        "rawPath": path,
        "rawQueryString": "",
        "headers": {"host": "api.example.test", "content-type": "application/json", **headers},
        "requestContext": {"http": {"method": method, "path": path, "sourceIp": "127.0.0.1"}},
        "body": json.dumps(body) if body is not None else None,
        "isBase64Encoded": False,
    }


def _restore(module: str, event: dict[str, Any] | None, env: dict[str, str], edge: Edge) -> Any:
    probe = subprocess.Popen(
        [sys.executable, "-c", PROBE, module, json.dumps(event)],
        cwd=ROOT,
        env=env,
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    assert probe.stdin is not None
    assert probe.stdout is not None
    init_lines = []
    for line in probe.stdout:
        if line.startswith("SNAPSHOT"):
            break
        init_lines.append(line)
    before = list(edge.requests)
    probe.stdin.write("\n")
    probe.stdin.flush()
    out, err = probe.communicate(timeout=120)
    assert probe.returncode == 0, err
    report = json.loads(next(line for line in out.splitlines() if line.startswith("REPORT "))[7:])
    report["init_log"] = [json.loads(line) for line in init_lines]
    return before, report


def _env(url: str, keys: SigningKeys) -> dict[str, str]:
    return {
        "PATH": "/usr/bin:/bin",
        "PYTHONPATH": str(ROOT),
        "SUPABASE_URL": url,
        "SUPABASE_ANON_KEY": keys.anon_key(),
        "ALLOWED_ORIGINS": "https://app.example.test",
        "AWS_LAMBDA_INITIALIZATION_TYPE": "snap-start",
        "AWS_LAMBDA_FUNCTION_NAME": "snapstart-probe",  # init as on Lambda (shared.init_gc)
        "LOG_LEVEL": "WARNING",
        "SECRETS_SOURCE": "env",
    }


@pytest.mark.parametrize(
    ("module", "method", "path", "body"),
    [
        ("thread_ensure", "POST", "/chat/threads/ensure", {"other_mongo_id": "bob"}),
        ("chat_message", "POST", "/chat/messages", {"thread_id": "amy__bob", "body": "hi"}),
        ("token", "GET", "/auth/token", None),
    ],
)
def test_a_restored_function_serves_with_fresh_connections_and_its_own_randomness(
    edge: tuple[Edge, str, SigningKeys], module: str, method: str, path: str, body: Any
) -> None:
    stand_in, url, keys = edge
    token = keys.token(uuid.uuid4(), mongo_id="amy")
    if module == "token":
        from shared.session.cookies import encode

        cookie = "sb-127-auth-token=" + encode(
            {"access_token": token, "refresh_token": "r"}, "base64url"
        )
        headers = {"cookie": cookie}
    else:
        headers = {"authorization": f"Bearer {token}"}

    # Given a function initialised for SnapStart (primed), then snapshotted
    before, report = _restore(
        module, _event(method, path, body, headers), _env(url, keys), stand_in
    )

    # Then priming touched no user data: the only call before the snapshot
    # was the public JWKS, without credentials, and no principal survives
    assert [(m, p.split("?")[0], a) for _, m, p, a in before] == [
        ("GET", "/auth/v1/.well-known/jwks.json", False)
    ]
    assert report["principals_after_priming"] == 0
    assert report["frozen_at_init"] > 0  # (counted through Lambda's frozen heap too)
    # and no socket is in the snapshot
    assert report["open_sockets_in_snapshot"] == 0

    # When two containers are restored from it and each serves a request
    first, second = report["restored"]
    assert first["status"] == second["status"] == (200 if module != "chat_message" else 201)

    # Then each opened its own connections (none carried over the snapshot);
    # token's valid cookie needs no I/O at all (the JWKS is in the snapshot)
    snapshot_connections = {c for c, *_ in before}
    after = stand_in.requests[len(before) :]
    assert len(after) == (0 if module == "token" else 2)
    assert not {c for c, *_ in after} & snapshot_connections
    assert len({c for c, *_ in after}) == len(after)
    # and each made its own request id and random numbers
    assert first["request_id"]
    assert first["request_id"] != second["request_id"]
    assert first["uuid"] != second["uuid"]
    assert first["random"] != second["random"]


@pytest.mark.parametrize("module", ["bot_trigger", "bot_worker"])
def test_the_bot_functions_prime_and_snapshot_without_sockets(
    edge: tuple[Edge, str, SigningKeys], module: str
) -> None:
    stand_in, url, keys = edge
    env = {
        **_env(url, keys),
        "WEBHOOK_SECRET": "a-webhook-secret-long-enough",
        "BOT_QUEUE_URL": "https://sqs.eu-west-1.amazonaws.com/000000000000/bots",
        "AWS_DEFAULT_REGION": "eu-west-1",
        "AWS_ACCESS_KEY_ID": "dummy",
        "AWS_SECRET_ACCESS_KEY": "dummy",
    }
    # Given a bot function initialised for SnapStart
    before, report = _restore(module, None, env, stand_in)
    # Then priming called no database, and the snapshot holds no socket
    assert [m for _, m, *_ in before if m == "POST"] == []
    # and wrote nothing an alarm on WARNING or ERROR would count (LOG_LEVEL=WARNING)
    assert report["init_log"] == []
    assert report["frozen_at_init"] > 0
    assert report["open_sockets_in_snapshot"] == 0
    # and restored copies do not share a random sequence
    first, second = report["restored"]
    assert first["random"] != second["random"]
