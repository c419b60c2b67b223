"""A small world of beings for tests: a space, its people and its bots."""

from __future__ import annotations

import hashlib
import json
import uuid
from dataclasses import dataclass
from typing import Any

import psycopg

from tests.support.database import User, acting_as, create_user


def add_being(
    conn: psycopg.Connection[Any],
    being_id: str,
    *,
    type_: str,
    location: str | None = None,
    owner: str | None = None,
    user: User | None = None,
    bot_model: str | None = None,
    bot_prompt: str | None = None,
    name: str | None = None,
) -> str:
    conn.execute(
        "insert into public.beings (id, name, type, location_id, owner_id, auth_user_id, bot_model, bot_prompt)"
        " values (%s, %s, %s, %s, %s, %s, %s, %s)",
        (
            being_id,
            name or being_id.lstrip("@"),
            type_,
            location,
            owner,
            user.id if user else None,
            bot_model,
            bot_prompt,
        ),
    )
    return being_id


_SAY = (
    "insert into public.intentions (id, name, type, owner_id, location_id, state, content)"
    " values (%s, %s, %s, %s, %s, 'complete', %s)"
)


def _said(speaker: str, space: str, text: str, type_: str) -> tuple[str, ...]:
    intention_id = f"/msg-{uuid.uuid4().hex[:12]}"
    return (
        intention_id,
        f"Message from {speaker}",
        type_,
        speaker,
        space,
        json.dumps({"text": text}),
    )


def say(
    conn: psycopg.Connection[Any], speaker: str, space: str, text: str, *, type_: str = "utterance"
) -> str:
    """An utterance written as the table's owner (no RLS, no rate limit)."""
    row = _said(speaker, space, text, type_)
    conn.execute(_SAY, row)
    return row[0]


def speak(api: psycopg.Connection[Any], user: User, speaker: str, space: str, text: str) -> str:
    """A member's utterance as a client sends it through PostgREST: inserted
    as `authenticated` with her claims, under RLS, and committed."""
    row = _said(speaker, space, text, "utterance")
    with acting_as(api, user.claims(), commit=True) as cur:
        cur.execute(_SAY, row)
    return row[0]


@dataclass(frozen=True)
class World:
    """@owner owns #lounge; @guest is located in it; bots @echo and @sage too;
    @stranger is elsewhere, in #attic."""

    owner: User
    guest: User
    stranger: User
    space: str = "#lounge"


def make_world(conn: psycopg.Connection[Any]) -> World:
    owner = create_user(conn, "owner-mongo")
    guest = create_user(conn, "guest-mongo")
    stranger = create_user(conn, "stranger-mongo")
    add_being(conn, "@owner", type_="user", user=owner)
    add_being(conn, "#lounge", type_="space", owner="@owner")
    add_being(conn, "#attic", type_="space")
    conn.execute("update public.beings set location_id = '#lounge' where id = '@owner'")
    add_being(conn, "@guest", type_="user", user=guest, location="#lounge")
    add_being(conn, "@stranger", type_="user", user=stranger, location="#attic")
    add_being(
        conn,
        "@echo",
        type_="bot",
        location="#lounge",
        owner="@owner",
        bot_model="openai/gpt-4o-mini",
        bot_prompt="You echo.",
    )
    add_being(
        conn,
        "@sage",
        type_="bot",
        location="#lounge",
        owner="@owner",
        bot_model="anthropic/claude-3.5-haiku",
        bot_prompt="You are wise.",
    )
    add_being(conn, "@hermit", type_="bot", location="#attic", bot_model="m", bot_prompt="p")
    conn.execute("select public.set_bot_llm_api_key('@sage', 'sk-sage-secret')")
    return World(owner, guest, stranger)


def bot_reply_id(bot: str, trigger: str, kind: str = "reply") -> str:
    """The deterministic id anyone can compute (private.bot_reply_id)."""
    return f"/bot-{kind}-" + hashlib.md5(f"{bot}|{trigger}".encode()).hexdigest()  # noqa: S324


def squat(conn: psycopg.Connection[Any], intention_id: str, owner: str, space: str) -> None:
    """A person's row at a bot's reply id, as a client could leave one before
    the guard existed (the guard is lifted for this one insert)."""
    with conn.transaction():
        conn.execute("alter table public.intentions disable trigger intentions_guard_bot_reply_id")
        conn.execute(
            "insert into public.intentions (id, name, type, owner_id, location_id, state, content)"
            " values (%s, 'squat', 'utterance', %s, %s, 'complete', '{}')",
            (intention_id, owner, space),
        )
        conn.execute("alter table public.intentions enable trigger intentions_guard_bot_reply_id")
