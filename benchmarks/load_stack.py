"""The `make dev` a load run measures: the running one (PORT=, as `make demo`
finds it through the stack file) or one started for the run on free ports in
a temporary folder, and what its processes use (CPU seconds, memory) read
from /proc, so a run can say how many cores a throughput took.

Everything is on loopback: the stack listens on 127.0.0.1 only."""

from __future__ import annotations

import asyncio
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Coroutine, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx

from infra.dev.stack import NoStack, Stack, find, port_from_env
from infra.local.cluster import free_port

ROOT = Path(__file__).resolve().parents[1]
_TICK = os.sysconf("SC_CLK_TCK")
_NOT_INHERITED = {"DATABASE_URL", "SUPABASE_URL", "OPENROUTER_API_KEY", "ALLOWED_ORIGINS",
                  "WEBHOOK_SECRET", "BOT_QUEUE_URL", "LLM_BASE_URL"}  # fmt: skip


@dataclass(frozen=True)
class Usage:
    """CPU seconds and memory of one moment, for differences over a step."""

    at: float
    app_cpu: float  # make dev's process: the functions, the local server, Realtime, SQS
    db_cpu: float  # PostgreSQL: the postmaster and every backend, exited ones included
    app_rss_kb: int
    app_threads: int
    db_private_kb: int  # the backends' own memory (shared buffers not counted)
    db_processes: int


def _stat(pid: int) -> list[str]:
    raw = Path(f"/proc/{pid}/stat").read_text()
    return raw[raw.rindex(")") + 2 :].split()  # fields from the state on


def _cpu(pid: int, *, children: bool = False) -> float:
    fields = _stat(pid)
    ticks = int(fields[11]) + int(fields[12])  # utime, stime
    if children:
        ticks += int(fields[13]) + int(fields[14])  # of children already reaped
    return ticks / _TICK


def proc_status(pid: int, key: str) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(f"{key}:"):
            return int(line.split()[1])
    return 0


def _private_kb(pid: int) -> int:
    total = 0
    for line in Path(f"/proc/{pid}/smaps_rollup").read_text().splitlines():
        if line.startswith(("Private_Clean:", "Private_Dirty:")):
            total += int(line.split()[1])
    return total


def _children(parent: int) -> list[int]:
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                if int(_stat(int(entry.name))[1]) == parent:
                    found.append(int(entry.name))
            except (OSError, ValueError, IndexError):
                continue
    return found


def postmaster_pid(stack: Stack) -> int:
    return int((Path(stack.data_dir) / "pg" / "data" / "postmaster.pid").read_text().split()[0])


def usage(stack: Stack) -> Usage:
    postmaster = postmaster_pid(stack)
    db_cpu, private, alive = _cpu(postmaster, children=True), 0, 0
    for child in _children(postmaster):
        try:
            db_cpu += _cpu(child)
            private += _private_kb(child)
            alive += 1
        except OSError:
            continue  # it exited between the listing and the read
    return Usage(
        at=time.monotonic(),
        app_cpu=_cpu(stack.pid),
        db_cpu=db_cpu,
        app_rss_kb=proc_status(stack.pid, "VmRSS"),
        app_threads=proc_status(stack.pid, "Threads"),
        db_private_kb=private,
        db_processes=alive,
    )


def own_cpu() -> float:
    """This process's CPU seconds (the load generator's own share of the machine)."""
    return time.process_time()


@dataclass
class RunningStack:
    stack: Stack
    log: Path | None  # make dev's output (its functions' JSON lines), when started here
    started_here: bool


def _wait_ready(port: int, process: subprocess.Popen[bytes], log: Path, timeout: float) -> Stack:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"make dev exited ({process.returncode}); its output: {log}")
        try:
            stack = find(port)
            if httpx.get(f"{stack.api_url}/", timeout=2).status_code == 200:
                return stack
        except (NoStack, httpx.HTTPError):
            pass
        time.sleep(0.3)
    raise RuntimeError(f"make dev did not become ready in {timeout:.0f} s; its output: {log}")


@contextmanager
def stack_for_run(port: int | None, settings: dict[str, str]) -> Iterator[RunningStack]:
    """The running `make dev` on `port`, else a new one for the run (stopped,
    and its folder removed, afterwards). `settings` go to a new one only."""
    if port is not None:
        yield RunningStack(find(port), None, started_here=False)
        return
    folder = Path(tempfile.mkdtemp(prefix="chat-load-"))
    api = free_port()
    env = {
        # The new stack's own settings, never a caller's stack's (local.env only sets defaults).
        **{k: v for k, v in os.environ.items() if k not in _NOT_INHERITED},
        "PORT": str(api),
        "DEV_WEB_PORT": str(free_port()),
        "DEV_AUTH_PORT": str(free_port()),
        "DEV_PG_PORT": str(free_port()),
        "DEV_DATA_DIR": str(folder / "dev"),
        **settings,
    }
    log = folder / "make-dev.log"
    with log.open("wb") as out:
        process = subprocess.Popen(  # the same entry point as `make dev`
            [sys.executable, "-m", "infra.dev"], cwd=ROOT, env=env, stdout=out,
            stderr=subprocess.STDOUT,
        )  # fmt: skip
    try:
        yield RunningStack(_wait_ready(api, process, log, 180), log, started_here=True)
    finally:
        process.send_signal(signal.SIGINT)
        try:
            process.wait(60)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(10)
        if os.environ.get("LOAD_KEEP_LOG"):
            print(f"make dev's output kept in {log}", file=sys.stderr)
        else:
            shutil.rmtree(folder, ignore_errors=True)


def run_against_stack(
    name: str, port: int | None, run: Callable[[int | None], Coroutine[Any, Any, Any]]
) -> int:
    """Runs `run` against the stack on `port` (else PORT from the environment,
    as `make demo` finds it, else a new one); a missing stack is one line."""
    try:
        asyncio.run(run(port or port_from_env()))
    except NoStack as exc:
        print(f"{name}: {exc}", file=sys.stderr)
        return 1
    return 0
