"""Reading a chat page through RLS, and insert_chat_message throughput.

1,000 threads and 100,000 messages on a private cluster; the newest 50
messages of a thread read as a participant (`authenticated`, through RLS)
versus as the table owner (no RLS), and insert_chat_message calls per second
as PostgREST would run them (role and claims set in the transaction).
"""

from __future__ import annotations

import json
import random
import shutil
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

            inserts, seconds = 0, 3.0
            deadline = time.perf_counter() + seconds
            while time.perf_counter() < deadline:
                thread_id, user_id = rng.choice(pairs)
                with api.transaction():
                    api.execute(
                        "select set_config('role', 'authenticated', true),"
                        " set_config('request.jwt.claims', %s, true)",
                        (_claims(user_id),),
                    )
                    api.execute(
                        "select public.insert_chat_message(%s, %s, %s)",
                        (thread_id, "benchmark", uuid.uuid4()),
                    )
                inserts += 1
        ratio = user_ms / owner_ms
        return [
            Row("chat page (50 newest of 100k)", "median as owner, no RLS", f"{owner_ms:.3f} ms"),
            Row("chat page (50 newest of 100k)", "median as participant, RLS", f"{user_ms:.3f} ms"),
            Row("chat page (50 newest of 100k)", "RLS / owner", f"{ratio:.2f}", "<= 1.5", ratio <= 1.5),
            Row("chat page (50 newest of 100k)", "plan uses history index", str(uses_index), "True",
                uses_index),
            Row("insert_chat_message", "calls per second, 1 connection",
                f"{inserts / seconds:.0f}/s"),
        ]  # fmt: skip
    finally:
        cluster.stop()
        shutil.rmtree(root, ignore_errors=True)
