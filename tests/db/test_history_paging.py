"""History paging (migration 20261203000400): chat_messages_before and
space_intentions_before, keyset on (created_at, id), as anon, as a
participant or member and as a stranger."""

from __future__ import annotations

import json
import threading
from typing import Any

import psycopg
import pytest

from tests.support.database import User, create_user, full_refusal, refusal, rpc, rpc_rows
from tests.support.spaces import World, make_world, say

pytestmark = pytest.mark.db


def add_messages(admin: psycopg.Connection[Any], sender: User, count: int, tag: str) -> None:
    """`count` messages in one transaction: they share one created_at, so
    only the id orders them."""
    admin.execute(
        "insert into public.chat_messages (thread_id, sender_supabase_id, sender_mongo_id,"
        " recipient_mongo_id, body) select 'amy__bob', %s, %s, 'x', %s || n"
        " from generate_series(1, %s) n",
        (sender.id, sender.mongo_id, tag, count),
    )


def all_pages(call: Any, limit: int) -> list[list[dict[str, Any]]]:
    pages: list[list[dict[str, Any]]] = []
    before = None
    while True:
        page = call(before, limit)
        if not page:
            return pages
        pages.append(page)
        before = page[-1]["id"]


def test_pages_of_a_thread_go_back_newest_first_each_message_once(
    admin: psycopg.Connection[Any], api: psycopg.Connection[Any], trio: tuple[User, User, User]
) -> None:
    amy, bob, _ = trio
    # 3 batches of tied timestamps, 130 messages in all
    for tag, size in (("a", 40), ("b", 60), ("c", 30)):
        add_messages(admin, bob if tag != "b" else amy, size, tag)
    stored = admin.execute(
        "select id::text from public.chat_messages order by created_at desc, id desc"
    ).fetchall()

    def page(before: str | None, limit: int) -> list[dict[str, Any]]:
        return rpc_rows(api, bob.claims(), "chat_messages_before",
                        _thread_id="amy__bob", _before=before, _limit=limit)  # fmt: skip

    pages = all_pages(page, 50)
    assert [len(p) for p in pages] == [50, 50, 30]
    assert [m["id"] for p in pages for m in p] == [r[0] for r in stored]
    # The default page is the newest 50
    default = rpc_rows(api, amy.claims(), "chat_messages_before", _thread_id="amy__bob")
    assert [m["id"] for m in default] == [m["id"] for m in pages[0]]


def test_paging_while_messages_are_written_returns_each_earlier_message_once(
    admin: psycopg.Connection[Any], admin_dsn: str, api: psycopg.Connection[Any],
    trio: tuple[User, User, User],
) -> None:  # fmt: skip
    amy, bob, _ = trio
    for n in range(10):
        add_messages(admin, bob, 30, f"batch{n}-")
    earlier = [r[0] for r in admin.execute(
        "select id::text from public.chat_messages order by created_at desc, id desc")]  # fmt: skip
    newest = earlier[0]

    # When amy pages back from the newest message while messages keep being
    # written (as the table's owner: what is tested is the paging, not a
    # sender's rate)
    stop = threading.Event()

    def write() -> None:
        with psycopg.connect(admin_dsn, autocommit=True) as conn:
            while not stop.is_set():
                for who in (amy, bob):
                    add_messages(conn, who, 1, "new")

    writer = threading.Thread(target=write)
    writer.start()
    try:

        def page(before: str | None, limit: int) -> list[dict[str, Any]]:
            return rpc_rows(api, amy.claims(), "chat_messages_before",
                            _thread_id="amy__bob", _before=before or newest, _limit=limit)  # fmt: skip

        seen = [m["id"] for p in all_pages(page, 7) for m in p]
    finally:
        stop.set()
        writer.join()

    # Then she got every earlier message exactly once, in order, and nothing newer
    assert seen == earlier[1:]
    assert admin.execute("select count(*) > 301 from public.chat_messages").fetchone() == (True,)


@pytest.mark.parametrize("limit", [0, -1, 101, None])
def test_a_page_size_outside_1_to_100_is_a_400(
    api: psycopg.Connection[Any], trio: tuple[User, User, User], limit: int | None
) -> None:
    amy = trio[0]
    assert refusal(lambda: rpc_rows(api, amy.claims(), "chat_messages_before",
                                    _thread_id="amy__bob", _limit=limit)) == ("PT400", "invalid_limit")  # fmt: skip


def test_strangers_anon_and_cursors_from_elsewhere_are_refused(
    admin: psycopg.Connection[Any], api: psycopg.Connection[Any], trio: tuple[User, User, User]
) -> None:
    amy, bob, eve = trio
    rpc(api, amy.claims(), "insert_chat_message", _thread_id="amy__bob", _body="private")
    rpc(api, eve.claims(), "ensure_chat_thread", _other_mongo_id="bob")
    elsewhere = rpc(api, eve.claims(), "insert_chat_message", _thread_id="bob__eve", _body="x")
    unlinked = create_user(admin, None)

    def page(user: User, thread: str = "amy__bob", before: str | None = None) -> Any:
        return rpc_rows(
            api, user.claims(), "chat_messages_before", _thread_id=thread, _before=before
        )

    # A stranger is told what a missing thread tells: nothing about amy and bob
    assert full_refusal(lambda: page(eve)) == ("PT404", "unknown_thread", "no such thread")
    assert full_refusal(lambda: page(eve, "amy__nobody")) == full_refusal(lambda: page(eve))
    assert refusal(lambda: page(amy, "amy__nobody")) == ("PT404", "unknown_thread")
    assert refusal(lambda: page(amy, before=elsewhere["id"])) == ("PT404", "unknown_message")
    assert refusal(lambda: page(unlinked)) == ("PT403", "no_chat_identity")
    with pytest.raises(psycopg.errors.InsufficientPrivilege):
        rpc_rows(api, None, "chat_messages_before", _thread_id="amy__bob")
    assert [m["body"] for m in page(bob)] == ["private"]


def intentions_in_one_transaction(admin: psycopg.Connection[Any], count: int) -> None:
    admin.execute(
        "insert into public.intentions (id, name, type, owner_id, location_id, state, content)"
        " select '/msg-tie-' || n, 'tie', 'utterance', '@guest', '#lounge', 'complete', %s"
        " from generate_series(1, %s) n",
        (json.dumps({"text": "tie"}), count),
    )


def test_members_page_back_through_a_space_each_intention_once(
    admin: psycopg.Connection[Any], api: psycopg.Connection[Any]
) -> None:
    world: World = make_world(admin)
    for n in range(25):
        say(admin, "@owner", "#lounge", f"line {n}")
    intentions_in_one_transaction(admin, 40)
    say(admin, "@stranger", "#attic", "elsewhere")
    stored = [r[0] for r in admin.execute(
        "select id from public.intentions where location_id = '#lounge'"
        " order by created_at desc, id desc")]  # fmt: skip

    def page(before: str | None, limit: int) -> list[dict[str, Any]]:
        return rpc_rows(api, world.guest.claims(), "space_intentions_before",
                        _space_id="#lounge", _before=before, _limit=limit)  # fmt: skip

    pages = all_pages(page, 30)
    assert [len(p) for p in pages] == [30, 30, 5]
    assert [i["id"] for p in pages for i in p] == stored


def test_a_space_page_is_refused_to_strangers_anon_and_foreign_cursors(
    admin: psycopg.Connection[Any], api: psycopg.Connection[Any]
) -> None:
    world = make_world(admin)
    said = say(admin, "@owner", "#lounge", "members only")
    attic = say(admin, "@stranger", "#attic", "attic")

    def page(user: User | None, space: str = "#lounge", **more: Any) -> Any:
        return rpc_rows(api, user.claims() if user else None, "space_intentions_before",
                        _space_id=space, **more)  # fmt: skip

    assert refusal(lambda: page(world.stranger)) == ("PT403", "not_member")
    assert refusal(lambda: page(world.guest, "#nowhere")) == ("PT403", "not_member")
    assert refusal(lambda: page(world.guest, _before=attic)) == ("PT404", "unknown_intention")
    assert refusal(lambda: page(world.guest, _limit=500)) == ("PT400", "invalid_limit")
    with pytest.raises(psycopg.errors.InsufficientPrivilege):
        page(None)
    assert [i["id"] for i in page(world.owner)] == [said]
    assert [i["id"] for i in page(world.stranger, "#attic")] == [attic]
    # It runs as the caller: what it returns is what the intentions' RLS lets through
    definer = admin.execute(
        "select prosecdef from pg_proc where oid = 'public.space_intentions_before'::regproc"
    ).fetchone()
    assert definer == (False,)
