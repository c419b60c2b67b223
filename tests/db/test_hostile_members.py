"""What a signed-in member cannot do to others through the API, whatever she
sends: take a bot's reply id, store an oversized utterance, share a thread id
with another pair of users."""

from __future__ import annotations

import json
from typing import Any

import psycopg
import pytest

from tests.support.database import SERVICE_CLAIMS, acting_as, create_user, rpc
from tests.support.spaces import bot_reply_id, make_world, say, squat

pytestmark = pytest.mark.db

LIMIT = 16384


def test_members_update_only_content_and_state_of_their_utterances(
    admin: psycopg.Connection[Any], api: psycopg.Connection[Any]
) -> None:
    world = make_world(admin)
    mine = say(admin, "@guest", "#lounge", "draft")

    # Content and state: hers to change
    with acting_as(api, world.guest.claims()) as cur:
        cur.execute(
            "update public.intentions set content = '{\"text\": \"edited\"}', state = 'active'"
            " where id = %s",
            (mine,),
        )
        assert cur.rowcount == 1

    # Everything that says who, where, what kind and when: not hers
    for assignment in (
        "id = '/msg-renamed'",
        "owner_id = '@owner'",
        "location_id = '#attic'",
        "type = 'error'",
        "created_at = now() - interval '1 day'",
        "modified_at = now()",
        "name = 'renamed'",
    ):
        with (
            pytest.raises(psycopg.errors.InsufficientPrivilege),
            acting_as(api, world.guest.claims()) as cur,
        ):
            cur.execute(f"update public.intentions set {assignment} where id = %s", (mine,))  # noqa: S608


def test_no_row_but_the_bots_own_can_hold_its_reply_id(
    admin: psycopg.Connection[Any], api: psycopg.Connection[Any]
) -> None:
    # Given the owner's message, whose reply id by @echo anyone can compute
    world = make_world(admin)
    asked = say(admin, "@owner", "#lounge", "hello echo")
    target = bot_reply_id("@echo", asked)
    mine = say(admin, "@guest", "#lounge", "innocent")

    # When the guest moves her own utterance onto it, or inserts one there
    with (
        pytest.raises(psycopg.errors.InsufficientPrivilege),
        acting_as(api, world.guest.claims()) as cur,
    ):
        cur.execute(
            "update public.intentions set id = %s, state = 'complete' where id = %s",
            (target, mine),
        )
    with (
        pytest.raises(psycopg.errors.InsufficientPrivilege),
        acting_as(api, world.guest.claims()) as cur,
    ):
        cur.execute(
            "insert into public.intentions (id, name, type, owner_id, location_id, state)"
            " values (%s, 'x', 'utterance', '@guest', '#lounge', 'complete')",
            (target,),
        )
    # Then neither worked; and not even the service may put a person's row there
    with pytest.raises(psycopg.errors.InsufficientPrivilege):
        admin.execute("update public.intentions set id = %s where id = %s", (target, mine))

    # And the bot's reply is written under its id
    written = rpc(
        api, SERVICE_CLAIMS, "write_bot_reply",
        _bot_id="@echo", _trigger_id=asked, _text="hi", _state="complete",
    )  # fmt: skip
    assert (written["id"], written["owner_id"], written["written"]) == (target, "@echo", True)


def test_a_held_reply_id_is_an_error_and_a_finished_reply_a_no_op(
    admin: psycopg.Connection[Any], api: psycopg.Connection[Any]
) -> None:
    make_world(admin)
    asked = say(admin, "@owner", "#lounge", "hello")
    squat(admin, bot_reply_id("@echo", asked), "@guest", "#lounge")

    # The worker is not told "already written": it gets reply_id_taken
    with pytest.raises(psycopg.Error) as refused:
        rpc(
            api, SERVICE_CLAIMS, "write_bot_reply",
            _bot_id="@echo", _trigger_id=asked, _text="hi", _state="active",
        )  # fmt: skip
    assert refused.value.sqlstate == "PT409"
    assert refused.value.diag.message_detail == "reply_id_taken"
    # And the squatter does not pass for the bot's reply
    context = rpc(api, SERVICE_CLAIMS, "bot_context", _bot_id="@echo", _trigger_id=asked)
    assert context["reply"] is None

    # A bot's own completed reply, written again (a duplicate job), stays as it was
    def write(text: str) -> Any:
        return rpc(
            api, SERVICE_CLAIMS, "write_bot_reply",
            _bot_id="@sage", _trigger_id=asked, _text=text, _state="complete",
        )  # fmt: skip

    assert write("first")["written"] is True
    again = write("second")
    assert (again["written"], again["content"]["text"]) == (False, "first")


def test_an_oversized_utterance_fails_at_the_caller(
    admin: psycopg.Connection[Any], api: psycopg.Connection[Any]
) -> None:
    world = make_world(admin)
    insert = (
        "insert into public.intentions (id, name, type, owner_id, location_id, state, content)"
        " values (%s, 'm', 'utterance', '@guest', '#lounge', 'complete', %s)"
    )

    def content(size: int) -> str:
        # {"text": "..."} of exactly `size` bytes as jsonb text
        return json.dumps({"text": "x" * (size - len('{"text": ""}'))})

    with acting_as(api, world.guest.claims()) as cur:
        cur.execute(insert, ("/msg-at-limit", content(LIMIT)))
    with (
        pytest.raises(psycopg.errors.CheckViolation, match="intentions_content_size"),
        acting_as(api, world.guest.claims()) as cur,
    ):
        cur.execute(insert, ("/msg-over", content(LIMIT + 1)))
    # Growing a stored one past the limit fails the same way
    mine = say(admin, "@guest", "#lounge", "short")
    with (
        pytest.raises(psycopg.errors.CheckViolation),
        acting_as(api, world.guest.claims()) as cur,
    ):
        cur.execute(
            "update public.intentions set content = %s where id = %s", (content(LIMIT + 1), mine)
        )


@pytest.mark.parametrize("unit", ["x", "€", "\u0001", '"', "😀"])
def test_a_long_bot_reply_is_cut_to_fit(
    admin: psycopg.Connection[Any], api: psycopg.Connection[Any], unit: str
) -> None:
    make_world(admin)
    asked = say(admin, "@guest", "#lounge", "write me a novel")
    text = unit * 40_000

    written = rpc(
        api, SERVICE_CLAIMS, "write_bot_reply",
        _bot_id="@echo", _trigger_id=asked, _text=text, _state="complete",
    )  # fmt: skip

    stored = admin.execute(
        "select octet_length(content::text), content->>'text' from public.intentions where id = %s",
        (written["id"],),
    ).fetchone()
    assert stored is not None
    size, kept = stored
    assert size <= LIMIT
    assert text.startswith(kept)
    assert len(kept) > 0.9 * LIMIT / len(json.dumps(unit)[1:-1].encode())  # cut, not emptied


@pytest.mark.parametrize("mongo_id", ["A_", "_b", "a__b", "a b", "_"])
def test_a_mongo_id_that_would_make_a_thread_id_ambiguous_is_refused(
    admin: psycopg.Connection[Any], mongo_id: str
) -> None:
    # ("A_", "b") and ("A", "_b") both made "A___b"
    with pytest.raises(psycopg.errors.CheckViolation):
        create_user(admin, mongo_id)


def test_ids_with_inner_underscores_still_pair(
    admin: psycopg.Connection[Any], api: psycopg.Connection[Any]
) -> None:
    a, b = create_user(admin, "A_1"), create_user(admin, "b_2")
    thread = rpc(api, a.claims(), "ensure_chat_thread", _other_mongo_id="b_2")
    assert thread["thread_id"] == "A_1__b_2"
    assert {thread["user_a_supabase_id"], thread["user_b_supabase_id"]} == {str(a.id), str(b.id)}


def test_ensure_never_returns_another_pairs_thread(
    admin: psycopg.Connection[Any], api: psycopg.Connection[Any]
) -> None:
    # Given a row under amy and bob's thread id that is not theirs (as an
    # ambiguous id stored before the check could have left it)
    amy, bob, eve = create_user(admin, "amy"), create_user(admin, "bob"), create_user(admin, "eve")
    admin.execute(
        "insert into public.chat_threads (thread_id, user_a_mongo_id, user_b_mongo_id,"
        " user_a_supabase_id, user_b_supabase_id) values ('amy__bob', 'amy', 'bob', %s, %s)",
        (amy.id, eve.id),
    )

    # When either of them ensures their thread, then it is an error, not eve's thread
    for caller, other in ((amy, "bob"), (bob, "amy")):
        with pytest.raises(psycopg.Error) as refused:
            rpc(api, caller.claims(), "ensure_chat_thread", _other_mongo_id=other)
        assert refused.value.sqlstate == "PT409"
        assert refused.value.diag.message_detail == "thread_id_conflict"
