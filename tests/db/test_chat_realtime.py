"""Broadcast from the database and Realtime Authorization on chat:<thread_id>."""

from __future__ import annotations

from typing import Any

import psycopg
import pytest

from tests.support.database import User, create_user, realtime_reads, realtime_writes, rpc

pytestmark = pytest.mark.db


@pytest.fixture
def pair(admin: psycopg.Connection[Any], api: psycopg.Connection[Any]) -> tuple[User, User, str]:
    amy, bob = create_user(admin, "amy"), create_user(admin, "bob")
    thread = rpc(api, amy.claims(), "ensure_chat_thread", _other_mongo_id="bob")
    return amy, bob, str(thread["thread_id"])


def test_a_new_message_is_broadcast_on_its_thread_topic(
    admin: psycopg.Connection[Any], api: psycopg.Connection[Any], pair: tuple[User, User, str]
) -> None:
    amy, _, thread_id = pair
    row = rpc(api, amy.claims(), "insert_chat_message", _thread_id=thread_id, _body="hello")

    broadcast = admin.execute(
        "select topic, event, extension, private, payload from realtime.messages"
    ).fetchall()
    assert len(broadcast) == 1
    topic, event, extension, private, payload = broadcast[0]
    assert (topic, event, extension, private) == (f"chat:{thread_id}", "INSERT", "broadcast", True)
    assert payload["operation"] == "INSERT"
    assert (payload["schema"], payload["table"]) == ("public", "chat_messages")
    assert payload["old_record"] is None
    assert payload["record"]["id"] == row["id"]
    assert payload["record"]["body"] == "hello"


def test_only_participants_join_and_nobody_sends_on_the_thread_channel(
    admin: psycopg.Connection[Any],
    superuser: psycopg.Connection[Any],
    api: psycopg.Connection[Any],
    pair: tuple[User, User, str],
) -> None:
    amy, bob, thread_id = pair
    eve = create_user(admin, "eve")
    topic = f"chat:{thread_id}"

    assert realtime_reads(api, superuser, amy.claims(), topic)
    assert realtime_reads(api, superuser, bob.claims(), topic)
    assert not realtime_reads(api, superuser, eve.claims(), topic)
    # Only the database broadcasts there: a participant could otherwise forge
    # its INSERT event naming the other participant as sender.
    assert not realtime_writes(api, amy.claims(), topic, event="INSERT")
    assert not realtime_writes(api, amy.claims(), topic)
    assert not realtime_writes(api, eve.claims(), topic)
    # A participant of one thread gets nothing on a made-up topic
    assert not realtime_reads(api, superuser, amy.claims(), "chat:amy__eve")
    assert not realtime_writes(api, amy.claims(), "room:anything")
