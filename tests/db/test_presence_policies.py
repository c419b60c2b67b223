"""Realtime Authorization for Presence (migration 20261203000300): the two
participants of a thread on chat:<thread_id>, the members of a space on
space:<space id>; nobody else sees or tracks, and no broadcast right comes
with it. Checked as Realtime checks them: a probe row selected back as the
user (read), an insert as the user (write)."""

from __future__ import annotations

from typing import Any

import psycopg
import pytest

from tests.support.database import create_user, realtime_reads, realtime_writes, rpc
from tests.support.spaces import make_world

pytestmark = pytest.mark.db


def test_only_the_two_participants_see_and_track_presence_on_their_thread(
    admin: psycopg.Connection[Any],
    superuser: psycopg.Connection[Any],
    api: psycopg.Connection[Any],
) -> None:
    amy, bob, eve = (create_user(admin, name) for name in ("amy", "bob", "eve"))
    thread = rpc(api, amy.claims(), "ensure_chat_thread", _other_mongo_id="bob")
    topic = f"chat:{thread['thread_id']}"

    for user in (amy, bob):
        assert realtime_reads(api, superuser, user.claims(), topic, extension="presence")
        assert realtime_writes(api, user.claims(), topic, extension="presence")
    assert not realtime_reads(api, superuser, eve.claims(), topic, extension="presence")
    assert not realtime_writes(api, eve.claims(), topic, extension="presence")
    # Presence gives no broadcast right: only the database sends on a thread
    assert not realtime_writes(api, amy.claims(), topic, extension="broadcast")
    # A participant of one thread is nobody on another's topic
    assert not realtime_writes(api, amy.claims(), "chat:bob__eve", extension="presence")


def test_only_members_of_a_space_see_and_track_presence_on_its_topic(
    admin: psycopg.Connection[Any],
    superuser: psycopg.Connection[Any],
    api: psycopg.Connection[Any],
) -> None:
    world = make_world(admin)  # owner owns #lounge, guest is in it, stranger is in #attic

    for member in (world.owner, world.guest):
        assert realtime_reads(
            api, superuser, member.claims(), "space:#lounge", extension="presence"
        )
        assert realtime_writes(api, member.claims(), "space:#lounge", extension="presence")
        assert not realtime_writes(api, member.claims(), "space:#lounge", extension="broadcast")
        assert not realtime_reads(
            api, superuser, member.claims(), "space:#lounge", extension="broadcast"
        )
    assert not realtime_reads(
        api, superuser, world.stranger.claims(), "space:#lounge", extension="presence"
    )
    assert not realtime_writes(api, world.stranger.claims(), "space:#lounge", extension="presence")
    assert realtime_writes(api, world.stranger.claims(), "space:#attic", extension="presence")
    # The topic names the space exactly: no prefix or pattern matches another
    assert not realtime_writes(api, world.guest.claims(), "space:#lounge2", extension="presence")
    assert not realtime_writes(api, world.guest.claims(), "space:%", extension="presence")
    # The anon key reads and tracks nothing
    assert not realtime_writes(api, None, "space:#lounge", extension="presence")
