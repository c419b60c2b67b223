"""`make dev` end to end: its entry point in a subprocess on free ports, the
demo against it, then Ctrl-C, and nothing left running."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

from infra.local.cluster import free_port

pytestmark = pytest.mark.integration

ROOT = Path(__file__).resolve().parents[2]


def test_make_dev_runs_the_demo_and_stops_cleanly(tmp_path: Path) -> None:
    port, pg_port, auth_port = free_port(), free_port(), free_port()
    data = tmp_path / "dev"
    env = {
        **os.environ,
        "PORT": str(port),
        "DEV_PG_PORT": str(pg_port),
        "DEV_AUTH_PORT": str(auth_port),
        "DEV_DATA_DIR": str(data),
    }
    for name in (
        "DATABASE_URL",
        "SUPABASE_URL",
        "OPENROUTER_API_KEY",
        "WEBHOOK_SECRET",
        "BOT_QUEUE_URL",
    ):
        env.pop(name, None)
    server = subprocess.Popen(
        [sys.executable, "-m", "infra.dev"],
        cwd=ROOT,
        env=env,
        start_new_session=True,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        deadline = time.time() + 90
        ready = False
        while time.time() < deadline and not ready:
            assert server.poll() is None, server.stdout.read() if server.stdout else ""
            try:
                ready = httpx.get(f"http://127.0.0.1:{port}/", timeout=1).status_code == 200
            except httpx.HTTPError:
                time.sleep(0.5)
        assert ready, "make dev never became ready"

        demo = subprocess.run(
            [sys.executable, "-m", "infra.dev.demo"],
            cwd=ROOT,
            env=env,
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
        )
        assert demo.returncode == 0, demo.stdout + demo.stderr
        assert "<- 201" in demo.stdout  # the message was stored
        assert "'cookies rewritten': ['sb-127-auth-token']" in demo.stdout.replace(
            '"', "'"
        )  # refreshed
        assert '<- 200 {"same id": true}' in demo.stdout  # the retry returned the same row
        assert (
            "[complete] [echo model: no LLM key configured] You said: Ada: Hello Echo"
            in demo.stdout
        )
        assert "[active  ]" in demo.stdout  # it streamed
        assert "INSERT: Hi Bob!" in demo.stdout  # the broadcast row
    finally:
        os.killpg(server.pid, signal.SIGINT)
        output, _ = server.communicate(timeout=60)
    assert server.returncode == 0, output
    assert "stopped: PostgreSQL is down" in output
    assert not (data / "pg" / "data" / "postmaster.pid").exists()
    leftovers = subprocess.run(
        ["pgrep", "-f", str(data)], capture_output=True, text=True, check=False
    )
    assert leftovers.stdout.strip() == ""
