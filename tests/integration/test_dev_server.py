"""`make dev` end to end, as a newcomer runs it on non-default ports: the
commands it prints, `make demo` and `make invoke` against it, Ctrl-C, and a
restart after the dev process was killed."""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import psycopg
import pytest

from infra.local.cluster import free_port

pytestmark = pytest.mark.integration

ROOT = Path(__file__).resolve().parents[2]
INHERITED = ("DATABASE_URL", "SUPABASE_URL", "OPENROUTER_API_KEY", "WEBHOOK_SECRET",
             "BOT_QUEUE_URL", "PORT", "DEV_DATA_DIR", "ALLOWED_ORIGINS")  # fmt: skip


@dataclass
class DevServer:
    process: subprocess.Popen[str]
    port: int
    data: Path
    lines: list[str] = field(default_factory=list)

    @property
    def output(self) -> str:
        return "".join(self.lines)

    def wait_for(self, text: str, timeout: float = 90) -> None:
        deadline = time.time() + timeout
        while text not in self.output:
            assert self.process.poll() is None, self.output
            assert time.time() < deadline, f"no {text!r} in:\n{self.output}"
            time.sleep(0.2)

    def stop(self) -> int:
        os.killpg(self.process.pid, signal.SIGINT)
        return self.process.wait(timeout=60)


def clean_env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in INHERITED}
    return {**env, **extra}


def start_dev(data: Path, port: int | None = None) -> DevServer:
    port = port or free_port()
    # Every port chosen free, the page's too: PORT + 1 may be a client's ephemeral port.
    env = clean_env(PORT=str(port), DEV_PG_PORT=str(free_port()), DEV_AUTH_PORT=str(free_port()),
                    DEV_WEB_PORT=str(free_port()), DEV_DATA_DIR=str(data))  # fmt: skip
    process = subprocess.Popen(
        [sys.executable, "-m", "infra.dev"],
        cwd=ROOT, env=env, start_new_session=True,
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
    )  # fmt: skip
    server = DevServer(process, port, data)

    def collect() -> None:
        assert process.stdout is not None
        for line in process.stdout:
            server.lines.append(line)

    threading.Thread(target=collect, daemon=True).start()
    server.wait_for("Ctrl-C stops everything.")
    assert httpx.get(f"http://127.0.0.1:{port}/", timeout=5).status_code == 200
    return server


def assert_nothing_left(data: Path) -> None:
    assert not (data / "pg" / "data" / "postmaster.pid").exists()
    leftovers = subprocess.run(["pgrep", "-f", str(data)], capture_output=True, text=True,
                               check=False)  # fmt: skip
    assert leftovers.stdout.strip() == ""


def run(command: list[str], env: dict[str, str], timeout: float = 180) -> subprocess.CompletedProcess[str]:  # fmt: skip
    return subprocess.run(command, cwd=ROOT, env=env, capture_output=True, text=True,
                          timeout=timeout, check=False)  # fmt: skip


@contextmanager
def scratch() -> Iterator[Path]:
    """A folder for make dev's data, not under pytest's basetemp: a concurrent
    pytest run resets that folder to 0700, and the server (the postgres
    user) loses its way in."""
    root = Path(tempfile.mkdtemp(prefix="chat-dev-test-"))
    try:
        yield root
    finally:
        shutil.rmtree(root, ignore_errors=True)


@pytest.fixture
def data_root() -> Iterator[Path]:
    with scratch() as root:
        yield root


@pytest.fixture(scope="module")
def dev() -> Iterator[DevServer]:
    with scratch() as root:
        yield from _running_dev(root / "data")


def _running_dev(data: Path) -> Iterator[DevServer]:
    server = start_dev(data)
    published = ROOT / ".local" / "dev-stacks" / f"{server.port}.json"
    assert json.loads(published.read_text())["api_url"] == f"http://127.0.0.1:{server.port}"
    try:
        yield server
    finally:
        returncode = server.stop()
    # Ctrl-C stops everything and withdraws what it published.
    assert returncode == 0, server.output
    assert "stopped: PostgreSQL is down" in server.output
    assert not published.exists()
    assert_nothing_left(data)


def stack_db(server: DevServer) -> psycopg.Connection[Any]:
    state = json.loads((ROOT / ".local" / "dev-stacks" / f"{server.port}.json").read_text())
    return psycopg.connect(state["database_url"], autocommit=True)


def test_the_printed_commands_run_as_printed(dev: DevServer) -> None:
    # Given the commands make dev prints under "Try it"
    block = dev.output.split("Try it", 1)[1].split("\n\n", 1)[0]
    commands = [line.strip() for line in block.splitlines()[1:] if line.strip()]
    assert commands[0].startswith(
        f'eval "$(uv run python scripts/dev_tokens.py --shell --port {dev.port})"'
    )
    assert len([c for c in commands if c.startswith("curl ")]) == 4
    assert not any("..." in c for c in commands)  # nothing cut short

    # When they run in bash, exactly as printed
    done = run(["bash", "-euo", "pipefail", "-c", "\n".join(commands)], clean_env())

    # Then each answers what it says, and the bot-trigger one makes @echo answer
    assert done.returncode == 0, done.stdout + done.stderr
    token, thread, message, trigger = [json.loads(line) for line in done.stdout.splitlines()]
    assert token["user"]["mongo_user_id"] == "ada"
    assert thread["thread_id"] == "ada__bob"
    assert message["body"] == "Hi Bob"
    assert trigger == {"queued": 1}
    with stack_db(dev) as db:
        deadline, reply = time.time() + 30, None
        while time.time() < deadline and (reply is None or reply[0] != "complete"):
            time.sleep(0.2)
            reply = db.execute("select state, content->>'text' from public.intentions"
                               " where content->>'in_reply_to' = '/msg-dev-hello'").fetchone()  # fmt: skip
    assert reply is not None
    assert reply[0] == "complete"
    assert "Hello Echo, what can you do?" in reply[1]


def test_dev_tokens_runs_as_the_readme_says() -> None:
    done = run(["uv", "run", "python", "scripts/dev_tokens.py"], clean_env())
    assert done.returncode == 0, done.stderr
    assert set(json.loads(done.stdout)) == {"ada", "bob"}


def test_make_demo_finds_the_stack_with_only_its_port(dev: DevServer) -> None:
    # Given make dev runs on its own data dir; the demo is told only the PORT
    done = run(["make", "--no-print-directory", "demo"], clean_env(PORT=str(dev.port)))

    assert done.returncode == 0, done.stdout + done.stderr
    assert "<- 201" in done.stdout  # the message was stored
    assert "'cookies rewritten': ['sb-127-auth-token']" in done.stdout.replace('"', "'")
    assert '<- 200 {"same id": true}' in done.stdout  # the retry returned the same row
    assert "[complete] [echo model: no LLM key configured] You said: Ada: Hello Echo, are you there?" in done.stdout  # fmt: skip
    assert "[active  ]" in done.stdout  # it streamed
    assert "INSERT: Hi Bob!" in done.stdout  # the broadcast row


def test_make_demo_says_what_to_do_when_no_stack_runs_on_the_port() -> None:
    port = free_port()
    done = run(["make", "--no-print-directory", "demo"], clean_env(PORT=str(port)))
    assert done.returncode != 0
    assert f"no `make dev` is running on port {port}" in done.stderr
    assert "Traceback" not in done.stderr


def test_make_invoke_reaches_the_stack_on_its_ports(dev: DevServer) -> None:
    done = run(
        ["make", "--no-print-directory", "invoke", "FN=threadEnsure", "EVENT=events/thread-ensure.json"],
        clean_env(PORT=str(dev.port)),
    )  # fmt: skip
    assert done.returncode == 0, done.stdout + done.stderr
    assert '"statusCode": 200' in done.stdout
    assert "ada__bob" in done.stdout


def test_make_invoke_fails_on_a_5xx() -> None:
    # Given no stack on PORT and a database that is down
    env = clean_env(PORT=str(free_port()),
                    DATABASE_URL=f"postgresql://authenticator@127.0.0.1:{free_port()}/postgres")  # fmt: skip
    done = run(
        ["make", "--no-print-directory", "invoke", "FN=threadEnsure", "EVENT=events/thread-ensure.json"],
        env,
    )  # fmt: skip
    assert '"statusCode": 503' in done.stdout, done.stdout + done.stderr
    assert done.returncode != 0
    assert "make invoke: the function answered 503" in done.stderr


def test_make_dev_recovers_after_being_killed(data_root: Path) -> None:
    # Given make dev was killed with SIGKILL: its PostgreSQL keeps running
    data = data_root / "dev"
    first = start_dev(data)
    os.killpg(first.process.pid, signal.SIGKILL)
    first.process.wait(timeout=10)
    pid_file = data / "pg" / "data" / "postmaster.pid"
    assert pid_file.exists()
    leftover = int(pid_file.read_text().split()[0])

    # When make dev starts again on the same data dir (and other ports)
    started = time.time()
    second = start_dev(data)

    # Then it stops the leftover server, says so, and serves
    try:
        assert time.time() - started < 30
        assert f"stopped PostgreSQL (pid {leftover}) that a previous run" in second.output
        assert not (ROOT / ".local" / "dev-stacks" / f"{first.port}.json").exists()

        # and a second make dev on the same data dir is refused, naming the running one
        other = run([sys.executable, "-m", "infra.dev"],
                    clean_env(PORT=str(free_port()), DEV_PG_PORT=str(free_port()),
                              DEV_AUTH_PORT=str(free_port()), DEV_WEB_PORT=str(free_port()),
                              DEV_DATA_DIR=str(data)))  # fmt: skip
        assert other.returncode == 1
        assert f"is in use by another `make dev` (pid {second.process.pid}, port {second.port})" in other.stderr  # fmt: skip
    finally:
        assert second.stop() == 0, second.output
    assert_nothing_left(data)


@pytest.mark.parametrize("taken", ["DEV_PG_PORT", "PORT"])
def test_a_port_in_use_is_named_with_what_to_do(data_root: Path, taken: str) -> None:
    # Given another program listens on one of make dev's ports
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as squatter:
        squatter.bind(("127.0.0.1", 0))
        squatter.listen()
        names = ("PORT", "DEV_PG_PORT", "DEV_AUTH_PORT", "DEV_WEB_PORT")
        ports = {name: str(free_port()) for name in names}
        ports[taken] = str(squatter.getsockname()[1])

        # When make dev starts
        done = run([sys.executable, "-m", "infra.dev"],
                   clean_env(**ports, DEV_DATA_DIR=str(data_root / "dev")), timeout=120)  # fmt: skip

    # Then it fails with one message saying what to read or change, and leaves nothing running
    assert done.returncode == 1, done.stdout + done.stderr
    assert "Traceback" not in done.stderr
    if taken == "PORT":
        assert f"cannot serve http on 127.0.0.1:{ports['PORT']}" in done.stderr
        assert "choose a free one with PORT=..." in done.stderr
    else:
        assert f"PostgreSQL did not start on 127.0.0.1:{ports['DEV_PG_PORT']}" in done.stderr
        assert f"Read {data_root / 'dev' / 'pg' / 'postgres.log'}" in done.stderr
        assert "pg_ctl status -D" in done.stderr
    assert_nothing_left(data_root / "dev")
