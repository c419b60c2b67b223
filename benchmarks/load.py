"""`make load`: chat-message and thread-ensure at stepped rates up to
saturation, one member flooding beside the others, and a burst of 1,000
utterances in a space with a bot, against `make dev` (benchmarks/README.md,
"Load").

    uv run python -m benchmarks.load            # a make dev of its own, free ports
    uv run python -m benchmarks.load --port 8000 # the running make dev on 8000
    uv run python -m benchmarks.load --quick     # a tiny run (the test suite's)

Users are seeded through SQL (2,000 by default, so no one's rate limit is
reached by the steps: at 600 requests a second each member sends one
message every 4 s, the limit is 30 at once then one a second); the burst's
1,000 utterances come from 200 members, 5 each, within their limits
(`utterance` 30 at once, `bot_answer` 10 at once). The flood is one member
alone against her limit. A stack started here answers with the offline echo
model without its pause between words (`ECHO_WORD_DELAY_SECONDS=0`) and runs
5 workers at once, as serverless.yml's workerMaxConcurrency.

The report (JSON, `--report`, default .local/bench/load.json) is what
benchmarks/cost.py reads.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import statistics
import sys
import time
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import psycopg

from benchmarks.load_client import Client
from benchmarks.load_gen import Outcome, Request, Summary, open_loop, percentile, summarize
from benchmarks.load_probe import Connections, describe, profile, sample_connections
from benchmarks.load_stack import (
    ROOT,
    RunningStack,
    Usage,
    own_cpu,
    run_against_stack,
    stack_for_run,
    usage,
)
from benchmarks.load_users import (
    User,
    make_space_with_bot,
    open_threads,
    say_as,
    seed_users,
)
from infra.dev.stack import Stack
from infra.local.cluster import BOOTSTRAP_SUPERUSER
from infra.local.schema import as_role

WORKERS = 5  # serverless.yml's workerMaxConcurrency, for a stack started here


@dataclass(frozen=True)
class Plan:
    rates: list[float]
    step_seconds: float
    users: int
    partners: int
    flood_seconds: float
    flood_rate: float
    flood_background: float
    burst: int
    burst_members: int
    burst_timeout: float
    profile: bool

    @classmethod
    def full(cls) -> Plan:
        return cls([25, 50, 75, 100, 125, 150, 200, 300], 20, 2000, 2, 15, 40, 30, 1000, 200,
                   900, True)  # fmt: skip

    @classmethod
    def quick(cls) -> Plan:
        return cls([5, 10], 2, 20, 1, 2, 40, 5, 20, 4, 120, False)


class ChatMix:
    """A realistic mix: mostly messages in a user's existing threads, some
    opening an existing thread, a few opening a new one."""

    def __init__(self, threads: list[tuple[User, User, str]], users: list[User]) -> None:
        self.threads, self.users = threads, users
        self.random = random.Random(26)

    @staticmethod
    def headers(user: User) -> dict[str, str]:
        return {"Authorization": f"Bearer {user.token}", "Content-Type": "application/json"}

    def message(self, user: User, thread: str, n: int) -> Request:
        client_id = str(uuid.uuid4())
        body = {"thread_id": thread, "body": f"load message {n}", "client_id": client_id}
        return Request("chat-message", "POST", "/chat/messages", self.headers(user),
                       body, client_id)  # fmt: skip

    def __call__(self, n: int) -> Request:
        roll = self.random.random()
        user, other, thread = self.random.choice(self.threads)
        if roll < 0.85:
            return self.message(user, thread, n)
        if roll >= 0.97:  # a new conversation
            other = self.random.choice(self.users)
            if other is user:
                other = self.users[
                    (self.users.index(user) + len(self.users) // 2) % len(self.users)
                ]
        return Request("thread-ensure", "POST", "/chat/threads/ensure",
                       self.headers(user), {"other_mongo_id": other.mongo_id})  # fmt: skip


def _ms(value: float) -> float | None:
    return None if value != value else round(value, 2)  # NaN -> None in JSON


def _summary_row(summary: Summary) -> dict[str, Any]:
    row = asdict(summary)
    for key in ("p50", "p95", "p99", "function_p50", "function_mean"):
        row[key] = _ms(row[key])
    row["throughput"] = round(summary.throughput, 1)
    row["error_rate"] = round(summary.error_rate, 4)
    return row


@asynccontextmanager
async def connected(stack: Stack, connections: int = 200) -> AsyncIterator[Client]:
    client = Client(stack.api_url, connections)
    try:
        yield client
    finally:
        await client.close()


def _superuser(stack: Stack) -> str:
    """pg_stat_activity shows other roles' sessions in full to a superuser only."""
    return as_role(stack.database_url, BOOTSTRAP_SUPERUSER)


def _wal(stack: Stack) -> int:
    """WAL written so far, in bytes (what every commit costs the disk and replicas)."""
    with psycopg.connect(stack.database_url, autocommit=True) as conn:
        row = conn.execute("select pg_current_wal_insert_lsn() - '0/0'::pg_lsn").fetchone()
    return int(row[0]) if row else 0


def _log_bytes(running: RunningStack) -> int:
    return running.log.stat().st_size if running.log else 0


async def measured(
    running: RunningStack, client: Client, rate: float, seconds: float, mix: ChatMix
) -> tuple[Outcome, dict[str, Any]]:
    """One step at `rate`, with the CPU each side used and the database's connections."""
    stack = running.stack
    stop = asyncio.Event()
    sampler = asyncio.create_task(sample_connections(_superuser(stack), stop))
    before, mine, logged, wal = usage(stack), own_cpu(), _log_bytes(running), _wal(stack)
    outcome = await open_loop(client, rate, seconds, mix)
    after, mine_after, wal = usage(stack), own_cpu(), _wal(stack) - wal
    stop.set()
    connections = await sampler
    resources = _resources(before, after, mine_after - mine, connections,
                           _log_bytes(running) - logged)  # fmt: skip
    answered = sum(1 for s in outcome.samples if 200 <= s.status < 300)
    resources["wal_bytes_per_ok"] = round(wal / answered) if answered else None
    return outcome, resources


def _resources(
    before: Usage, after: Usage, generator_cpu: float, db: Connections, logged: int
) -> dict[str, Any]:
    wall = after.at - before.at
    return {
        "seconds": round(wall, 2),
        "app_cores": round((after.app_cpu - before.app_cpu) / wall, 3),
        "db_cores": round((after.db_cpu - before.db_cpu) / wall, 3),
        "generator_cores": round(generator_cpu / wall, 3),
        "app_cpu_seconds": round(after.app_cpu - before.app_cpu, 3),
        "db_cpu_seconds": round(after.db_cpu - before.db_cpu, 3),
        "function_connections_max": db.functions_max,
        "function_connections_active_mean": round(db.functions_active_mean, 2),
        "function_connections_active_max": db.functions_active_max,
        "all_connections_max": db.all_max,
        "db_active_waits": {k: round(v, 3) for k, v in db.wait_shares().items()},
        "log_bytes": logged,
        "app_rss_mb": round(after.app_rss_kb / 1024, 1),
        "app_threads": after.app_threads,
    }


def _by_kind(outcome: Outcome) -> dict[str, Any]:
    kinds = sorted({s.request.kind for s in outcome.samples})
    return {
        kind: _summary_row(
            summarize(outcome, [s for s in outcome.samples if s.request.kind == kind])
        )
        for kind in kinds
    }


async def steps(running: RunningStack, plan: Plan, mix: ChatMix) -> list[dict[str, Any]]:
    rows: list[dict[str, Any]] = []
    async with connected(running.stack) as client:
        await open_loop(client, min(plan.rates), min(3.0, plan.step_seconds), mix)  # warm-up
        saturated = 0
        for rate in plan.rates:
            outcome, resources = await measured(running, client, rate, plan.step_seconds, mix)
            summary = summarize(outcome)
            cores = resources["app_cores"] + resources["db_cores"]
            row = {
                "offered": rate, **_summary_row(summary), **resources,
                "per_core": round(summary.throughput / cores, 1) if cores else None,
                "by_kind": _by_kind(outcome), "loadavg": [round(x, 2) for x in os.getloadavg()],
            }  # fmt: skip
            rows.append(row)
            _print_step(row)
            if summary.throughput < 0.9 * rate or summary.p99 > 2000 or summary.error_rate > 0.05:
                saturated += 1
                if saturated == 2:
                    break
    return rows


def _print_step(row: dict[str, Any]) -> None:
    print(
        f"  {row['offered']:>6.0f}/s offered: {row['throughput']:>6.1f}/s ok,"
        f" p50/p95/p99 {row['p50']}/{row['p95']}/{row['p99']} ms, errors {row['error_rate']:.1%},"
        f" handler p50 {row['function_p50']} ms, cores app {row['app_cores']} db {row['db_cores']}"
        f" load {row['generator_cores']}, fn connections {row['function_connections_max']}"
        f" (active mean {row['function_connections_active_mean']}), loadavg {row['loadavg'][0]}",
        flush=True,
    )


async def saturation_profile(
    running: RunningStack, plan: Plan, mix: ChatMix, rate: float
) -> dict[str, Any]:
    """The saturating step again, with py-spy on make dev's process."""
    async with connected(running.stack) as client:
        spy = asyncio.get_running_loop().run_in_executor(
            None, profile, running.stack.pid, plan.step_seconds - 2
        )
        outcome, resources = await measured(running, client, rate, plan.step_seconds, mix)
        shares = await spy
    summary = summarize(outcome)
    return {"offered": rate, **_summary_row(summary), **resources,
            "py_spy": {k: round(v, 3) for k, v in (shares or {}).items()}}  # fmt: skip


async def flood(stack: Stack, plan: Plan, mix: ChatMix, users: list[User]) -> dict[str, Any]:
    """The others at a steady rate, alone, then with one member sending as
    fast as a script would (her own thread): what she gets, what they get."""
    flooder = users[0]
    thread = next(t for u, _, t in mix.threads if u is flooder)
    others = ChatMix([t for t in mix.threads if flooder not in (t[0], t[1])], users[1:])
    async with connected(stack) as client:
        alone = await open_loop(client, plan.flood_background, plan.flood_seconds, others)
        background, flooded = await asyncio.gather(
            open_loop(client, plan.flood_background, plan.flood_seconds, others),
            open_loop(client, plan.flood_rate, plan.flood_seconds,
                      lambda n: mix.message(flooder, thread, n)),
        )  # fmt: skip
    retry_after = sorted({int(s.retry_after) for s in flooded.samples if s.retry_after})
    return {
        "flooder": {**_summary_row(summarize(flooded)), "rate": plan.flood_rate,
                    "retry_after_seen": [retry_after[0], retry_after[-1]] if retry_after else []},
        "others_alone": _summary_row(summarize(alone)),
        "others_during_flood": _summary_row(summarize(background)),
    }  # fmt: skip


async def _say(dsn: str, issuer: str, space: str, members: list[User], n: int) -> list[str]:
    """`n` utterances, spread over `members`, each its own transaction as
    PostgREST runs an insert (role, claims, RLS), 8 at a time."""
    ids = [f"/load-{uuid.uuid4()}" for _ in range(n)]
    queue: asyncio.Queue[int] = asyncio.Queue()
    for i in range(n):
        queue.put_nowait(i)

    async def writer() -> None:
        async with await psycopg.AsyncConnection.connect(dsn, autocommit=True) as conn:
            while not queue.empty():
                i = queue.get_nowait()
                await say_as(
                    conn, members[i % len(members)], issuer, space, ids[i], f"question {i}"
                )

    await asyncio.gather(*(writer() for _ in range(8)))
    return ids


async def burst(running: RunningStack, plan: Plan, prefix: str) -> dict[str, Any]:
    stack = running.stack
    issuer = f"{stack.supabase_url}/auth/v1"
    space, bot = f"#{prefix}-space", f"@{prefix}-bot"
    with psycopg.connect(stack.database_url, autocommit=True) as admin:
        members = seed_users(admin, f"{prefix}-m", plan.burst_members, issuer)
        make_space_with_bot(admin, space, bot, members[0].being)
        admin.execute("update public.beings set location_id = %s where id = any(%s)",
                      (space, [m.being for m in members]))  # fmt: skip
        since = admin.execute("select now()").fetchone()[0]  # type: ignore[index]
        stop = asyncio.Event()
        sampler = asyncio.create_task(sample_connections(_superuser(stack), stop))
        before, started, logged, wal = (
            usage(stack),
            time.monotonic(),
            _log_bytes(running),
            _wal(stack),
        )
        ids = await _say(stack.database_url, issuer, space, members, plan.burst)
        inserted = time.monotonic() - started
        acknowledged = answered = None
        first_answer = None
        deadline = started + plan.burst_timeout
        while time.monotonic() < deadline and answered is None:
            pending = admin.execute(
                "select count(*) from private.bot_deliveries where intention_id = any(%s)", (ids,)
            ).fetchone()[0]  # type: ignore[index]
            done = admin.execute(
                "select count(*) from public.intentions where owner_id = %s and state = 'complete'"
                " and content->>'in_reply_to' = any(%s)", (bot, ids)).fetchone()[0]  # type: ignore[index]  # fmt: skip
            now = time.monotonic() - started
            if acknowledged is None and pending == 0:
                acknowledged = now
            if first_answer is None and done:
                first_answer = now
            if done >= len(ids):
                answered = now
            else:
                await asyncio.sleep(0.25)
        after, logged, wal = usage(stack), _log_bytes(running) - logged, _wal(stack) - wal
        stop.set()
        connections = await sampler
        replies: dict[int, int] = dict(admin.execute(
            "select n, count(*) from (select content->>'in_reply_to' r, count(*) n"
            " from public.intentions where owner_id = %s and content->>'in_reply_to' = any(%s)"
            " group by 1) x group by n", (bot, ids)).fetchall())  # fmt: skip
        errors = admin.execute(
            "select count(*) from public.intentions where type = 'error' and location_id = %s",
            (space,)).fetchone()[0]  # type: ignore[index]  # fmt: skip
        webhooks = admin.execute(
            "select count(*), count(*) filter (where status_code = 202),"
            " array_agg(coalesce(headers->>'server-timing', headers->>'Server-Timing'))"
            " from net._http_response where created >= %s", (since,)).fetchone()  # fmt: skip
    timings = [float(t.split("dur=")[1]) for t in (webhooks[2] or []) if t and "dur=" in t]  # type: ignore[index]
    drain = (answered or 0) - (first_answer or 0)
    return {
        "utterances": len(ids), "members": len(members),
        "inserted_seconds": round(inserted, 2),
        "insert_rate": round(len(ids) / inserted, 1),
        "all_acknowledged_seconds": _ms(acknowledged) if acknowledged is not None else None,
        "first_answer_seconds": _ms(first_answer) if first_answer is not None else None,
        "all_answered_seconds": _ms(answered) if answered is not None else None,
        "answer_rate": round(len(ids) / answered, 1) if answered else None,
        "replies_per_utterance": {str(k): v for k, v in replies.items()},
        "error_notices": errors,
        "webhooks_sent": webhooks[0], "webhooks_202": webhooks[1],  # type: ignore[index]
        "bot_trigger_ms_p50": _ms(percentile(timings, 50)),
        "bot_trigger_ms_mean": _ms(statistics.fmean(timings)) if timings else None,
        "workers": WORKERS if running.started_here else None,
        # Little's law while the queue was never empty: workers x drain time / jobs.
        "worker_ms_mean_estimate": round(WORKERS * drain / max(len(ids) - 1, 1) * 1000, 1)
        if running.started_here and answered else None,
        "log_bytes_per_utterance": round(logged / len(ids), 1) if logged else None,
        "wal_bytes_per_utterance": round(wal / len(ids)),
        **_resources(before, after, 0.0, connections, logged),
    }  # fmt: skip


def _machine() -> dict[str, Any]:
    return {"cores": os.cpu_count(), "loadavg_start": [round(x, 2) for x in os.getloadavg()],
            "date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
            "python": sys.version.split()[0]}  # fmt: skip


def _durations(rows: list[dict[str, Any]], bursted: dict[str, Any]) -> dict[str, Any]:
    """What cost.py needs: each function's time per invocation at the lowest
    step (no queueing), its CPU share, and the JSON log bytes per request."""
    low = rows[0]
    per = max(low["ok"] + low["limited"] + low["errors"], 1)
    return {
        "chat-message_ms": low["by_kind"].get("chat-message", {}).get("function_mean"),
        "thread-ensure_ms": low["by_kind"].get("thread-ensure", {}).get("function_mean"),
        "http_app_cpu_ms_per_request": round(low["app_cpu_seconds"] / per * 1000, 3),
        "log_bytes_per_http_request": round(low["log_bytes"] / per, 1)
        if low["log_bytes"]
        else None,
        "bot-trigger_ms": bursted.get("bot_trigger_ms_mean"),
        "worker_ms_estimate": bursted.get("worker_ms_mean_estimate"),
        "measured_at_rate": low["offered"],
    }


async def run(plan: Plan, port: int | None, report: Path) -> dict[str, Any]:
    settings = {"ECHO_WORD_DELAY_SECONDS": "0", "DEV_WORKER_CONCURRENCY": str(WORKERS)}
    prefix = f"l{int(time.time()) % 100000:05d}"
    with stack_for_run(port, settings) as running:
        stack: Stack = running.stack
        issuer = f"{stack.supabase_url}/auth/v1"
        print(f"load: against {stack.api_url} (pid {stack.pid}"
              f"{', started for this run' if running.started_here else ''})", flush=True)  # fmt: skip
        with psycopg.connect(stack.database_url, autocommit=True) as admin:
            users = seed_users(admin, prefix, plan.users, issuer)
        threads = open_threads(stack.database_url, users, plan.partners, issuer)
        mix = ChatMix(threads, users)
        result: dict[str, Any] = {"machine": _machine(), "plan": asdict(plan),
                                  "stack_started_here": running.started_here}  # fmt: skip
        print(f"load: {len(users)} users, {len(threads) // 2} threads; steps:", flush=True)
        result["steps"] = await steps(running, plan, mix)
        if plan.profile:
            top = max(result["steps"], key=lambda r: r["throughput"])
            print(f"load: profiling at {top['offered']:.0f}/s (py-spy)", flush=True)
            result["saturation"] = await saturation_profile(running, plan, mix, top["offered"])
            print(f"  py-spy: {describe(result['saturation']['py_spy'])}", flush=True)
        print("load: one member flooding", flush=True)
        result["flood"] = await flood(stack, plan, mix, users)
        print(f"  {json.dumps(result['flood']['flooder'])}", flush=True)
        print(f"load: burst of {plan.burst} utterances", flush=True)
        result["burst"] = await burst(running, plan, prefix)
        print(f"  {json.dumps(result['burst'])}", flush=True)
        result["durations"] = _durations(result["steps"], result["burst"])
        result["machine"]["loadavg_end"] = [round(x, 2) for x in os.getloadavg()]
    report.parent.mkdir(parents=True, exist_ok=True)
    report.write_text(json.dumps(result, indent=2))
    print(f"load: report in {report}", flush=True)
    return result


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--port", type=int, help="a running make dev's PORT (else one of its own)")
    parser.add_argument("--quick", action="store_true", help="a tiny run (seconds)")
    parser.add_argument("--rates", help="comma-separated requests a second, e.g. 50,100,200")
    parser.add_argument("--step-seconds", type=float)
    parser.add_argument("--no-profile", action="store_true")
    parser.add_argument("--report", type=Path, default=ROOT / ".local" / "bench" / "load.json")
    args = parser.parse_args(argv)
    plan = Plan.quick() if args.quick else Plan.full()
    changes: dict[str, Any] = {}
    if args.rates:
        changes["rates"] = [float(r) for r in args.rates.split(",")]
    if args.step_seconds:
        changes["step_seconds"] = args.step_seconds
    if args.no_profile:
        changes["profile"] = False
    plan = Plan(**{**asdict(plan), **changes})
    return run_against_stack("load", args.port, lambda port: run(plan, port, args.report))


if __name__ == "__main__":
    sys.exit(main())
