"""chat_unread_counts for one user with 1,000 threads and 100,000 messages.

One user ("me") has a thread with each of 1,000 others; each thread holds
100 messages, every other one from the other participant (50,000 that can
be unread for me). Timed as PostgREST runs the RPC (a transaction that sets
the role and claims, then the call), in two read states: nothing read
(50,000 unread) and the usual one (each thread read up to its 90th
message: 5 unread each). Side by side, in alternating rounds, with and
without chat_messages_unread_idx (dropped inside a transaction that is
rolled back), so the ratio is what the index buys; the history index
(thread_id, created_at desc, id desc) is there either way. What the index
costs each write: insert_chat_message calls per second (durable commits,
one connection) with and without it, in alternating 2-second phases.

Command: `uv run python -m benchmarks.chat_unread` (also part of `make bench`).
"""

from __future__ import annotations

import json
import statistics
import time
from typing import Any

import psycopg

from benchmarks.database import schema_cluster
from benchmarks.report import Row

THREADS = 1_000
MESSAGES_PER_THREAD = 100
READ_UP_TO = 90  # the usual read state: each thread read up to this message
ROUNDS, SAMPLES = 4, 10
INDEX = "chat_messages_unread_idx"
CALL = "select * from public.chat_unread_counts()"


def _load(conn: psycopg.Connection[Any]) -> str:
    """Creates me, the others, the threads and the messages; returns my id."""
    conn.execute(
        "insert into auth.users (id, raw_app_meta_data)"
        " select gen_random_uuid(), jsonb_build_object('mongo_user_id', 'o' || lpad(n::text, 5, '0'))"
        " from generate_series(1, %s) n"
        ' union all select gen_random_uuid(), \'{"mongo_user_id": "me"}\'',
        (THREADS,),
    )
    me = str(conn.execute("select user_id from public.chat_users where mongo_user_id = 'me'")
             .fetchone()[0])  # type: ignore[index]  # fmt: skip
    # 'me' sorts before 'o...': I am user a of every thread.
    conn.execute(
        "insert into public.chat_threads (thread_id, user_a_mongo_id, user_b_mongo_id,"
        " user_a_supabase_id, user_b_supabase_id)"
        " select 'me__' || o.mongo_user_id, 'me', o.mongo_user_id, %s, o.user_id"
        " from public.chat_users o where o.mongo_user_id <> 'me'",
        (me,),
    )
    conn.execute("alter table public.chat_messages disable trigger chat_messages_broadcast")
    conn.execute(
        "insert into public.chat_messages (thread_id, sender_supabase_id, sender_mongo_id,"
        " recipient_mongo_id, body, created_at)"
        " select t.thread_id,"
        "   case when i %% 2 = 0 then t.user_a_supabase_id else t.user_b_supabase_id end,"
        "   case when i %% 2 = 0 then 'me' else t.user_b_mongo_id end,"
        "   case when i %% 2 = 0 then t.user_b_mongo_id else 'me' end,"
        "   'message ' || i,"
        "   now() - (abs(hashtext(t.thread_id)) %% 86400 || ' seconds')::interval + (i || ' ms')::interval"
        " from public.chat_threads t, generate_series(1, %s) i",
        (MESSAGES_PER_THREAD,),
    )
    conn.execute("alter table public.chat_messages enable trigger chat_messages_broadcast")
    conn.execute(
        "update public.chat_threads t set last_message_at = m.last"
        " from (select thread_id, max(created_at) last from public.chat_messages group by 1) m"
        " where m.thread_id = t.thread_id"
    )
    conn.execute("vacuum analyze")
    return me


def _read_up_to(conn: psycopg.Connection[Any], me: str, position: int) -> None:
    conn.execute("alter table public.chat_read_marks disable trigger chat_read_marks_broadcast")
    conn.execute(
        "insert into public.chat_read_marks (thread_id, user_id, message_id, message_created_at)"
        " select thread_id, %s, id, created_at from ("
        "   select m.*, row_number() over (partition by m.thread_id"
        "                                   order by m.created_at, m.id) n"
        "   from public.chat_messages m) m where n = %s",
        (me, position),
    )
    conn.execute("alter table public.chat_read_marks enable trigger chat_read_marks_broadcast")
    conn.execute("vacuum analyze")


def _time(conn: psycopg.Connection[Any], claims: str, unread: int, drop_index: bool) -> list[float]:
    """SAMPLES calls, each as PostgREST runs one; with drop_index, inside a
    transaction that dropped the index first (rolled back afterwards)."""
    samples = []
    with conn.transaction(force_rollback=True):
        if drop_index:
            conn.execute(f"drop index public.{INDEX}")
        for _ in range(SAMPLES):
            start = time.perf_counter()
            with conn.transaction():
                conn.execute(
                    "select set_config('role', 'authenticated', true),"
                    " set_config('request.jwt.claims', %s, true)",
                    (claims,),
                )
                rows = conn.execute(CALL).fetchall()
                conn.execute("reset role")
            samples.append((time.perf_counter() - start) * 1000)
            assert len(rows) == THREADS
            assert sum(r[2] for r in rows) == unread, sum(r[2] for r in rows)
    return samples


def _side_by_side(conn: psycopg.Connection[Any], claims: str, unread: int) -> tuple[float, float]:
    with_index: list[float] = []
    without: list[float] = []
    _time(conn, claims, unread, drop_index=False)  # warm up
    for _ in range(ROUNDS):
        with_index += _time(conn, claims, unread, drop_index=False)
        without += _time(conn, claims, unread, drop_index=True)
    return statistics.median(with_index), statistics.median(without)


def _inserts_per_second(conn: psycopg.Connection[Any], senders: list[tuple[str, str]]) -> float:
    """insert_chat_message as PostgREST runs it, one commit each, for 2 s;
    each call by the next of the 1,000 other participants (each writes once
    in 1,000 calls: well within the per-user rate limit)."""
    calls, deadline = 0, time.perf_counter() + 2.0
    while time.perf_counter() < deadline:
        thread_id, sender = senders[calls % len(senders)]
        with conn.transaction():
            conn.execute(
                "select set_config('role', 'authenticated', true),"
                " set_config('request.jwt.claims', %s, true)",
                (json.dumps({"sub": sender, "role": "authenticated"}),),
            )
            conn.execute(
                "select public.insert_chat_message(%s, 'benchmark', gen_random_uuid())",
                (thread_id,),
            )
            conn.execute("reset role")
        calls += 1
    return calls / 2.0


def _write_cost(conn: psycopg.Connection[Any]) -> tuple[float, float]:
    senders = [(str(r[0]), str(r[1])) for r in conn.execute(
        "select thread_id, user_b_supabase_id from public.chat_threads")]  # fmt: skip
    definition = conn.execute(
        "select pg_get_indexdef(%s::regclass)", (f"public.{INDEX}",)
    ).fetchone()
    assert definition is not None
    with_index: list[float] = []
    without: list[float] = []
    for _ in range(ROUNDS // 2):
        with_index.append(_inserts_per_second(conn, senders))
        conn.execute(f"drop index public.{INDEX}")
        without.append(_inserts_per_second(conn, senders))
        conn.execute(definition[0])
    return statistics.median(with_index), statistics.median(without)


def run() -> list[Row]:
    with schema_cluster("chat-unread-bench-") as cluster:
        with psycopg.connect(cluster.dsn(), autocommit=True) as owner:
            me = _load(owner)
            claims = json.dumps({"sub": me, "role": "authenticated", "aud": "authenticated"})
            all_unread = THREADS * MESSAGES_PER_THREAD // 2
            nothing_read = _side_by_side(owner, claims, all_unread)
            _read_up_to(owner, me, READ_UP_TO)
            usual = _side_by_side(owner, claims, THREADS * (MESSAGES_PER_THREAD - READ_UP_TO) // 2)
            inserts = _write_cost(owner)
        name = "chat_unread_counts (1 user, 1,000 threads, 100k messages)"
        rows = []
        for label, (ours, baseline) in (("5 unread per thread", usual),
                                        ("nothing read, 50k unread", nothing_read)):  # fmt: skip
            rows += [
                Row(name, f"median, {label}", f"{ours:.1f} ms"),
                Row(name, f"median without {INDEX}, {label}", f"{baseline:.1f} ms"),
                Row(name, f"with / without the index, {label}", f"{ours / baseline:.2f}"),
            ]
        writes = "insert_chat_message, 1 connection"
        return [
            *rows,
            Row(writes, f"calls per second with {INDEX}", f"{inserts[0]:.0f}/s"),
            Row(writes, f"calls per second without {INDEX}", f"{inserts[1]:.0f}/s"),
            Row(writes, "with / without the index", f"{inserts[0] / inserts[1]:.2f}"),
        ]


if __name__ == "__main__":
    from benchmarks.report import print_table

    print_table(run())
