"""Cold start: a fresh Python process imports a function's handler and serves
one request (RPC answered by a loopback stand-in), against the naive stack
(fastapi + mangum + supabase.create_client) serving the same request."""

from __future__ import annotations

import json
import os
import statistics
import subprocess
import sys
import time
import uuid
from pathlib import Path

from benchmarks.edge import canned_supabase
from benchmarks.report import Row
from tests.support.events import http_event
from tests.support.tokens import SigningKeys

ROOT = Path(__file__).resolve().parent.parent
RUNS = int(os.environ.get("COLD_START_RUNS", "9"))

THREAD = {
    "thread_id": "amy__bob", "user_a_mongo_id": "amy", "user_b_mongo_id": "bob",
    "user_a_supabase_id": str(uuid.uuid4()), "user_b_supabase_id": str(uuid.uuid4()),
    "created_at": "2026-11-22T10:00:00+00:00", "last_message_at": None,
}  # fmt: skip
MESSAGE = {
    "id": str(uuid.uuid4()), "thread_id": "amy__bob", "sender_supabase_id": str(uuid.uuid4()),
    "sender_mongo_id": "amy", "recipient_mongo_id": "bob", "body": "hi",
    "created_at": "2026-11-22T10:00:00+00:00", "client_id": None, "replayed": False,
}  # fmt: skip

OURS = """
import json, sys
from functions.{module}.handler import handler
from tests.support.events import LambdaContext
response = handler(json.loads(sys.argv[1]), LambdaContext())
assert response["statusCode"] in (200, 201), response
"""

NAIVE = """
import json, sys
from fastapi import FastAPI, Header
from mangum import Mangum
from supabase import create_client
import os
client = create_client(os.environ["SUPABASE_URL"], os.environ["SUPABASE_ANON_KEY"])
app = FastAPI()

@app.post("{path}")
def route(body: dict, authorization: str = Header()):
    client.postgrest.auth(authorization.split()[1])
    return client.rpc("{rpc}", {{"_other_mongo_id": "bob", "_thread_id": "amy__bob", "_body": "hi"}}).execute().data

handler = Mangum(app, lifespan="off")
response = handler(json.loads(sys.argv[1]), None)
assert response["statusCode"] == 200, response
"""

CASES = [
    ("thread-ensure", "thread_ensure", "/chat/threads/ensure", "ensure_chat_thread",
     {"other_mongo_id": "bob"}),
    ("chat-message", "chat_message", "/chat/messages", "insert_chat_message",
     {"thread_id": "amy__bob", "body": "hi"}),
]  # fmt: skip


def _time(script: str, event: dict[str, object], env: dict[str, str]) -> float:
    start = time.perf_counter()
    subprocess.run(  # noqa: S603
        [sys.executable, "-c", script, json.dumps(event)], env=env, cwd=ROOT, check=True
    )
    return (time.perf_counter() - start) * 1000


def _compile_bytecode() -> None:
    """Lambda artifacts ship .pyc files; so must both stacks here, or the
    benchmark times the compiler (PYTHONDONTWRITEBYTECODE is often set)."""
    import compileall
    import site

    for folder in [*site.getsitepackages(), str(ROOT / "shared"), str(ROOT / "functions"),
                   str(ROOT / "tests" / "support")]:  # fmt: skip
        compileall.compile_dir(folder, quiet=2, workers=0)


def run() -> list[Row]:
    _compile_bytecode()
    keys = SigningKeys()
    rows: list[Row] = []
    answers = {"ensure_chat_thread": THREAD, "insert_chat_message": MESSAGE}
    with canned_supabase(keys.jwks(), answers) as url:
        keys.serve_at(url)
        env = {
            **os.environ,
            "SUPABASE_URL": url,
            "SUPABASE_ANON_KEY": keys.anon_key(),
            "ALLOWED_ORIGINS": "https://app.example.test",
            "PYTHONPATH": str(ROOT),
            "LOG_LEVEL": "WARNING",
        }
        env.pop("PYTHONDONTWRITEBYTECODE", None)
        env.pop("DATABASE_URL", None)
        token = keys.token(uuid.uuid4(), mongo_id="amy")
        for name, module, path, rpc, body in CASES:
            event = http_event(
                "POST", path, body=body, headers={"authorization": f"Bearer {token}"}
            )
            ours_script = OURS.format(module=module)
            naive_script = NAIVE.format(path=path, rpc=rpc)
            _time(ours_script, event, env)  # warm the OS page cache and .pyc files
            _time(naive_script, event, env)
            ours = statistics.median(_time(ours_script, event, env) for _ in range(RUNS))
            naive = statistics.median(_time(naive_script, event, env) for _ in range(RUNS))
            ratio = ours / naive
            rows += [
                Row(
                    f"cold start {name}",
                    "median, ours (process start to response)",
                    f"{ours:.0f} ms",
                ),
                Row(
                    f"cold start {name}", "median, naive fastapi+mangum+supabase", f"{naive:.0f} ms"
                ),
                Row(f"cold start {name}", "ours / naive", f"{ratio:.2f}", "<= 0.5", ratio <= 0.5),
            ]
        # token: ours only (the naive stack has no equivalent of the cookie path)
        from shared.session.cookies import encode

        cookie = "sb-127-auth-token=" + encode(
            {"access_token": token, "refresh_token": "r"}, "base64url"
        )
        event = http_event("GET", "/auth/token", headers={"cookie": cookie})
        script = OURS.format(module="token")
        _time(script, event, env)
        ours = statistics.median(_time(script, event, env) for _ in range(RUNS))
        rows.append(
            Row("cold start token", "median, ours (process start to response)", f"{ours:.0f} ms")
        )
    return rows
