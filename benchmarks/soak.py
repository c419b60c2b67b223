"""`make soak`: a steady rate for 10 minutes against `make dev`, to show
that nothing grows and nothing is lost (benchmarks/README.md, "Soak").

    uv run python -m benchmarks.soak                 # 10 minutes, a make dev of its own
    uv run python -m benchmarks.soak --minutes 2 --rate 20 --port 8000

At the chat rate, the load run's mix (messages with a client id, threads
opened); beside it, utterances in a space with a bot (each answered by the
echo model), and Realtime subscribers on some of the threads' private
channels. Every 30 s: latency, throughput, the memory of make dev's process
(the functions, the local server, the local Realtime endpoint, the queue)
and of PostgreSQL's backends. At the end, checked in SQL: every accepted
message stored once (a failed send is retried once with its client id, as a
client would), every utterance answered once, and every message of a
subscribed thread broadcast to its subscriber once.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import sys
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import psycopg
from websockets.asyncio.client import ClientConnection, connect

from benchmarks.load import WORKERS, ChatMix, _summary_row, connected
from benchmarks.load_client import Client
from benchmarks.load_gen import Outcome, Sample, open_loop, summarize
from benchmarks.load_stack import (
    ROOT,
    RunningStack,
    Usage,
    run_against_stack,
    stack_for_run,
    usage,
)
from benchmarks.load_users import User, make_space_with_bot, open_threads, say_as, seed_users
from infra.dev.realtime.protocol import Frame, decode, encode

WINDOW = 30.0


@dataclass
class Subscriber:
    """One private channel `chat:<thread>`, joined as a participant; counts
    the INSERT broadcasts by client id."""

    thread: str
    user: User
    seen: Counter[str] = field(default_factory=Counter)
    joined: bool = False

    async def run(self, url: str, stop: asyncio.Event) -> None:
        async with connect(url) as ws:
            await self._push(ws, "1", f"realtime:chat:{self.thread}", "phx_join",
                             {"config": {"private": True, "broadcast": {"self": False}},
                              "access_token": self.user.token})  # fmt: skip
            beat = asyncio.create_task(self._heartbeat(ws, stop))
            try:
                while not stop.is_set():
                    try:
                        raw = await asyncio.wait_for(ws.recv(), 1.0)
                    except TimeoutError:
                        continue
                    self._take(decode(raw, "2.0.0"))
            finally:
                beat.cancel()

    def _take(self, frame: Frame) -> None:
        if frame.event == "phx_reply" and frame.payload.get("status") == "ok":
            self.joined = True
        if frame.event == "broadcast":
            record = (frame.payload.get("payload") or {}).get("record") or {}
            if record.get("client_id"):
                self.seen[str(record["client_id"])] += 1

    @staticmethod
    async def _push(ws: ClientConnection, ref: str, topic: str, event: str,
                    payload: dict[str, Any]) -> None:  # fmt: skip
        await ws.send(encode(Frame("1", ref, topic, event, payload), "2.0.0"))

    async def _heartbeat(self, ws: ClientConnection, stop: asyncio.Event) -> None:
        n = 0
        while not stop.is_set():
            await asyncio.sleep(20)
            n += 1
            await self._push(ws, f"hb{n}", "phoenix", "heartbeat", {})


async def _utterances(
    dsn: str, issuer: str, space: str, members: list[User], rate: float, stop: asyncio.Event
) -> list[str]:
    """`rate` utterances a second, from the members in turn (each within her
    limits), each its own transaction as PostgREST runs it."""
    said: list[str] = []
    async with await psycopg.AsyncConnection.connect(dsn, autocommit=True) as conn:
        start, n = time.perf_counter(), 0
        while not stop.is_set():
            utterance = f"/soak-{n}-{int(start)}"
            await say_as(conn, members[n % len(members)], issuer, space, utterance, f"soak {n}")
            said.append(utterance)
            n += 1
            delay = start + n / rate - time.perf_counter()
            if delay > 0:
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(stop.wait(), delay)
    return said


def _memory_row(at: float, used: Usage, started: float) -> dict[str, Any]:
    return {"minute": round((at - started) / 60, 2), "app_rss_mb": round(used.app_rss_kb / 1024, 1),
            "app_threads": used.app_threads, "db_private_mb": round(used.db_private_kb / 1024, 1),
            "db_processes": used.db_processes}  # fmt: skip


def _slope(points: list[tuple[float, float]]) -> float:
    """Least-squares slope (units per minute)."""
    n = len(points)
    if n < 2:
        return 0.0
    mx = sum(x for x, _ in points) / n
    my = sum(y for _, y in points) / n
    den = sum((x - mx) ** 2 for x, _ in points)
    return sum((x - mx) * (y - my) for x, y in points) / den if den else 0.0


async def _retry_failed(client: Client, samples: list[Sample]) -> list[Sample]:
    """A failed message (no answer, 5xx) sent once more with its client id."""
    again = []
    for sample in samples:
        if sample.request.kind == "chat-message" and (sample.status == 0 or sample.status >= 500):
            request = sample.request
            response = await client.request(
                request.method, request.path, request.headers, request.body
            )
            again.append(Sample(request, 0, 0, response.status, None))
    return again


async def run(
    minutes: float, rate: float, bot_rate: float, port: int | None, report: Path
) -> dict[str, Any]:
    settings = {"ECHO_WORD_DELAY_SECONDS": "0", "DEV_WORKER_CONCURRENCY": str(WORKERS)}
    prefix = f"s{int(time.time()) % 100000:05d}"
    with stack_for_run(port, settings) as running:
        result = await _soak(running, minutes, rate, bot_rate, prefix)
    report.parent.mkdir(parents=True, exist_ok=True)
    report.write_text(json.dumps(result, indent=2))
    print(f"soak: report in {report}", flush=True)
    return result


async def _soak(
    running: RunningStack, minutes: float, rate: float, bot_rate: float, prefix: str
) -> dict[str, Any]:
    stack = running.stack
    issuer = f"{stack.supabase_url}/auth/v1"
    space, bot = f"#{prefix}-space", f"@{prefix}-bot"
    with psycopg.connect(stack.database_url, autocommit=True) as admin:
        users = seed_users(admin, prefix, 500, issuer)
        members = seed_users(admin, f"{prefix}-m", 60, issuer)
        make_space_with_bot(admin, space, bot, members[0].being)
        admin.execute("update public.beings set location_id = %s where id = any(%s)",
                      (space, [m.being for m in members]))  # fmt: skip
        # A bot's default daily budget (250,000 tokens) is about 1,130 of these
        # replies: the soak's bot gets a larger one, so its answers are what is measured.
        admin.execute("insert into private.bot_budgets (scope, subject, tokens_per_day)"
                      " values ('bot', %s, 1000000000) on conflict (scope, subject)"
                      " do update set tokens_per_day = excluded.tokens_per_day", (bot,))  # fmt: skip
    threads = open_threads(stack.database_url, users, 2, issuer)
    mix = ChatMix(threads, users)
    realtime = f"{stack.supabase_url.replace('http', 'ws', 1)}/realtime/v1/websocket?apikey=local-anon-key&vsn=2.0.0"
    subscribers = [Subscriber(tid, user) for user, _, tid in threads[:40:2]]
    stop = asyncio.Event()
    listening = [asyncio.create_task(s.run(realtime, stop)) for s in subscribers]
    await asyncio.sleep(2)
    print(f"soak: {minutes:g} min at {rate:g}/s (+{bot_rate:g} utterances/s, "
          f"{sum(s.joined for s in subscribers)} Realtime subscribers) on {stack.api_url}", flush=True)  # fmt: skip
    speaking = asyncio.create_task(_utterances(stack.database_url, issuer, space, members,
                                               bot_rate, stop))  # fmt: skip
    windows: list[dict[str, Any]] = []
    everything = Outcome()
    started = time.monotonic()
    async with connected(stack, 100) as client:
        memory = [_memory_row(time.monotonic(), usage(stack), started)]
        for _ in range(max(1, round(minutes * 60 / WINDOW))):
            before = usage(stack)
            outcome = await open_loop(client, rate, WINDOW, mix)
            after = usage(stack)
            everything.samples += outcome.samples
            everything.not_sent += outcome.not_sent
            everything.seconds += outcome.seconds
            row = {**_summary_row(summarize(outcome)), **_memory_row(after.at, after, started),
                   "app_cores": round((after.app_cpu - before.app_cpu) / (after.at - before.at), 3),
                   "loadavg": round(os.getloadavg()[0], 2)}  # fmt: skip
            windows.append(row)
            memory.append(_memory_row(after.at, after, started))
            print(f"  {row['minute']:5.1f} min: {row['throughput']}/s p50/p99 {row['p50']}/{row['p99']}"
                  f" ms errors {row['error_rate']:.2%} app {row['app_rss_mb']} MB"
                  f" ({row['app_threads']} threads) db {row['db_private_mb']} MB"
                  f" ({row['db_processes']} processes) load {row['loadavg']}", flush=True)  # fmt: skip
        stop.set()
        said = await speaking
        retried = await _retry_failed(client, everything.samples)
    await asyncio.gather(*listening, return_exceptions=True)
    checks = await _checks(running, everything.samples + retried, said, bot, subscribers)
    steady = memory[2:] if len(memory) > 3 else memory  # after the first minute's warm-up
    return {
        "minutes": minutes, "rate": rate, "bot_rate": bot_rate,
        "date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
        "windows": windows, "memory": memory,
        "app_rss_slope_mb_per_min": round(_slope([(m["minute"], m["app_rss_mb"]) for m in steady]), 3),
        "db_private_slope_mb_per_min": round(_slope([(m["minute"], m["db_private_mb"]) for m in steady]), 3),
        "p99_slope_ms_per_min": round(_slope([(w["minute"], w["p99"]) for w in windows[1:]]), 3),
        "all": _summary_row(summarize(everything)), "retried": len(retried), **checks,
    }  # fmt: skip


async def _checks(
    running: RunningStack, samples: list[Sample], said: list[str], bot: str,
    subscribers: list[Subscriber],
) -> dict[str, Any]:  # fmt: skip
    accepted = {
        s.request.tag for s in samples if s.request.kind == "chat-message" and 200 <= s.status < 300
    }
    sent = {s.request.tag for s in samples if s.request.kind == "chat-message"}
    deadline = time.monotonic() + 120
    with psycopg.connect(running.stack.database_url, autocommit=True) as admin:
        stored: dict[str, int] = dict(admin.execute(
            "select client_id::text, count(*) from public.chat_messages where client_id = any(%s::uuid[])"
            " group by 1", (list(sent),)).fetchall())  # fmt: skip
        while True:  # the last utterances' answers
            replies: dict[str, int] = dict(admin.execute(
                "select content->>'in_reply_to', count(*) from public.intentions"
                " where owner_id = %s and state = 'complete' and content->>'in_reply_to' = any(%s)"
                " group by 1", (bot, said)).fetchall())  # fmt: skip
            if len(replies) == len(said) or time.monotonic() > deadline:
                break
            await asyncio.sleep(1)
        unanswered = [u for u in said if u not in replies]
        # Why, for each one not answered: the bot's error notice, or its delivery record.
        notices = admin.execute(
            "select count(*), min(content->>'text') from public.intentions where type = 'error'"
            " and content->>'in_reply_to' = any(%s)", (unanswered,)).fetchone()  # fmt: skip
        deliveries = [
            {"state": state, "count": n, "last_error": error}
            for state, n, error in admin.execute(
                "select state, count(*), max(last_error) from private.bot_deliveries"
                " where intention_id = any(%s) group by 1",
                (unanswered,),
            )
        ]
        subscribed = {s.thread for s in subscribers}
        in_subscribed = {str(r[0]) for r in admin.execute(
            "select client_id from public.chat_messages where client_id = any(%s::uuid[])"
            " and thread_id = any(%s)", (list(accepted), list(subscribed))).fetchall()}  # fmt: skip
    broadcasts: Counter[str] = Counter()
    for subscriber in subscribers:
        broadcasts.update(subscriber.seen)
    return {
        "messages_accepted": len(accepted),
        "messages_lost": sum(1 for c in accepted if c not in stored),
        "messages_stored_twice": sum(1 for n in stored.values() if n > 1),
        "messages_stored_not_accepted": sum(1 for c in stored if c not in accepted),
        "utterances": len(said),
        "utterances_answered_once": sum(1 for u in said if replies.get(u) == 1),
        "utterances_unanswered": len(unanswered),
        "unanswered_with_error_notice": notices[0] if notices else 0,
        "error_notice_example": notices[1] if notices else None,
        "unanswered_deliveries": deliveries,
        "realtime_subscribers_joined": sum(1 for s in subscribers if s.joined),
        "realtime_expected": len(in_subscribed),
        "realtime_delivered_once": sum(1 for c in in_subscribed if broadcasts.get(c) == 1),
        "realtime_missing": sum(1 for c in in_subscribed if c not in broadcasts),
        "realtime_duplicates": sum(1 for n in broadcasts.values() if n > 1),
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--minutes", type=float, default=10)
    parser.add_argument("--rate", type=float, default=50, help="chat requests a second")
    parser.add_argument("--bot-rate", type=float, default=2, help="utterances a second")
    parser.add_argument("--port", type=int, help="a running make dev's PORT (else one of its own)")
    parser.add_argument("--report", type=Path, default=ROOT / ".local" / "bench" / "soak.json")
    args = parser.parse_args(argv)
    return run_against_stack(
        "soak",
        args.port,
        lambda port: run(args.minutes, args.rate, args.bot_rate, port, args.report),
    )


if __name__ == "__main__":
    sys.exit(main())
