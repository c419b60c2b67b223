"""Users for a load run, made through SQL as the local auth would have them:
`auth.users` rows with a mongo id in app_metadata (the chat_users trigger
links them), a being for each, optionally located in a space with a bot, and
threads between neighbours opened through `ensure_chat_thread` under each
user's own identity. Access tokens are signed with make dev's local secret
for its issuer, as `make tokens` signs them.

Every name carries the run's prefix, so runs against one database never
collide."""

from __future__ import annotations

import json
import time
import uuid
from dataclasses import dataclass
from typing import Any

import jwt
import psycopg

from scripts.dev_tokens import SECRET


@dataclass(frozen=True)
class User:
    uuid: str
    mongo_id: str
    being: str
    token: str


def claims(user_uuid: str, mongo_id: str, issuer: str, lifetime: int = 4 * 3600) -> dict[str, Any]:
    now = int(time.time())
    return {
        "iss": issuer, "sub": user_uuid, "aud": "authenticated", "role": "authenticated",
        "iat": now, "exp": now + lifetime, "email": f"{mongo_id}@load.test",
        "app_metadata": {"provider": "email", "mongo_user_id": mongo_id}, "user_metadata": {},
        "session_id": f"load-{mongo_id}",
    }  # fmt: skip


def seed_users(
    admin: psycopg.Connection[Any], prefix: str, count: int, issuer: str, space: str | None = None
) -> list[User]:
    """`count` users named <prefix>-<n>, in `space` if given (which must exist)."""
    users = []
    for n in range(count):
        mongo_id = f"{prefix}-{n}"
        user_uuid = str(uuid.uuid5(uuid.NAMESPACE_URL, f"load/{mongo_id}"))
        token = jwt.encode(claims(user_uuid, mongo_id, issuer), SECRET, algorithm="HS256")
        users.append(User(user_uuid, mongo_id, f"@{mongo_id}", token))
    with admin.cursor() as cur, admin.transaction():
        cur.executemany(
            "insert into auth.users (id, email, raw_app_meta_data, raw_user_meta_data)"
            " values (%s, %s, %s, '{}') on conflict (id) do nothing",
            [(u.uuid, f"{u.mongo_id}@load.test",
              json.dumps({"provider": "email", "mongo_user_id": u.mongo_id})) for u in users],
        )  # fmt: skip
        cur.executemany(
            "insert into public.beings (id, name, type, auth_user_id, location_id)"
            " values (%s, %s, 'user', %s, %s) on conflict (id) do nothing",
            [(u.being, u.mongo_id, u.uuid, space) for u in users],
        )
    return users


def make_space_with_bot(admin: psycopg.Connection[Any], space: str, bot: str, owner: str) -> None:
    """A space owned by `owner` (a being) with one bot in it."""
    admin.execute(
        "insert into public.beings (id, name, type, owner_id) values (%s, %s, 'space', %s)"
        " on conflict (id) do nothing",
        (space, space, owner),
    )
    admin.execute(
        "insert into public.beings (id, name, type, owner_id, location_id, bot_model, bot_prompt)"
        " values (%s, %s, 'bot', %s, %s, 'openrouter/auto', 'Answer briefly.')"
        " on conflict (id) do nothing",
        (bot, bot, owner, space),
    )


def as_user(user: User, issuer: str) -> tuple[str, str]:
    """role and request.jwt.claims, as PostgREST sets them for this user's request."""
    return "authenticated", json.dumps(claims(user.uuid, user.mongo_id, issuer))


SET_CALLER = "select set_config('role', %s, true), set_config('request.jwt.claims', %s, true)"


async def say_as(
    conn: psycopg.AsyncConnection[Any], user: User, issuer: str, space: str, said: str, text: str
) -> None:
    """An utterance as a client writes it through PostgREST: its own
    transaction, the user's role and claims, RLS and the triggers."""
    async with conn.transaction():
        await conn.execute(SET_CALLER, as_user(user, issuer))
        await conn.execute(
            "insert into public.intentions (id, name, type, owner_id, location_id, state, content)"
            " values (%s, 'q', 'utterance', %s, %s, 'complete', %s)",
            (said, user.being, space, json.dumps({"text": text})),
        )


def thread_id(a: User, b: User) -> str:
    first, second = sorted([a.mongo_id, b.mongo_id])
    return f"{first}__{second}"


def open_threads(
    dsn: str, users: list[User], partners: int, issuer: str
) -> list[tuple[User, User, str]]:
    """Each user's threads with the next `partners` users (a ring), opened by
    `ensure_chat_thread` as that user: (user, other, thread id) for both sides."""
    opened: list[tuple[User, User, str]] = []
    with psycopg.connect(dsn, autocommit=True) as conn:
        for i, user in enumerate(users):
            for step in range(1, partners + 1):
                other = users[(i + step) % len(users)]
                with conn.transaction():
                    conn.execute(SET_CALLER, as_user(user, issuer))
                    conn.execute("select public.ensure_chat_thread(%s)", (other.mongo_id,))
                tid = thread_id(user, other)
                opened += [(user, other, tid), (other, user, tid)]
    return opened
