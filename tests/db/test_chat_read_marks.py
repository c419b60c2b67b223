"""Read receipts and unread counts (migration 20261203000400):
mark_chat_thread_read, its READ broadcast, the marks' RLS and
chat_unread_counts, as anon, as a participant and as a stranger."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from typing import Any

import psycopg
import pytest

from tests.support.database import (
    User,
    acting_as,
    create_user,
    full_refusal,
    refusal,
    rpc,
    rpc_rows,
)

pytestmark = pytest.mark.db


def send(api: psycopg.Connection[Any], user: User, body: str, thread: str = "amy__bob") -> str:
    return str(rpc(api, user.claims(), "insert_chat_message", _thread_id=thread, _body=body)["id"])


def mark(
    api: psycopg.Connection[Any], user: User, message_id: str, thread: str = "amy__bob"
) -> Any:
    return rpc(
        api, user.claims(), "mark_chat_thread_read", _thread_id=thread, _message_id=message_id
    )


def unread(api: psycopg.Connection[Any], user: User) -> dict[str, int]:
    return {
        r["thread_id"]: r["unread_count"]
        for r in rpc_rows(api, user.claims(), "chat_unread_counts")
    }


def test_unread_counts_the_other_participants_messages_after_my_mark(
    api: psycopg.Connection[Any], trio: tuple[User, User, User]
) -> None:
    amy, bob, _ = trio
    assert unread(api, amy) == {"amy__bob": 0}

    # When bob writes three messages and amy one
    first = send(api, bob, "one")
    send(api, bob, "two")
    third = send(api, bob, "three")
    mine = send(api, amy, "mine")

    # Then amy has three unread (her own never count), bob one
    assert unread(api, amy) == {"amy__bob": 3}
    assert unread(api, bob) == {"amy__bob": 1}

    # When amy reads up to the first, then up to her own (after all of bob's)
    assert mark(api, amy, first)["unread_count"] == 2
    assert unread(api, amy) == {"amy__bob": 2}
    assert mark(api, amy, mine)["unread_count"] == 0
    assert unread(api, amy) == {"amy__bob": 0}

    # And bob writes again: one unread for amy
    send(api, bob, "four")
    assert unread(api, amy) == {"amy__bob": 1}
    listed = rpc_rows(api, amy.claims(), "chat_unread_counts")[0]
    assert listed["other_mongo_id"] == "bob"
    assert listed["last_read_message_id"] == mine
    assert third != mine


def test_a_mark_never_moves_back_and_is_only_the_callers(
    admin: psycopg.Connection[Any], api: psycopg.Connection[Any], trio: tuple[User, User, User]
) -> None:
    amy, bob, _ = trio
    older, newer = send(api, bob, "older"), send(api, bob, "newer")

    moved = mark(api, amy, newer)
    back = mark(api, amy, older)
    again = mark(api, amy, newer)

    assert (moved["moved"], moved["message_id"]) == (True, newer)
    assert (back["moved"], back["message_id"], back["unread_count"]) == (False, newer, 0)
    assert (again["moved"], again["message_id"]) == (False, newer)
    assert back["read_at"] == moved["read_at"]
    # Bob's read state is untouched by amy's marks
    assert admin.execute(
        "select user_id::text, message_id::text from public.chat_read_marks"
    ).fetchall() == [(str(amy.id), newer)]


def test_concurrent_marks_end_at_the_newest(
    admin: psycopg.Connection[Any], authenticator_dsn: str, api: psycopg.Connection[Any],
    trio: tuple[User, User, User],
) -> None:  # fmt: skip
    amy, bob, _ = trio
    ids = [send(api, bob, f"m{i}") for i in range(12)]

    def mark_one(message_id: str) -> None:
        with psycopg.connect(authenticator_dsn, autocommit=True) as conn:
            mark(conn, amy, message_id)

    with ThreadPoolExecutor(max_workers=6) as pool:
        list(pool.map(mark_one, reversed(ids)))

    assert admin.execute("select message_id::text from public.chat_read_marks").fetchall() == [
        (ids[-1],)
    ]


def test_the_other_participant_learns_a_moved_mark_on_the_thread_channel(
    admin: psycopg.Connection[Any], api: psycopg.Connection[Any], trio: tuple[User, User, User]
) -> None:
    amy, bob, _ = trio
    older, newer = send(api, amy, "older"), send(api, amy, "newer")

    mark(api, bob, newer)
    mark(api, bob, older)  # does not move: nothing sent

    rows = admin.execute(
        "select topic, event, private, payload from realtime.messages where event <> 'INSERT'"
    ).fetchall()
    assert len(rows) == 1
    topic, event, private, payload = rows[0]
    assert (topic, event, private) == ("chat:amy__bob", "READ", True)
    assert payload["thread_id"] == "amy__bob"
    assert (payload["reader_id"], payload["reader_mongo_id"]) == (str(bob.id), "bob")
    assert payload["message_id"] == newer


def test_a_stranger_anon_and_wrong_messages_are_refused(
    admin: psycopg.Connection[Any], api: psycopg.Connection[Any], trio: tuple[User, User, User]
) -> None:
    amy, bob, eve = trio
    message = send(api, bob, "for amy")
    rpc(api, eve.claims(), "ensure_chat_thread", _other_mongo_id="bob")
    elsewhere = send(api, bob, "for eve", thread="bob__eve")
    unlinked = create_user(admin, None)

    # A stranger is told what a missing thread tells: nothing about amy and bob
    assert full_refusal(lambda: mark(api, eve, message)) == (
        "PT404", "unknown_thread", "no such thread",
    )  # fmt: skip
    assert full_refusal(lambda: mark(api, eve, message, thread="amy__nobody")) == full_refusal(
        lambda: mark(api, eve, message)
    )
    assert refusal(lambda: mark(api, amy, message, thread="amy__nobody")) == (
        "PT404",
        "unknown_thread",
    )
    # A message of another thread (one amy cannot even read) is not in this one
    assert refusal(lambda: mark(api, amy, elsewhere)) == ("PT404", "unknown_message")
    assert refusal(lambda: mark(api, amy, "00000000-0000-4000-8000-000000000000")) == (
        "PT404", "unknown_message",
    )  # fmt: skip
    assert refusal(lambda: mark(api, unlinked, message)) == ("PT403", "no_chat_identity")
    with pytest.raises(psycopg.errors.InsufficientPrivilege):
        rpc(api, None, "mark_chat_thread_read", _thread_id="amy__bob", _message_id=message)
    with pytest.raises(psycopg.errors.InsufficientPrivilege):
        rpc_rows(api, None, "chat_unread_counts")
    assert refusal(lambda: rpc_rows(api, unlinked.claims(), "chat_unread_counts")) == (
        "PT403", "no_chat_identity",
    )  # fmt: skip
    # Eve's counts name only her own thread
    assert unread(api, eve) == {"bob__eve": 1}
    assert admin.execute("select count(*) from public.chat_read_marks").fetchone() == (0,)


def test_participants_read_both_marks_strangers_none_and_nobody_writes_them(
    api: psycopg.Connection[Any], trio: tuple[User, User, User]
) -> None:
    amy, bob, eve = trio
    message = send(api, amy, "hello")
    mark(api, bob, message)
    mark(api, amy, message)

    for user in (amy, bob):
        with acting_as(api, user.claims()) as cur:
            rows = cur.execute("select user_id from public.chat_read_marks").fetchall()
        assert sorted(str(r["user_id"]) for r in rows) == sorted([str(amy.id), str(bob.id)])
    with acting_as(api, eve.claims()) as cur:
        assert cur.execute("select * from public.chat_read_marks").fetchall() == []
    with acting_as(api, None) as cur, pytest.raises(psycopg.errors.InsufficientPrivilege):
        cur.execute("select * from public.chat_read_marks")
    # Nobody moves a mark but through the RPC: not amy's own, not bob's
    for statement in (
        "update public.chat_read_marks set message_created_at = 'infinity'",
        "delete from public.chat_read_marks",
        "insert into public.chat_read_marks (thread_id, user_id, message_id, message_created_at)"
        " values ('amy__bob', auth.uid(), gen_random_uuid(), now())",
    ):
        with (
            pytest.raises(psycopg.errors.InsufficientPrivilege),
            acting_as(api, amy.claims()) as cur,
        ):
            cur.execute(statement)


def test_counts_cover_every_thread_of_the_caller_in_one_call(
    admin: psycopg.Connection[Any], api: psycopg.Connection[Any]
) -> None:
    # Given amy with 30 threads, each opened by the other, who wrote i
    # messages there (the first through the RPC, the rest as the table's
    # owner: a sender's rate is not what is tested)
    amy = create_user(admin, "amy")
    expected = {}
    for i in range(30):
        other = create_user(admin, f"u{i:02d}")
        thread = rpc(api, other.claims(), "ensure_chat_thread", _other_mongo_id="amy")
        if i:
            send(api, other, "first", thread=thread["thread_id"])
        admin.execute(
            "insert into public.chat_messages (thread_id, sender_supabase_id, sender_mongo_id,"
            " recipient_mongo_id, body, created_at) select %s, %s, %s, 'amy', 'm' || n,"
            " now() + n * interval '1 ms' from generate_series(2, %s) n",
            (thread["thread_id"], other.id, other.mongo_id, i),
        )
        expected[thread["thread_id"]] = i

    # Then one call returns every thread with its count, newest activity first
    rows = rpc_rows(api, amy.claims(), "chat_unread_counts")
    assert {r["thread_id"]: r["unread_count"] for r in rows} == expected
    assert [r["unread_count"] for r in rows if r["unread_count"]] == list(range(29, 0, -1))
