"""Reading a chat page through RLS, and what insert_chat_message costs.

1,000 threads and 100,000 messages on a private cluster; the newest 50
messages of a thread read as a participant (`authenticated`, through RLS)
versus as the table owner (no RLS), and insert_chat_message calls as
PostgREST would run them (role and claims set in the transaction), side by
side with and without the per-user rate limit (issue 28): the same data in
a copy of the database whose rate-limit trigger is dropped, rounds
alternating in a shuffled order, the ratio judged per round.
"""

from __future__ import annotations

import contextlib
import json
import random
import shutil
import statistics
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

import psycopg

from benchmarks.report import Row, median_ms
from infra.local.cluster import PgCluster, free_port
from infra.local.schema import apply_schema

THREADS = 1_000
MESSAGES_PER_THREAD = 100
PAGE = (
    "select * from public.chat_messages where thread_id = %s"
    " order by created_at desc, id desc limit 50"
)


def _load(conn: psycopg.Connection[Any]) -> list[tuple[str, str]]:
    """Creates 2 users per thread and the messages; returns (thread_id, user_id)."""
    conn.execute(
        "insert into auth.users (id, raw_app_meta_data)"
        " select gen_random_uuid(), jsonb_build_object('mongo_user_id', 'm' || lpad(n::text, 6, '0'))"
        " from generate_series(1, %s) n",
        (THREADS * 2,),
    )
    conn.execute(
        "insert into public.chat_threads (thread_id, user_a_mongo_id, user_b_mongo_id,"
        " user_a_supabase_id, user_b_supabase_id)"
        " select a.mongo_user_id || '__' || b.mongo_user_id, a.mongo_user_id, b.mongo_user_id,"
        "        a.user_id, b.user_id"
        " from generate_series(1, %s) n"
        " join public.chat_users a on a.mongo_user_id = 'm' || lpad((2 * n - 1)::text, 6, '0')"
        " join public.chat_users b on b.mongo_user_id = 'm' || lpad((2 * n)::text, 6, '0')",
        (THREADS,),
    )
    conn.execute("alter table public.chat_messages disable trigger chat_messages_broadcast")
    conn.execute(
        "insert into public.chat_messages (thread_id, sender_supabase_id, sender_mongo_id,"
        " recipient_mongo_id, body, created_at)"
        " select t.thread_id, t.user_a_supabase_id, t.user_a_mongo_id, t.user_b_mongo_id,"
        "        'message ' || i, now() - (i || ' seconds')::interval"
        " from public.chat_threads t, generate_series(1, %s) i",
        (MESSAGES_PER_THREAD,),
    )
    conn.execute("alter table public.chat_messages enable trigger chat_messages_broadcast")
    conn.execute("analyze")
    return [
        (str(r[0]), str(r[1]))
        for r in conn.execute("select thread_id, user_a_supabase_id from public.chat_threads")
    ]


def _claims(user_id: str) -> str:
    return json.dumps({"sub": user_id, "role": "authenticated", "aud": "authenticated"})


def run() -> list[Row]:
    root = Path(tempfile.mkdtemp(prefix="chat-bench-pg-"))
    cluster = PgCluster(root / "cluster", free_port())
    cluster.start()
    try:
        apply_schema(cluster.dsn())
        with psycopg.connect(cluster.dsn(), autocommit=True) as owner:
            pairs = _load(owner)
        rng = random.Random(7)
        sample = [rng.choice(pairs) for _ in range(2_000)]
        with (
            psycopg.connect(cluster.dsn(), autocommit=True) as owner,
            psycopg.connect(cluster.dsn(user="authenticator"), autocommit=True) as api,
        ):
            it_owner = iter(sample)
            it_user = iter(sample)

            # Both paths run PostgREST's request shape (a transaction that sets
            # the role and claims, then the query); only the role differs.
            def page(conn: psycopg.Connection[Any], role: str, thread_id: str, user: str) -> None:
                with conn.transaction():
                    conn.execute(
                        "select set_config('role', %s, true),"
                        " set_config('request.jwt.claims', %s, true)",
                        (role, _claims(user)),
                    )
                    assert len(conn.execute(PAGE, (thread_id,)).fetchall()) == 50

            def as_owner() -> None:
                page(owner, "postgres", *next(it_owner))

            def as_user() -> None:
                page(api, "authenticated", *next(it_user))

            for _ in range(100):  # warm both paths
                as_owner()
                as_user()
            owner_ms = median_ms(as_owner, 800)
            user_ms = median_ms(as_user, 800)

            thread_id, user_id = sample[0]
            with api.transaction(force_rollback=True):
                api.execute(
                    "select set_config('role', 'authenticated', true),"
                    " set_config('request.jwt.claims', %s, true)",
                    (_claims(user_id),),
                )
                plan = "\n".join(
                    r[0] for r in api.execute("explain " + PAGE, (thread_id,)).fetchall()
                )
            uses_index = "chat_messages_thread_history_idx" in plan

        ratio = user_ms / owner_ms
        inserts = _insert_with_and_without_limits(cluster, rng)
        return [
            Row("chat page (50 newest of 100k)", "median as owner, no RLS", f"{owner_ms:.3f} ms"),
            Row("chat page (50 newest of 100k)", "median as participant, RLS", f"{user_ms:.3f} ms"),
            Row("chat page (50 newest of 100k)", "RLS / owner", f"{ratio:.2f}", "<= 1.5", ratio <= 1.5),
            Row("chat page (50 newest of 100k)", "plan uses history index", str(uses_index), "True",
                uses_index),
            *inserts,
        ]  # fmt: skip
    finally:
        cluster.stop()
        shutil.rmtree(root, ignore_errors=True)


ROUNDS = 10
CALLS_PER_ROUND = 400
WITHOUT_LIMITS = "chat_without_limits"
# As PostgREST runs requests (a transaction and its commit per call), and the
# database's own work alone (a round's calls in one transaction: no call
# waits for the disk, whose flush is most of a call's time on this machine,
# and most of its noise).
PER_CALL, PER_ROUND = "a commit per call", "a round in one transaction"


def _senders(conn: psycopg.Connection[Any]) -> list[tuple[str, str]]:
    """(thread_id, user_id) for both participants of every thread."""
    return [
        (str(r[0]), str(r[1]))
        for r in conn.execute(
            "select thread_id, user_a_supabase_id from public.chat_threads"
            " union all select thread_id, user_b_supabase_id from public.chat_threads"
        )
    ]


def _insert_with_and_without_limits(cluster: PgCluster, rng: random.Random) -> list[Row]:
    """insert_chat_message with the rate limit (the schema as migrated) and
    without it (a copy of the same database, its rate-limit trigger dropped:
    the migration changes nothing else on this path), and an A/A variant (the
    copy again, on its own connection) that shows the run's noise.

    The variants take turns call by call, in a shuffled order, so a slow
    phase of the machine (other processes, a disk flush) falls on all of
    them alike; each is summed up by its median call. A sender posts once in
    ~667 calls of its variant, well within the default limit: every call is
    a normal, accepted write (a refused one fails the benchmark)."""
    with psycopg.connect(cluster.dsn("template1"), autocommit=True) as conn:
        conn.execute(f"create database {WITHOUT_LIMITS} template postgres")
    with psycopg.connect(cluster.dsn(WITHOUT_LIMITS), autocommit=True) as conn:
        conn.execute("drop trigger chat_messages_rate_limit on public.chat_messages")
        senders = _senders(conn)
    variants = {"with": "postgres", "without": WITHOUT_LIMITS, "A/A": WITHOUT_LIMITS}
    # Disjoint threads per variant: "without" and "A/A" share a database, and
    # a round's open transaction holds the rows of the threads it wrote to.
    threads = sorted({thread for thread, _ in senders})
    rng.shuffle(threads)
    group = {thread: i % len(variants) for i, thread in enumerate(threads)}
    mine = {name: [s for s in senders if group[s[0]] == i] for i, name in enumerate(variants)}
    for own in mine.values():
        rng.shuffle(own)
    samples: dict[tuple[str, str], list[float]] = {
        (mode, name): [] for mode in (PER_CALL, PER_ROUND) for name in variants
    }
    turns = dict.fromkeys(variants, 0)
    with contextlib.ExitStack() as stack:
        apis = {
            name: stack.enter_context(
                psycopg.connect(cluster.dsn(db, user="authenticator"), autocommit=True)
            )
            for name, db in variants.items()
        }

        def call(name: str) -> float:
            api, own = apis[name], mine[name]
            thread_id, user_id = own[turns[name] % len(own)]
            turns[name] += 1
            start = time.perf_counter()
            with api.transaction():  # a savepoint inside a round's transaction
                api.execute(
                    "select set_config('role', 'authenticated', true),"
                    " set_config('request.jwt.claims', %s, true)",
                    (_claims(user_id),),
                )
                api.execute(
                    "select public.insert_chat_message(%s, %s, %s)",
                    (thread_id, "benchmark", uuid.uuid4()),
                )
            return time.perf_counter() - start

        for name in variants:
            for _ in range(100):  # warm each
                call(name)
        for _ in range(ROUNDS):
            for mode in (PER_CALL, PER_ROUND):
                with contextlib.ExitStack() as rounds:
                    if mode == PER_ROUND:
                        for api in apis.values():
                            rounds.enter_context(api.transaction())
                    for _ in range(CALLS_PER_ROUND):
                        order = list(variants)
                        rng.shuffle(order)
                        for name in order:
                            samples[mode, name].append(call(name))
    rows: list[Row] = []
    for mode in (PER_CALL, PER_ROUND):
        ms = {name: statistics.median(samples[mode, name]) * 1000 for name in variants}
        ratio, noise = ms["with"] / ms["without"], ms["A/A"] / ms["without"]
        goal, met = ("<= 1.25", ratio <= 1.25) if mode == PER_CALL else ("", None)
        rows += [
            Row("insert_chat_message", f"{mode}: median call without the limit",
                f"{ms['without']:.3f} ms"),
            Row("insert_chat_message", f"{mode}: median call with the limit", f"{ms['with']:.3f} ms"),
            Row("insert_chat_message", f"{mode}: with / without", f"{ratio:.2f}", goal, met),
            Row("insert_chat_message", f"{mode}: A/A (the run's noise)", f"{noise:.2f}"),
        ]  # fmt: skip
    return rows


if __name__ == "__main__":
    from benchmarks.report import print_table

    print_table(run())
