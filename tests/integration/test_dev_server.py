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

    def wait_for_count(self, text: str, count: int, timeout: float = 30) -> None:
        deadline = time.time() + timeout
        while self.output.count(text) < count:
            assert time.time() < deadline, f"{text!r} not {count} times in:\n{self.output}"
            time.sleep(0.2)

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


def new_shell() -> dict[str, str]:
    """A user's fresh login shell on a fresh machine: the system PATH only,
    so not ~/.local/bin, where bootstrap's `pip --user` put uv."""
    path = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
    assert shutil.which("uv", path=path) is None, "uv is on the system PATH here: nothing to prove"
    return {"HOME": os.environ["HOME"], "PATH": path, "LANG": "C.UTF-8", "TERM": "dumb"}


def in_new_shell(script: str, timeout: float = 180) -> subprocess.CompletedProcess[str]:
    """`script` in bash started as `env -i` would: no variable of ours leaks in."""
    return subprocess.run(["bash", "-euo", "pipefail", "-c", script], cwd=ROOT, env=new_shell(),
                          capture_output=True, text=True, timeout=timeout, check=False)  # fmt: skip


def test_the_printed_commands_run_as_printed_in_a_new_shell(dev: DevServer) -> None:
    # Given the commands make dev prints under "Try it"
    block = dev.output.split("Try it", 1)[1].split("\n\n", 1)[0]
    commands = [line.strip() for line in block.splitlines()[1:] if line.strip()]
    assert commands[0].startswith(f'eval "$(make -s tokens PORT={dev.port})"')
    assert len([c for c in commands if c.startswith("curl ")]) == 4
    assert not any("..." in c for c in commands)  # nothing cut short

    # When they run exactly as printed, in a new shell without ~/.local/bin on PATH
    done = in_new_shell("\n".join(commands))

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


def test_the_other_terminal_commands_run_as_printed_in_a_new_shell(dev: DevServer) -> None:
    # Given what make dev says to run in another terminal
    block = dev.output.split("In another terminal", 1)[1].split("Ctrl-C", 1)[0]
    commands = [line.split("#")[0].strip() for line in block.splitlines()[1:] if line.strip()]
    assert commands == [
        f"make demo PORT={dev.port}",
        f"make invoke FN=threadEnsure PORT={dev.port}",
    ]

    # Then each runs in a new shell and succeeds
    for command in commands:
        done = in_new_shell(command)
        assert done.returncode == 0, f"{command}:\n{done.stdout}{done.stderr}"
    assert "Traceback" not in done.stderr


def test_tokens_as_json_as_the_readme_says() -> None:
    done = in_new_shell("make -s tokens FORMAT=json")
    assert done.returncode == 0, done.stderr
    assert set(json.loads(done.stdout)) == {"ada", "bob"}


def test_tokens_for_a_port_where_nothing_runs_say_so_in_one_line() -> None:
    port = free_port()
    done = in_new_shell(f'eval "$(make -s tokens PORT={port})"')
    assert done.returncode != 0
    assert f"no `make dev` is running on port {port}" in done.stderr
    assert "Traceback" not in done.stderr


def test_a_function_response_says_how_long_the_handler_itself_took(dev: DevServer) -> None:
    # make load splits a request's time into the handler's and the local server's
    refused = httpx.post(f"http://127.0.0.1:{dev.port}/chat/messages", json={}, timeout=30)
    assert refused.status_code == 401
    name, _, took = refused.headers["server-timing"].partition(";dur=")
    assert name == "lambda"
    assert float(took) > 0


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


def invoke(*args: str, **env: str) -> subprocess.CompletedProcess[str]:
    return run(["make", "--no-print-directory", "invoke", *args], clean_env(**env))


def test_make_invoke_runs_each_function_offline_against_the_stack(dev: DevServer) -> None:
    # Given make dev on its own ports; no AWS credentials anywhere
    for name in ("botTrigger", "botWorker", "token", "threadEnsure", "chatMessage"):
        jobs_before = dev.output.count('"job done"')

        # When each function runs with its sample event (twice, for token: the
        # sample session must not be spent by the first run)
        for _ in range(2 if name == "token" else 1):
            done = invoke(f"FN={name}", PORT=str(dev.port), HOME="/nonexistent")
            assert done.returncode == 0, f"{name}: {done.stdout}{done.stderr}"

        # Then it succeeds; bot-trigger's job reaches make dev's own queue,
        # whose worker runs it
        if name == "botTrigger":
            assert '"statusCode": 202' in done.stdout
            dev.wait_for_count('"job done"', jobs_before + 1)
        elif name == "token":
            assert '"statusCode": 200' in done.stdout
        elif name == "botWorker":
            assert '"batchItemFailures": []' in done.stdout


def test_make_invoke_lists_the_functions_when_fn_is_missing_or_wrong() -> None:
    for args in ([], ["FN=thread-ensure-x"]):
        done = invoke(*args)
        assert done.returncode != 0
        for name, event in (("botTrigger", "bot-trigger"), ("botWorker", "bot-worker"),
                            ("token", "token"), ("threadEnsure", "thread-ensure"),
                            ("chatMessage", "chat-message")):  # fmt: skip
            assert f"{name:14} events/{event}.json" in done.stderr
        assert "Traceback" not in done.stderr


def test_make_invoke_fails_on_a_4xx_unless_expected(dev: DevServer, data_root: Path) -> None:
    # Given an event with no credentials
    event = json.loads((ROOT / "events" / "thread-ensure.json").read_text())
    del event["headers"]["authorization"]
    unsigned = data_root / "no-auth.json"
    unsigned.write_text(json.dumps(event))

    refused = invoke("FN=thread-ensure", f"EVENT={unsigned}", PORT=str(dev.port))
    assert refused.returncode != 0
    assert "make invoke: the function answered 401" in refused.stderr

    expected = invoke("FN=thread-ensure", f"EVENT={unsigned}", "EXPECT=401", PORT=str(dev.port))
    assert expected.returncode == 0, expected.stdout + expected.stderr

    missing = invoke("FN=token", f"EVENT={data_root / 'nowhere.json'}", PORT=str(dev.port))
    assert missing.returncode != 0
    assert "cannot read the event" in missing.stderr
    assert "Traceback" not in missing.stderr


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


@pytest.mark.parametrize("taken", ["PORT", "DEV_WEB_PORT", "DEV_AUTH_PORT", "DEV_PG_PORT"])
def test_a_port_in_use_is_named_with_its_holder_before_anything_starts(
    data_root: Path, taken: str
) -> None:
    # Given another program listens on one of make dev's ports
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as squatter:
        squatter.bind(("127.0.0.1", 0))
        squatter.listen()
        names = ("PORT", "DEV_PG_PORT", "DEV_AUTH_PORT", "DEV_WEB_PORT")
        ports = {name: str(free_port()) for name in names}
        busy = str(squatter.getsockname()[1])
        ports[taken] = busy

        # When make dev starts
        done = run([sys.executable, "-m", "infra.dev"],
                   clean_env(**ports, DEV_DATA_DIR=str(data_root / "dev")), timeout=120)  # fmt: skip

    # Then it stops at once with one line naming the port, what holds it and what to do
    assert done.returncode == 1, done.stdout + done.stderr
    assert "Traceback" not in done.stderr
    [line] = done.stderr.strip().splitlines()
    assert f"port {busy} ({taken}," in line
    assert f"is in use by pid {os.getpid()} (" in line
    assert f"choose a free port with {taken}=..." in line
    # And it started nothing and made nothing
    assert "starting PostgreSQL" not in done.stdout
    assert not (data_root / "dev").exists()


def test_two_settings_on_one_port_or_a_bad_number_are_one_line(data_root: Path) -> None:
    same = free_port()
    clash = run([sys.executable, "-m", "infra.dev"],
                clean_env(PORT=str(same), DEV_WEB_PORT=str(free_port()), DEV_AUTH_PORT=str(same),
                          DEV_PG_PORT=str(free_port()), DEV_DATA_DIR=str(data_root / "dev")))  # fmt: skip
    assert clash.returncode == 1
    assert f"DEV_AUTH_PORT and PORT are both {same}: give each its own port" in clash.stderr
    bad = run([sys.executable, "-m", "infra.dev"],
              clean_env(PORT="eighty", DEV_DATA_DIR=str(data_root / "dev")))  # fmt: skip
    assert bad.returncode == 1
    assert "PORT='eighty' is not a port number" in bad.stderr
    assert "Traceback" not in clash.stderr + bad.stderr
    assert not (data_root / "dev").exists()
