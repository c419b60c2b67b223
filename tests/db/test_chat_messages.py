"""insert_chat_message (both signatures), message RLS and idempotent retries."""

from __future__ import annotations

import uuid
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import psycopg
import pytest

from tests.support.database import User, acting_as, create_user, full_refusal, rpc

pytestmark = pytest.mark.db


@pytest.fixture
def pair(admin: psycopg.Connection[Any], api: psycopg.Connection[Any]) -> tuple[User, User, str]:
    amy, bob = create_user(admin, "amy"), create_user(admin, "bob")
    thread = rpc(api, amy.claims(), "ensure_chat_thread", _other_mongo_id="bob")
    return amy, bob, str(thread["thread_id"])


def test_sender_and_recipient_come_from_the_thread(
    admin: psycopg.Connection[Any], api: psycopg.Connection[Any], pair: tuple[User, User, str]
) -> None:
    _amy, bob, thread_id = pair

    # When bob sends a padded message
    row = rpc(api, bob.claims(), "insert_chat_message", _thread_id=thread_id, _body="  hi amy \n")

    # Then the stored row names bob as sender and amy as recipient, body trimmed
    assert row["sender_supabase_id"] == str(bob.id)
    assert row["sender_mongo_id"] == "bob"
    assert row["recipient_mongo_id"] == "amy"
    assert row["body"] == "hi amy"
    assert row["replayed"] is False
    last = admin.execute(
        "select last_message_at = %s::timestamptz from public.chat_threads", (row["created_at"],)
    ).fetchone()
    assert last == (True,)


def test_a_stranger_cannot_post_or_read(
    admin: psycopg.Connection[Any], api: psycopg.Connection[Any], pair: tuple[User, User, str]
) -> None:
    amy, _, thread_id = pair
    eve = create_user(admin, "eve")
    rpc(api, amy.claims(), "insert_chat_message", _thread_id=thread_id, _body="secret")

    # When eve posts into the thread she is refused exactly as for a thread
    # that does not exist, with either signature: she cannot tell that amy and bob talk
    def post(thread: str) -> Any:
        return rpc(api, eve.claims(), "insert_chat_message", _thread_id=thread, _body="hello")

    def post_as_seed(thread: str) -> Any:
        return rpc(api, eve.claims(), "insert_chat_message", _thread_id=thread,
                   _sender_mongo_id="eve", _recipient_mongo_id="bob", _body="hello")  # fmt: skip

    for send in (post, post_as_seed):
        refused = full_refusal(lambda: send(thread_id))  # noqa: B023
        assert refused == ("PT404", "unknown_thread", "no such thread")
        assert full_refusal(lambda: send("amy__nobody")) == refused  # noqa: B023

    # And she reads nothing, while amy reads the message
    with acting_as(api, eve.claims()) as cur:
        assert cur.execute("select * from public.chat_messages").fetchall() == []
    with acting_as(api, amy.claims()) as cur:
        assert [r["body"] for r in cur.execute("select body from public.chat_messages")] == [
            "secret"
        ]
    with acting_as(api, None) as cur, pytest.raises(psycopg.errors.InsufficientPrivilege):
        cur.execute("select * from public.chat_messages")


def test_a_participant_cannot_insert_directly_or_forge_a_sender(
    api: psycopg.Connection[Any], pair: tuple[User, User, str]
) -> None:
    amy, bob, thread_id = pair
    with pytest.raises(psycopg.errors.InsufficientPrivilege), acting_as(api, amy.claims()) as cur:
        cur.execute(
            "insert into public.chat_messages (thread_id, sender_supabase_id, sender_mongo_id,"
            " recipient_mongo_id, body) values (%s, %s, 'bob', 'amy', 'forged')",
            (thread_id, bob.id),
        )


@pytest.mark.parametrize(
    ("body", "ok"), [("", False), ("   ", False), ("x" * 4000, True), ("x" * 4001, False)]
)
def test_body_length_is_checked_after_trimming(
    api: psycopg.Connection[Any], pair: tuple[User, User, str], body: str, ok: bool
) -> None:
    amy, _, thread_id = pair
    if ok:
        assert (
            rpc(api, amy.claims(), "insert_chat_message", _thread_id=thread_id, _body=body)["body"]
            == body
        )
        return
    with pytest.raises(psycopg.Error) as refused:
        rpc(api, amy.claims(), "insert_chat_message", _thread_id=thread_id, _body=body)
    assert (refused.value.sqlstate, refused.value.diag.message_detail) == ("PT422", "invalid_body")


def test_unknown_thread_is_404(
    admin: psycopg.Connection[Any], api: psycopg.Connection[Any]
) -> None:
    amy = create_user(admin, "amy")
    with pytest.raises(psycopg.Error) as refused:
        rpc(api, amy.claims(), "insert_chat_message", _thread_id="amy__nobody", _body="hi")
    assert refused.value.sqlstate == "PT404"


def test_same_client_id_returns_the_first_row(
    admin: psycopg.Connection[Any], api: psycopg.Connection[Any], pair: tuple[User, User, str]
) -> None:
    amy, _, thread_id = pair
    client_id = str(uuid.uuid4())
    first = rpc(
        api,
        amy.claims(),
        "insert_chat_message",
        _thread_id=thread_id,
        _body="once",
        _client_id=client_id,
    )
    retry = rpc(
        api,
        amy.claims(),
        "insert_chat_message",
        _thread_id=thread_id,
        _body="once",
        _client_id=client_id,
    )

    assert retry["id"] == first["id"]
    assert (first["replayed"], retry["replayed"]) == (False, True)
    assert admin.execute("select count(*) from public.chat_messages").fetchone() == (1,)
    broadcasts = admin.execute("select count(*) from realtime.messages").fetchone()
    assert broadcasts == (1,)


def test_client_id_reused_in_another_thread_is_a_conflict(
    admin: psycopg.Connection[Any], api: psycopg.Connection[Any], pair: tuple[User, User, str]
) -> None:
    amy, _, thread_id = pair
    create_user(admin, "cat")
    other = rpc(api, amy.claims(), "ensure_chat_thread", _other_mongo_id="cat")["thread_id"]
    client_id = str(uuid.uuid4())
    rpc(
        api,
        amy.claims(),
        "insert_chat_message",
        _thread_id=thread_id,
        _body="a",
        _client_id=client_id,
    )
    with pytest.raises(psycopg.Error) as refused:
        rpc(
            api,
            amy.claims(),
            "insert_chat_message",
            _thread_id=other,
            _body="a",
            _client_id=client_id,
        )
    assert refused.value.sqlstate == "PT409"


def test_parallel_retries_with_one_client_id_store_one_message(
    admin: psycopg.Connection[Any], authenticator_dsn: str, pair: tuple[User, User, str]
) -> None:
    amy, _, thread_id = pair
    client_id = str(uuid.uuid4())

    def send(_: int) -> str:
        with psycopg.connect(authenticator_dsn, autocommit=True) as conn:
            row = rpc(
                conn,
                amy.claims(),
                "insert_chat_message",
                _thread_id=thread_id,
                _body="hi",
                _client_id=client_id,
            )
            return str(row["id"])

    with ThreadPoolExecutor(max_workers=20) as pool:
        ids = set(pool.map(send, range(20)))

    assert len(ids) == 1
    assert admin.execute("select count(*) from public.chat_messages").fetchone() == (1,)


def test_seed_signature_checks_the_ids_it_is_given(
    admin: psycopg.Connection[Any], api: psycopg.Connection[Any], pair: tuple[User, User, str]
) -> None:
    amy, _, thread_id = pair
    create_user(admin, "eve")

    # When amy claims to be bob, or writes to someone outside the thread, she is refused
    for sender, recipient in [("bob", "amy"), ("amy", "eve")]:
        with pytest.raises(psycopg.Error) as refused:
            rpc(
                api,
                amy.claims(),
                "insert_chat_message",
                _thread_id=thread_id,
                _sender_mongo_id=sender,
                _recipient_mongo_id=recipient,
                _body="hi",
            )
        assert refused.value.diag.message_detail == "sender_mismatch"

    # And with the true ids the message is stored as the seed's row shape
    row = rpc(
        api,
        amy.claims(),
        "insert_chat_message",
        _thread_id=thread_id,
        _sender_mongo_id="amy",
        _recipient_mongo_id="bob",
        _body="hi bob",
    )
    assert row["sender_supabase_id"] == str(amy.id)
    assert "replayed" not in row
