"""One `make dev` for the front-end tests: its entry point in a subprocess on
free ports (the same stack a developer runs), plus a third user who is in
no thread and no space."""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from functools import cache
from pathlib import Path

import httpx
import psycopg
import pytest

from infra.dev.stack import STACKS
from infra.local.cluster import free_port
from scripts.dev_tokens import SECRET, USERS

ROOT = Path(__file__).resolve().parents[2]
OUTSIDER = "00000000-0000-4000-8000-00000000c0c0"  # "cy": a signed-up user in no thread


@dataclass(frozen=True)
class DevStack:
    api_url: str
    supabase_url: str
    page_url: str
    database_url: str
    anon_key: str

    def node_env(self) -> dict[str, str]:
        return {
            **os.environ,
            "API_URL": self.api_url,
            "SUPABASE_URL": self.supabase_url,
            "PAGE_URL": self.page_url,
            "SUPABASE_ANON_KEY": self.anon_key,
            "SUPABASE_SERVICE_ROLE_KEY": "local-service-role-key",
            "JWT_SECRET": SECRET,
            "ADA_ID": USERS["ada"],
            "BOB_ID": USERS["bob"],
            "CY_ID": OUTSIDER,
        }


def run_node(
    stack: DevStack,
    test_file: str,
    *,
    screenshot: Path | None = None,
    timeout: float = 120,
    extra_env: dict[str, str] | None = None,
) -> str:
    """Runs a node:test file against the stack; its report is the assertion message."""
    env = stack.node_env() | ({"SCREENSHOT": str(screenshot)} if screenshot else {})
    env |= extra_env or {}
    # Its own process group: node --test runs each file in a child process,
    # which a timeout must end too (killing node alone left it running).
    node = subprocess.Popen(
        ["node", "--test", *_force_exit(), "--test-reporter=spec", test_file],
        cwd=ROOT,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,
    )
    try:
        stdout, stderr = node.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        os.killpg(node.pid, signal.SIGKILL)
        stdout, stderr = node.communicate()
        raise AssertionError(
            f"node --test {test_file} ran over {timeout} s:\n{stdout}{stderr}"
        ) from None
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(node.pid, signal.SIGKILL)  # whatever the run left behind
    report = stdout + stderr
    assert node.returncode == 0, report
    return report


@cache
def _force_exit() -> list[str]:
    """realtime-js leaves a 10 s timer behind after disconnecting; Node 20.14+
    can end the run without waiting for it."""
    usage = subprocess.run(["node", "--help"], capture_output=True, text=True, check=False).stdout
    return ["--test-force-exit"] if "--test-force-exit" in usage else []


@pytest.fixture(scope="session")
def seeded_thread(dev_stack: DevStack) -> dict[str, str]:
    """1,000 older messages in ada__bob, Ada's and Bob's in turn, one
    millisecond apart, written as the table's owner in one statement (as an
    import would: the tests page through them, they do not test sending).
    Their bodies are "<SEED_TAG> <n>"."""
    tag, count = f"seed-{uuid.uuid4().hex[:8]}", 1_000
    with psycopg.connect(dev_stack.database_url, autocommit=True) as conn:
        with conn.transaction():  # as Ada, so the thread is made as the RPC makes it
            conn.execute(
                "select set_config('role', 'authenticated', true),"
                " set_config('request.jwt.claims', %s, true)",
                (json.dumps({"sub": USERS["ada"], "role": "authenticated"}),),
            )
            conn.execute("select public.ensure_chat_thread('bob')")
        conn.execute(
            "insert into public.chat_messages (thread_id, sender_supabase_id, sender_mongo_id,"
            " recipient_mongo_id, body, created_at)"
            " select t.thread_id, case when n %% 2 = 0 then t.user_a_supabase_id"
            "   else t.user_b_supabase_id end, case when n %% 2 = 0 then 'ada' else 'bob' end,"
            "   case when n %% 2 = 0 then 'bob' else 'ada' end, %s || ' ' || n,"
            "   now() - interval '1 hour' + n * interval '1 ms'"
            " from public.chat_threads t, generate_series(0, %s - 1) n"
            " where t.thread_id = 'ada__bob'",
            (tag, count),
        )
    return {"SEED_TAG": tag, "SEED_COUNT": str(count)}


@pytest.fixture(scope="session")
def dev_stack() -> Iterator[DevStack]:
    port, pg_port, auth_port, web_port = free_port(), free_port(), free_port(), free_port()
    # Not under pytest's basetemp: a concurrent pytest run resets that
    # folder to 0700, and the server (the postgres user) loses its way in.
    root = Path(tempfile.mkdtemp(prefix="chat-front-end-"))
    data = root / "dev"
    env = {
        **{k: v for k, v in os.environ.items() if k not in ("DATABASE_URL", "SUPABASE_URL",
           "OPENROUTER_API_KEY", "ALLOWED_ORIGINS", "WEBHOOK_SECRET", "BOT_QUEUE_URL")},
        "PORT": str(port), "DEV_PG_PORT": str(pg_port), "DEV_AUTH_PORT": str(auth_port),
        "DEV_WEB_PORT": str(web_port), "DEV_DATA_DIR": str(data),
        # Stream replies in several writes, so `active` is seen before `complete`.
        "BOT_STREAM_WRITE_INTERVAL": "0.05",
    }  # fmt: skip
    server = subprocess.Popen(
        [sys.executable, "-m", "infra.dev"],
        cwd=ROOT,
        env=env,
        start_new_session=True,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    # Read as it comes: make dev writes a line per request (and one of
    # metrics per invocation), and a pipe nobody reads fills up (64 KiB)
    # and then blocks the server's next write, and with it the request.
    lines: list[str] = []
    reader = threading.Thread(target=lambda: lines.extend(server.stdout or ()), daemon=True)
    reader.start()
    try:
        deadline, ready, state = time.time() + 90, False, STACKS / f"{port}.json"
        while time.time() < deadline and not ready:
            assert server.poll() is None, "".join(lines)
            try:
                ready = httpx.get(f"http://127.0.0.1:{port}/", timeout=1).status_code == 200
                ready = ready and state.exists()  # published once everything serves
            except httpx.HTTPError:
                pass
            if not ready:
                time.sleep(0.3)
        assert ready, "make dev never became ready"
        database_url = json.loads(state.read_text())["database_url"]
        with psycopg.connect(database_url, autocommit=True) as conn:
            conn.execute(
                "insert into auth.users (id, email, raw_app_meta_data) values"
                ' (%s, \'cy@example.test\', \'{"provider": "email", "mongo_user_id": "cy"}\')'
                " on conflict (id) do nothing",
                (OUTSIDER,),
            )
        yield DevStack(
            api_url=f"http://127.0.0.1:{port}",
            supabase_url=f"http://127.0.0.1:{auth_port}",
            page_url=f"http://127.0.0.1:{web_port}",
            database_url=database_url,
            anon_key="local-anon-key",
        )
    finally:
        os.killpg(server.pid, signal.SIGINT)
        server.wait(timeout=60)
        reader.join(timeout=10)
        shutil.rmtree(root, ignore_errors=True)
        assert server.returncode == 0, "".join(lines)
