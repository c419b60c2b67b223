"""What the rate limits' and budgets' rows cost under concurrency: the same
writes from 8 connections, once all for one subject (one member's bucket,
one bot's ledger) and once for 8 different subjects, side by side in one
run on a private durable PostgreSQL (docs/capacity.md).

- chat: insert_chat_message as PostgREST runs it, each connection in its own
  thread; "one member" = one sender in 8 threads, "8 members" = 8 senders.
  The chat_message limit is raised for the run (the trigger still takes a
  token from the bucket at every message, it only never refuses).
- bot: reserve_bot_tokens then record_bot_tokens (the worker's two budget
  calls per reply, as service_role), each connection in its own space;
  "one bot" = one bot answering in 8 spaces, "8 bots" = 8 bots.

    uv run python -m benchmarks.hot_rows
"""

from __future__ import annotations

import json
import shutil
import tempfile
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import psycopg

from benchmarks.load_users import (
    SET_CALLER,
    as_user,
    make_space_with_bot,
    seed_users,
    thread_id,
)
from benchmarks.report import Row
from infra.local.cluster import PgCluster, free_port
from infra.local.schema import apply_schema

CONNECTIONS = 8
SECONDS = 6.0
ROUNDS = 3
ISSUER = "http://127.0.0.1:9/auth/v1"
Call = Callable[[psycopg.Connection[Any], int], None]


def _rate(dsn: str, calls: list[Call]) -> float:
    """Calls a second, each connection running its own call in a loop."""
    stop = threading.Event()
    done = [0] * len(calls)
    errors: list[BaseException] = []

    def loop(i: int) -> None:
        try:
            with psycopg.connect(dsn, autocommit=True) as conn:
                n = 0
                while not stop.is_set():
                    calls[i](conn, n)
                    n += 1
                    done[i] += 1
        except BaseException as exc:  # reported after the run
            errors.append(exc)

    threads = [threading.Thread(target=loop, args=(i,)) for i in range(len(calls))]
    started = time.perf_counter()
    for t in threads:
        t.start()
    time.sleep(SECONDS)
    stop.set()
    for t in threads:
        t.join()
    if errors:
        raise errors[0]
    return sum(done) / (time.perf_counter() - started)


def _message(sender: Any, thread: str) -> Call:
    context = as_user(sender, ISSUER)

    def call(conn: psycopg.Connection[Any], n: int) -> None:
        with conn.transaction():
            conn.execute(SET_CALLER, context)
            conn.execute("select public.insert_chat_message(%s, %s)", (thread, f"m{n}"))

    return call


def _budget(bot: str, trigger: str) -> Call:
    service = ("service_role", json.dumps({"role": "service_role"}))

    def call(conn: psycopg.Connection[Any], n: int) -> None:  # noqa: ARG001
        for statement, args in (("select public.reserve_bot_tokens(%s, %s, 1000)", (bot, trigger)),
                                ("select public.record_bot_tokens(%s, %s, 800)", (bot, trigger))):  # fmt: skip
            with conn.transaction():
                conn.execute(SET_CALLER, service)
                conn.execute(statement, args)

    return call


def _side_by_side(dsn: str, one: list[Call], many: list[Call]) -> tuple[list[float], list[float]]:
    ones, manys = [], []
    for n in range(ROUNDS):  # alternating, so the machine's phases fall on both
        first, second = (one, many) if n % 2 == 0 else (many, one)
        a, b = _rate(dsn, first), _rate(dsn, second)
        ones.append(a if first is one else b)
        manys.append(b if first is one else a)
    return ones, manys


def _redelivery(dsn: str, space: str, owner: str) -> tuple[float, float]:
    """pg_cron's job, private.redeliver_bot_webhooks(): ms for a run with
    nothing due beside a backlog of 10,000 records not yet due, and for one
    that resends its limit (200)."""
    with psycopg.connect(dsn, autocommit=True) as admin:
        admin.execute(
            "insert into public.intentions (id, name, type, owner_id, location_id, state)"
            " select '/hot-backlog-' || n, 'q', 'utterance', %s, %s, 'complete'"
            " from generate_series(1, 10200) n",
            (owner, space),
        )
        admin.execute(
            "insert into private.settings (key, value) values"
            " ('bot_trigger_url', 'http://127.0.0.1:9/webhooks/bot-trigger'),"
            " ('bot_trigger_secret', 'hot-rows-secret-0123456789')"
            " on conflict (key) do update set value = excluded.value"
        )
        admin.execute(
            "insert into private.bot_deliveries (intention_id, attempts, next_attempt_at)"
            " select '/hot-backlog-' || n, 1, now() + case when n <= 200"
            " then interval '-1 minute' else interval '1 hour' end"
            " from generate_series(1, 10200) n on conflict do nothing"
        )
        admin.execute("analyze private.bot_deliveries")
        timings = []
        for _ in range(2):  # the due 200, then nothing due
            started = time.perf_counter()
            admin.execute("select private.redeliver_bot_webhooks()")
            timings.append((time.perf_counter() - started) * 1000)
    return timings[1], timings[0]


def run() -> list[Row]:
    root = Path(tempfile.mkdtemp(prefix="chat-bench-hot-"))
    cluster = PgCluster(root / "cluster", free_port())
    cluster.start()
    try:
        dsn = cluster.dsn()
        apply_schema(dsn)
        with psycopg.connect(dsn, autocommit=True) as admin:
            admin.execute("update private.rate_limits set burst = 1000000, rate = 1000000,"
                          " per = '1 second' where action = 'chat_message'")  # fmt: skip
            admin.execute("update private.bot_budgets set tokens_per_day = 1000000000000"
                          " where scope = 'bot' and subject = '*'")  # fmt: skip
            users = seed_users(admin, "hot", 2 * CONNECTIONS + 1, ISSUER)
            # The one member's 8 threads, and 8 pairs of other members.
            one_threads = [(users[0], users[1 + i]) for i in range(CONNECTIONS)]
            pairs = [(users[1 + i], users[CONNECTIONS + 1 + i]) for i in range(CONNECTIONS)]
            for sender, other in one_threads + pairs:
                with admin.transaction():
                    admin.execute(SET_CALLER, as_user(sender, ISSUER))
                    admin.execute("select public.ensure_chat_thread(%s)", (other.mongo_id,))
            triggers = []
            for i in range(CONNECTIONS):
                space = f"#hot-{i}"
                make_space_with_bot(admin, space, f"@hot-bot-{i}", users[0].being)
                trigger = f"/hot-question-{i}"
                admin.execute(
                    "insert into public.intentions (id, name, type, owner_id, location_id, state)"
                    " values (%s, 'q', 'utterance', %s, %s, 'complete')",
                    (trigger, users[0].being, space),
                )
                triggers.append(trigger)
        one_member = [_message(s, thread_id(s, o)) for s, o in one_threads]
        many_members = [_message(s, thread_id(s, o)) for s, o in pairs]
        one_bot = [_budget("@hot-bot-0", t) for t in triggers]
        many_bots = [_budget(f"@hot-bot-{i}", t) for i, t in enumerate(triggers)]
        chat_one, chat_many = _side_by_side(dsn, one_member, many_members)
        bot_one, bot_many = _side_by_side(dsn, one_bot, many_bots)
        idle_ms, busy_ms = _redelivery(dsn, "#hot-0", users[0].being)
    finally:
        cluster.stop()
        shutil.rmtree(root, ignore_errors=True)

    def rates(values: list[float]) -> str:
        return " / ".join(f"{v:,.0f}" for v in values)

    return [
        Row("hot rows", f"insert_chat_message/s, {CONNECTIONS} connections, 8 members", rates(chat_many)),
        Row("hot rows", f"insert_chat_message/s, {CONNECTIONS} connections, one member", rates(chat_one)),
        Row("hot rows", "one member / 8 members", " / ".join(f"{a / b:.2f}" for a, b in zip(chat_one, chat_many, strict=True))),
        Row("hot rows", f"replies' budget calls/s (reserve + record), {CONNECTIONS} connections, 8 bots", rates(bot_many)),
        Row("hot rows", f"replies' budget calls/s, {CONNECTIONS} connections, one bot", rates(bot_one)),
        Row("hot rows", "one bot / 8 bots", " / ".join(f"{a / b:.2f}" for a, b in zip(bot_one, bot_many, strict=True))),
        Row("hot rows", "redelivery run, nothing due (10,000 records pending, not due)", f"{idle_ms:.1f} ms"),
        Row("hot rows", "redelivery run resending its limit (200 due)", f"{busy_ms:.1f} ms"),
    ]  # fmt: skip


if __name__ == "__main__":
    from benchmarks.report import print_table

    print_table(run())
