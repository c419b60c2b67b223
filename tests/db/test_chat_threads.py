"""ensure_chat_thread and who may read a thread, run as PostgREST's roles."""

from __future__ import annotations

import json
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import psycopg
import pytest

from tests.support.database import acting_as, create_user, rpc

pytestmark = pytest.mark.db


def test_ensure_creates_the_sorted_thread_once(
    admin: psycopg.Connection[Any], api: psycopg.Connection[Any]
) -> None:
    # Given two linked users
    zed = create_user(admin, "zed")
    amy = create_user(admin, "amy")

    # When zed ensures a thread with amy, twice, and amy ensures it with zed
    first = rpc(api, zed.claims(), "ensure_chat_thread", _other_mongo_id="amy")
    again = rpc(api, zed.claims(), "ensure_chat_thread", _other_mongo_id="amy")
    from_amy = rpc(api, amy.claims(), "ensure_chat_thread", _other_mongo_id="zed")

    # Then there is one thread, its id the two mongo ids sorted
    assert first["thread_id"] == "amy__zed"
    assert first["user_a_mongo_id"] == "amy"
    assert first["user_a_supabase_id"] == str(amy.id)
    assert first["user_b_supabase_id"] == str(zed.id)
    assert again == first == from_amy
    assert admin.execute("select count(*) from public.chat_threads").fetchone() == (1,)


@pytest.mark.parametrize(
    ("caller_mongo", "other", "status", "code"),
    [
        ("me", "nobody", "PT404", "unknown_user"),
        ("me", "me", "PT400", "self_thread"),
        (None, "other", "PT403", "no_chat_identity"),
        ("me", " ", "PT400", "invalid_other_mongo_id"),
    ],
)
def test_ensure_refusals_are_distinct(
    admin: psycopg.Connection[Any],
    api: psycopg.Connection[Any],
    caller_mongo: str | None,
    other: str,
    status: str,
    code: str,
) -> None:
    # Given a caller (linked or not) and another linked user
    caller = create_user(admin, caller_mongo)
    create_user(admin, "other")

    # When the caller asks for a thread that cannot be made
    with pytest.raises(psycopg.Error) as refused:
        rpc(api, caller.claims(), "ensure_chat_thread", _other_mongo_id=other)

    # Then the error says which refusal it is, and nothing was written
    assert refused.value.sqlstate == status
    assert refused.value.diag.message_detail == code
    assert admin.execute("select count(*) from public.chat_threads").fetchone() == (0,)


def test_anon_cannot_call_ensure(
    admin: psycopg.Connection[Any], api: psycopg.Connection[Any]
) -> None:
    create_user(admin, "other")
    with pytest.raises(psycopg.errors.InsufficientPrivilege):
        rpc(api, None, "ensure_chat_thread", _other_mongo_id="other")


def test_only_participants_read_a_thread(
    admin: psycopg.Connection[Any], api: psycopg.Connection[Any]
) -> None:
    # Given a thread between amy and bob, and a stranger
    amy, bob = create_user(admin, "amy"), create_user(admin, "bob")
    stranger = create_user(admin, "eve")
    rpc(api, amy.claims(), "ensure_chat_thread", _other_mongo_id="bob")

    # When each of them lists threads
    def visible(claims: dict[str, Any]) -> list[str]:
        with acting_as(api, claims) as cur:
            return [
                r["thread_id"] for r in cur.execute("select thread_id from public.chat_threads")
            ]

    # Then the participants see it and the stranger does not
    assert visible(amy.claims()) == ["amy__bob"]
    assert visible(bob.claims()) == ["amy__bob"]
    assert visible(stranger.claims()) == []


def test_clients_cannot_write_threads_directly(
    admin: psycopg.Connection[Any], api: psycopg.Connection[Any]
) -> None:
    amy, bob = create_user(admin, "amy"), create_user(admin, "bob")
    with pytest.raises(psycopg.errors.InsufficientPrivilege), acting_as(api, amy.claims()) as cur:
        cur.execute(
            "insert into public.chat_threads (thread_id, user_a_mongo_id, user_b_mongo_id,"
            " user_a_supabase_id, user_b_supabase_id) values ('amy__bob', 'amy', 'bob', %s, %s)",
            (amy.id, bob.id),
        )


def test_link_comes_from_app_metadata_not_user_metadata(
    admin: psycopg.Connection[Any], api: psycopg.Connection[Any]
) -> None:
    # Given a user who wrote a mongo id into their own user_metadata
    forger = create_user(admin, None)
    admin.execute(
        "update auth.users set raw_user_meta_data = %s where id = %s",
        (json.dumps({"mongo_user_id": "victim"}), forger.id),
    )
    create_user(admin, "other")

    # Then they have no chat identity
    with pytest.raises(psycopg.Error) as refused:
        rpc(api, forger.claims(), "ensure_chat_thread", _other_mongo_id="other")
    assert refused.value.diag.message_detail == "no_chat_identity"

    # And when the service sets app_metadata, the link follows it
    admin.execute(
        "update auth.users set raw_app_meta_data = %s where id = %s",
        (json.dumps({"mongo_user_id": "forger"}), forger.id),
    )
    thread = rpc(api, forger.claims(), "ensure_chat_thread", _other_mongo_id="other")
    assert thread["thread_id"] == "forger__other"


def test_fifty_parallel_ensures_give_one_thread(
    admin: psycopg.Connection[Any], authenticator_dsn: str
) -> None:
    # Given two linked users
    amy, bob = create_user(admin, "amy"), create_user(admin, "bob")

    # When 50 connections ensure their thread at once, from both sides
    def ensure(i: int) -> str:
        caller, other = (amy, "bob") if i % 2 else (bob, "amy")
        with psycopg.connect(authenticator_dsn, autocommit=True) as conn:
            return str(
                rpc(conn, caller.claims(), "ensure_chat_thread", _other_mongo_id=other)["thread_id"]
            )

    with ThreadPoolExecutor(max_workers=50) as pool:
        ids = set(pool.map(ensure, range(50)))

    # Then every caller got the same thread and only one exists
    assert ids == {"amy__bob"}
    assert admin.execute("select count(*) from public.chat_threads").fetchone() == (1,)
