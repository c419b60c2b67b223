"""The bot pipeline's RPCs, as the service role."""

from __future__ import annotations

from typing import Any

import psycopg
import pytest

from tests.support.database import SERVICE_CLAIMS, acting_as, rpc
from tests.support.spaces import make_world, say

pytestmark = pytest.mark.db


def test_bots_for_a_users_utterance_are_the_bots_in_its_space(
    admin: psycopg.Connection[Any], api: psycopg.Connection[Any]
) -> None:
    make_world(admin)
    said = say(admin, "@guest", "#lounge", "hi bots")

    found = rpc(api, SERVICE_CLAIMS, "bots_for_utterance", _intention_id=said)

    assert found["found"] is True
    assert found["speaker_is_bot"] is False
    assert found["space_id"] == "#lounge"
    assert [b["id"] for b in found["bots"]] == ["@echo", "@sage"]


def test_a_bots_utterance_is_flagged_and_excludes_the_bot(
    admin: psycopg.Connection[Any], api: psycopg.Connection[Any]
) -> None:
    make_world(admin)
    said = say(admin, "@echo", "#lounge", "I am a bot")
    found = rpc(api, SERVICE_CLAIMS, "bots_for_utterance", _intention_id=said)
    assert found["speaker_is_bot"] is True
    assert [b["id"] for b in found["bots"]] == ["@sage"]
    assert rpc(api, SERVICE_CLAIMS, "bots_for_utterance", _intention_id="/nope") == {"found": False}


def test_context_has_model_prompt_key_and_the_last_ten_oldest_first(
    admin: psycopg.Connection[Any], api: psycopg.Connection[Any]
) -> None:
    make_world(admin)
    for i in range(12):
        say(admin, "@guest" if i % 2 else "@sage", "#lounge", f"line {i}")
    trigger = say(admin, "@guest", "#lounge", "question")
    say(admin, "@guest", "#lounge", "said after the trigger")

    context = rpc(api, SERVICE_CLAIMS, "bot_context", _bot_id="@sage", _trigger_id=trigger)

    assert context["bot"]["model"] == "anthropic/claude-3.5-haiku"
    assert context["bot"]["prompt"] == "You are wise."
    assert context["bot"]["llm_api_key"] == "sk-sage-secret"
    assert context["bot"]["in_space"] is True
    assert context["reply"] is None
    texts = [m["text"] for m in context["messages"]]
    assert texts == [f"line {i}" for i in range(3, 12)] + ["question"]
    assert [m["is_self"] for m in context["messages"]][:2] == [False, True]
    assert context["messages"][0]["speaker_name"] == "guest"


def test_a_reply_is_written_once_and_updated_until_complete(
    admin: psycopg.Connection[Any], api: psycopg.Connection[Any]
) -> None:
    world = make_world(admin)
    trigger = say(admin, "@guest", "#lounge", "hello?")

    def write(text: str, state: str) -> dict[str, Any]:
        row: dict[str, Any] = rpc(
            api,
            SERVICE_CLAIMS,
            "write_bot_reply",
            _bot_id="@echo",
            _trigger_id=trigger,
            _text=text,
            _state=state,
        )
        return row

    first = write("Hel", "active")
    second = write("Hello", "active")
    done = write("Hello there", "complete")
    late = write("a duplicate job", "active")

    assert first["id"] == second["id"] == done["id"] == late["id"]
    assert first["id"].startswith("/bot-reply-")
    assert (done["state"], done["content"]["text"], done["written"]) == (
        "complete",
        "Hello there",
        True,
    )
    assert (late["state"], late["written"]) == ("complete", False)
    assert admin.execute(
        "select count(*) from public.intentions where owner_id = '@echo'"
    ).fetchone() == (1,)
    # The space's members read the reply through RLS
    with acting_as(api, world.guest.claims()) as cur:
        seen = cur.execute(
            "select content->>'text' as text from public.intentions where id = %s", (done["id"],)
        ).fetchall()
    assert seen == [{"text": "Hello there"}]
    # And the context knows the reply is finished
    assert (
        rpc(api, SERVICE_CLAIMS, "bot_context", _bot_id="@echo", _trigger_id=trigger)["reply"][
            "state"
        ]
        == "complete"
    )


def test_an_error_notice_is_separate_from_the_reply(
    admin: psycopg.Connection[Any], api: psycopg.Connection[Any]
) -> None:
    make_world(admin)
    trigger = say(admin, "@guest", "#lounge", "hello?")
    reply = rpc(
        api,
        SERVICE_CLAIMS,
        "write_bot_reply",
        _bot_id="@echo",
        _trigger_id=trigger,
        _text="Hal",
        _state="failed",
    )
    notice = rpc(
        api,
        SERVICE_CLAIMS,
        "write_bot_reply",
        _bot_id="@echo",
        _trigger_id=trigger,
        _text="The model is unavailable.",
        _state="failed",
        _type="error",
    )
    assert reply["id"] != notice["id"]
    assert (notice["type"], notice["state"]) == ("error", "failed")


@pytest.mark.parametrize("function", ["bots_for_utterance", "bot_context", "write_bot_reply"])
def test_bot_rpcs_are_for_the_service_only(
    admin: psycopg.Connection[Any], api: psycopg.Connection[Any], function: str
) -> None:
    world = make_world(admin)
    trigger = say(admin, "@guest", "#lounge", "hi")
    args: dict[str, Any] = {
        "bots_for_utterance": {"_intention_id": trigger},
        "bot_context": {"_bot_id": "@sage", "_trigger_id": trigger},
        "write_bot_reply": {
            "_bot_id": "@sage",
            "_trigger_id": trigger,
            "_text": "x",
            "_state": "complete",
        },
    }[function]
    with pytest.raises(psycopg.errors.InsufficientPrivilege):
        rpc(api, world.owner.claims(), function, **args)
