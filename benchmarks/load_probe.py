"""Where a load run's time goes: the database's connections and what its
active backends wait on (pg_stat_activity, sampled), and the Python process
of make dev profiled by py-spy (from PyPI, run through uvx at a pinned
version; it reads the process from outside, without pausing it)."""

from __future__ import annotations

import asyncio
import contextlib
import os
import shutil
import subprocess
import tempfile
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import psycopg

PY_SPY = "py-spy==0.4.3"
_CONNECTIONS = """
select count(*) filter (where usename = 'authenticator'),
       count(*) filter (where usename = 'authenticator' and state = 'active'),
       count(*)
from pg_stat_activity where backend_type = 'client backend' and pid <> pg_backend_pid()
"""
_WAITS = """
select coalesce(wait_event_type || ':' || wait_event, 'CPU'), count(*)
from pg_stat_activity
where state = 'active' and backend_type = 'client backend' and pid <> pg_backend_pid()
group by 1
"""


@dataclass
class Connections:
    """pg_stat_activity, every `every` seconds: the functions' connections
    (role authenticator), how many of them were running a query, all client
    connections, and what active backends were doing (CPU or a wait event)."""

    samples: int = 0
    functions_max: int = 0
    functions_active_total: int = 0
    functions_active_max: int = 0
    all_max: int = 0
    waits: Counter[str] = field(default_factory=Counter)

    @property
    def functions_active_mean(self) -> float:
        return self.functions_active_total / self.samples if self.samples else 0.0

    def wait_shares(self) -> dict[str, float]:
        total = sum(self.waits.values())
        return {k: v / total for k, v in self.waits.most_common(6)} if total else {}


async def sample_connections(dsn: str, stop: asyncio.Event, every: float = 0.25) -> Connections:
    seen = Connections()
    async with await psycopg.AsyncConnection.connect(dsn, autocommit=True) as conn:
        while not stop.is_set():
            row = await (await conn.execute(_CONNECTIONS)).fetchone()
            waits = await (await conn.execute(_WAITS)).fetchall()
            if row:
                functions, active, everyone = row
                seen.samples += 1
                seen.functions_max = max(seen.functions_max, functions)
                seen.functions_active_total += active
                seen.functions_active_max = max(seen.functions_active_max, active)
                seen.all_max = max(seen.all_max, everyone)
                seen.waits.update({kind: n for kind, n in waits})
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), every)
    return seen


# Innermost frame first: the first category whose marker a frame's file has.
CATEGORIES: tuple[tuple[str, tuple[str, ...]], ...] = (
    ("database driver (psycopg)", ("/psycopg/", "/psycopg_binary/")),
    ("SQS (moto, botocore)", ("/moto/", "/botocore/", "/boto3/", "/werkzeug/", "/responses/")),
    ("local Realtime endpoint", ("infra/dev/realtime", "/websockets/")),
    ("JSON logging", ("shared/logs.py", "/logging/")),
    ("our functions (shared/, functions/)", ("shared/", "functions/")),
    ("FastAPI, Starlette, Mangum", ("/fastapi/", "/starlette/", "/mangum/", "/anyio/")),
    ("pydantic", ("/pydantic", "/pydantic_core/")),
    ("JWT and crypto", ("/cryptography/", "/jwt/")),
    (
        "local HTTP server (http.server)",
        ("http/server.py", "socketserver.py", "infra/dev/server.py"),
    ),
    ("pg_net stand-in, event source mapping", ("infra/local/pg_net.py", "infra/dev/platform.py")),
    ("asyncio", ("/asyncio/",)),
    ("threads", ("threading.py", "concurrent/futures")),
)


def classify(stack: str) -> str:
    frames = stack.split(";")
    for frame in reversed(frames):
        for name, markers in CATEGORIES:
            if any(marker in frame for marker in markers):
                return name
    return "other"


def profile(pid: int, seconds: float, rate: int = 50) -> dict[str, float] | None:
    """Where the process's Python work goes: py-spy samples only the thread
    holding the GIL (`--gil`), so the shares are of the interpreter's busy
    time per category (innermost frame that names one), and `GIL busy` is
    the share of samples that found a thread holding it at all (near 100 %:
    the process is bound by its one interpreter). None when py-spy cannot run
    here (no uv, no ptrace)."""
    uvx = shutil.which("uvx") or str(Path.home() / ".local" / "bin" / "uvx")
    folder = Path(tempfile.mkdtemp(prefix="chat-load-pyspy-"))
    out = folder / "profile.txt"
    try:
        done = subprocess.run(
            [uvx, "--from", PY_SPY, "py-spy", "record", "--pid", str(pid), "--duration",
             str(max(1, int(seconds))), "--rate", str(rate), "--format", "raw", "--nonblocking",
             "--gil", "--output", str(out)],
            capture_output=True, text=True, check=False, timeout=seconds + 120,
            env={**os.environ, "UV_NO_PROGRESS": "1"},
        )  # fmt: skip
        if done.returncode != 0 or not out.exists():
            return None
        counts: Counter[str] = Counter()
        for line in out.read_text().splitlines():
            stack, _, count = line.rpartition(" ")
            if stack and count.isdigit():
                counts[classify(stack)] += int(count)
        total = sum(counts.values())
        if not total:
            return None
        shares = {k: v / total for k, v in counts.most_common()}
        return {"GIL busy": min(total / (max(1, int(seconds)) * rate), 1.0), **shares}
    except (OSError, subprocess.TimeoutExpired):
        return None
    finally:
        shutil.rmtree(folder, ignore_errors=True)


def describe(shares: dict[str, Any]) -> str:
    return ", ".join(f"{name} {share:.0%}" for name, share in shares.items())
