"""Realtime Authorization for typing indicators (migration 20261203000400):
typing:<thread_id> is its two participants', typing:<space id> its members';
nobody else joins, sends or listens, and the database never broadcasts
there. Checked as Realtime checks them: a probe row selected back as the
user (read), an insert as the user (write)."""

from __future__ import annotations

from typing import Any

import psycopg
import pytest

from tests.support.database import (
    SERVICE_CLAIMS,
    User,
    acting_as,
    realtime_reads,
    realtime_writes,
    rpc,
)
from tests.support.spaces import add_being, make_world

pytestmark = pytest.mark.db


def _space_stored_before_the_rule(admin: psycopg.Connection[Any], space_id: str) -> None:
    """A space whose id has '__', as a project could hold one before
    20261203000710 (its trigger lifted for this one insert)."""
    with admin.transaction():
        admin.execute("alter table public.beings disable trigger beings_space_id_not_thread_like")
        add_being(admin, space_id, type_="space")
        admin.execute("alter table public.beings enable trigger beings_space_id_not_thread_like")


def test_the_two_participants_send_and_receive_on_their_threads_typing_topic(
    superuser: psycopg.Connection[Any], api: psycopg.Connection[Any], trio: tuple[User, User, User]
) -> None:
    amy, bob, eve = trio
    for user in (amy, bob):
        assert realtime_reads(api, superuser, user.claims(), "typing:amy__bob")
        assert realtime_writes(api, user.claims(), "typing:amy__bob")
    # A stranger (signed in), and the anon key, can neither listen nor send
    for claims in (eve.claims(), None):
        assert not realtime_reads(api, superuser, claims, "typing:amy__bob")
        assert not realtime_writes(api, claims, "typing:amy__bob")
    # Broadcast only: no presence on a typing topic
    assert not realtime_writes(api, amy.claims(), "typing:amy__bob", extension="presence")
    assert not realtime_reads(api, superuser, amy.claims(), "typing:amy__bob", extension="presence")


def test_a_typing_right_gives_no_right_on_the_thread_channel_or_other_threads(
    admin: psycopg.Connection[Any],
    superuser: psycopg.Connection[Any],
    api: psycopg.Connection[Any],
    trio: tuple[User, User, User],
) -> None:
    amy, _, eve = trio
    rpc(api, eve.claims(), "ensure_chat_thread", _other_mongo_id="bob")
    # chat:<thread_id> stays the database's: no client sends there, whatever the event
    assert not realtime_writes(api, amy.claims(), "chat:amy__bob", event="INSERT")
    assert not realtime_writes(api, amy.claims(), "chat:amy__bob", event="typing")
    # A participant of one thread is nobody on another's typing topic
    assert not realtime_writes(api, amy.claims(), "typing:bob__eve")
    assert not realtime_reads(api, superuser, amy.claims(), "typing:bob__eve")
    # Names are exact: no prefix or LIKE pattern reaches a thread
    for topic in ("typing:amy__bob2", "typing:amy%", "typing:amy__bo_", "typing:", "typing"):
        assert not realtime_writes(api, amy.claims(), topic), topic


def test_members_of_a_space_type_on_its_topic_and_nobody_else(
    admin: psycopg.Connection[Any],
    superuser: psycopg.Connection[Any],
    api: psycopg.Connection[Any],
) -> None:
    world = make_world(admin)  # owner owns #lounge, guest is in it, stranger is in #attic

    for member in (world.owner, world.guest):
        assert realtime_reads(api, superuser, member.claims(), "typing:#lounge")
        assert realtime_writes(api, member.claims(), "typing:#lounge")
    assert not realtime_reads(api, superuser, world.stranger.claims(), "typing:#lounge")
    assert not realtime_writes(api, world.stranger.claims(), "typing:#lounge")
    assert realtime_writes(api, world.stranger.claims(), "typing:#attic")
    assert not realtime_writes(api, None, "typing:#lounge")
    # The space's own topic still carries no client broadcast
    assert not realtime_writes(api, world.guest.claims(), "space:#lounge")


def test_a_space_spelled_like_a_thread_never_opens_the_threads_typing_topic(
    admin: psycopg.Connection[Any],
    superuser: psycopg.Connection[Any],
    api: psycopg.Connection[Any],
    trio: tuple[User, User, User],
) -> None:
    # Given a space whose id is the thread id amy__bob (stored before such
    # ids were refused), with eve as a member
    amy, _, eve = trio
    _space_stored_before_the_rule(admin, "amy__bob")
    add_being(admin, "@eve", type_="user", user=eve, location="amy__bob")

    # Then typing:amy__bob is still the thread's alone: eve may not listen or send
    assert not realtime_reads(api, superuser, eve.claims(), "typing:amy__bob")
    assert not realtime_writes(api, eve.claims(), "typing:amy__bob")
    assert realtime_writes(api, amy.claims(), "typing:amy__bob")


def test_ids_with_a_double_underscore_are_the_threads_no_new_space_takes_one(
    admin: psycopg.Connection[Any], api: psycopg.Connection[Any]
) -> None:
    # A new space spelled like a thread is refused, whoever writes it (the
    # dashboard's postgres, the service through the API)
    with pytest.raises(psycopg.errors.CheckViolation) as refused:
        add_being(admin, "ada__bob", type_="space")
    assert refused.value.diag.message_detail == "reserved_id"
    assert "reserved for chat thread ids" in str(refused.value)
    with pytest.raises(psycopg.errors.CheckViolation), acting_as(api, SERVICE_CLAIMS) as cur:
        cur.execute(
            "insert into public.beings (id, name, type) values ('#team__ops', 'ops', 'space')"
        )
    # Nor may a space be renamed to one, or another being become a space with one
    add_being(admin, "#lounge", type_="space")
    add_being(admin, "@ada__work", type_="user")  # not a space: free
    for change in (
        "update public.beings set id = 'ada__bob' where id = '#lounge'",
        "update public.beings set type = 'space' where id = '@ada__work'",
    ):
        with pytest.raises(psycopg.errors.CheckViolation):
            admin.execute(change)

    # A space stored before the rule keeps working: its other fields still change
    _space_stored_before_the_rule(admin, "old__space")
    admin.execute("update public.beings set name = 'Old space' where id = 'old__space'")
    assert admin.execute("select name from public.beings where id = 'old__space'").fetchone() == (
        "Old space",
    )


def test_the_database_never_broadcasts_on_a_typing_topic(
    admin: psycopg.Connection[Any], api: psycopg.Connection[Any], trio: tuple[User, User, User]
) -> None:
    amy, bob, _ = trio
    sent = rpc(api, amy.claims(), "insert_chat_message", _thread_id="amy__bob", _body="hi")
    rpc(api, bob.claims(), "mark_chat_thread_read", _thread_id="amy__bob", _message_id=sent["id"])

    topics = [row[0] for row in admin.execute("select topic from realtime.messages")]
    assert topics == ["chat:amy__bob", "chat:amy__bob"]
