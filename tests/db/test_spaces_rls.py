"""Beings and intentions as users see them through RLS; bots' keys stay hidden."""

from __future__ import annotations

from typing import Any

import psycopg
import pytest

from tests.support.database import acting_as
from tests.support.spaces import make_world, say

pytestmark = pytest.mark.db


def _visible(api: psycopg.Connection[Any], claims: dict[str, Any], sql: str) -> set[str]:
    with acting_as(api, claims) as cur:
        return {row["id"] for row in cur.execute(sql)}


def test_members_see_their_space_and_strangers_do_not(
    admin: psycopg.Connection[Any], api: psycopg.Connection[Any]
) -> None:
    world = make_world(admin)
    hello = say(admin, "@guest", "#lounge", "hello")

    beings = "select id from public.beings"
    intentions = "select id from public.intentions"
    lounge = {"@owner", "#lounge", "@guest", "@echo", "@sage"}
    assert _visible(api, world.owner.claims(), beings) == lounge
    assert _visible(api, world.guest.claims(), beings) == lounge
    assert _visible(api, world.stranger.claims(), beings) == {"@stranger", "#attic", "@hermit"}
    assert _visible(api, world.guest.claims(), intentions) == {hello}
    assert _visible(api, world.stranger.claims(), intentions) == set()
    with acting_as(api, None) as cur:
        assert cur.execute("select id from public.intentions").fetchall() == []


def test_users_speak_only_as_themselves_in_spaces_they_see(
    admin: psycopg.Connection[Any], api: psycopg.Connection[Any]
) -> None:
    world = make_world(admin)
    insert = (
        "insert into public.intentions (id, name, type, owner_id, location_id, state, content)"
        " values (%s, 'm', 'utterance', %s, %s, 'complete', '{\"text\": \"hi\"}')"
    )

    with acting_as(api, world.guest.claims()) as cur:
        cur.execute(insert, ("/msg-ok", "@guest", "#lounge"))

    refused = [
        (world.guest, "/msg-1", "@owner", "#lounge"),  # as someone else
        (world.guest, "/msg-2", "@echo", "#lounge"),  # as a bot
        (world.stranger, "/msg-3", "@stranger", "#lounge"),  # in a space they cannot see
        (world.guest, "/bot-reply-x", "@guest", "#lounge"),  # taking a bot reply's id
    ]
    for user, intention_id, owner, space in refused:
        with (
            pytest.raises(psycopg.errors.InsufficientPrivilege),
            acting_as(api, user.claims()) as cur,
        ):
            cur.execute(insert, (intention_id, owner, space))


def test_no_client_role_can_read_a_bot_key(
    admin: psycopg.Connection[Any], api: psycopg.Connection[Any]
) -> None:
    world = make_world(admin)
    for claims in (world.owner.claims(), None):
        with pytest.raises(psycopg.errors.InsufficientPrivilege), acting_as(api, claims) as cur:
            cur.execute("select llm_api_key from private.bot_secrets")
        with pytest.raises(psycopg.errors.UndefinedColumn), acting_as(api, claims) as cur:
            cur.execute("select llm_api_key from public.beings")
        with pytest.raises(psycopg.errors.InsufficientPrivilege), acting_as(api, claims) as cur:
            cur.execute("select public.bot_context('@sage', 'x')")


def test_modified_at_moves_on_update(admin: psycopg.Connection[Any]) -> None:
    make_world(admin)
    said = say(admin, "@guest", "#lounge", "draft")
    with admin.transaction():
        before = admin.execute(
            "select modified_at from public.intentions where id = %s", (said,)
        ).fetchone()
    admin.execute("update public.intentions set state = 'complete' where id = %s", (said,))
    after = admin.execute(
        "select modified_at from public.intentions where id = %s", (said,)
    ).fetchone()
    assert before is not None
    assert after is not None
    assert after[0] > before[0]


def test_intentions_are_in_the_realtime_publication(admin: psycopg.Connection[Any]) -> None:
    published = admin.execute(
        "select schemaname, tablename from pg_publication_tables where pubname = 'supabase_realtime'"
    ).fetchall()
    assert ("public", "intentions") in published
