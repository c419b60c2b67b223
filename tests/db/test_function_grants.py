"""Who may execute each function the API can reach (issue 12, defect 2).

Every function in `public` and `private` is listed with the API roles that
may call it; a new function fails this test until it is added here, so a
grant is always a decision."""

from __future__ import annotations

from typing import Any

import psycopg
import pytest

from tests.support.database import acting_as

pytestmark = pytest.mark.db

NOBODY: frozenset[str] = frozenset()
AUTHENTICATED = frozenset({"authenticated"})
SERVICE = frozenset({"service_role"})

EXPECTED: dict[str, frozenset[str]] = {
    # RPCs
    "ensure_chat_thread(text)": AUTHENTICATED,
    "insert_chat_message(text,text,uuid)": AUTHENTICATED,
    "insert_chat_message(text,text,text,text)": AUTHENTICATED,
    "bots_for_utterance(text)": SERVICE,
    "bot_context(text,text,integer)": SERVICE,
    "write_bot_reply(text,text,text,text,text)": SERVICE,
    "set_bot_llm_api_key(text,text)": SERVICE,
    "ack_bot_delivery(text)": SERVICE,
    "bot_delivery_backlog()": SERVICE,
    "reserve_bot_tokens(text,text,bigint)": SERVICE,
    "record_bot_tokens(text,text,bigint,boolean)": SERVICE,
    "mark_chat_thread_read(text,uuid)": AUTHENTICATED,
    "chat_unread_counts()": AUTHENTICATED,
    "chat_messages_before(text,uuid,integer)": AUTHENTICATED,
    "chat_thread_read_marks(text)": AUTHENTICATED,
    "space_intentions_before(text,text,integer)": AUTHENTICATED,
    # Policy helpers: RLS calls them as the signed-in user
    "private.my_being_ids()": AUTHENTICATED,
    "private.my_space_ids()": AUTHENTICATED,
    "private.is_chat_topic_participant(text)": AUTHENTICATED,
    "private.is_space_topic_member(text)": AUTHENTICATED,
    "private.is_typing_topic_member(text)": AUTHENTICATED,
    # Internals: called by SECURITY DEFINER functions and triggers only
    "private.set_modified_at()": NOBODY,
    "private.sync_chat_user()": NOBODY,
    "private.broadcast_chat_message()": NOBODY,
    "private.raise_api_error(integer,text,text)": NOBODY,
    "private.require_chat_user()": NOBODY,
    "private.bot_reply_id(text,text,text)": NOBODY,
    "private.queue_bot_trigger_webhook()": NOBODY,
    "private.guard_bot_reply_id()": NOBODY,
    # Bot webhook delivery: the trigger and the scheduled job (pg_cron runs it as postgres)
    "private.bot_delivery_setting(text)": NOBODY,
    "private.bot_delivery_backoff(integer)": NOBODY,
    "private.post_bot_webhook(text)": NOBODY,
    "private.bot_delivery_outcome(bigint)": NOBODY,
    "private.send_bot_delivery(text)": NOBODY,
    "private.give_up_bot_delivery(text,text)": NOBODY,
    "private.redeliver_bot_webhooks(integer,timestamp with time zone)": NOBODY,
    "private.redeliver_all_bot_webhooks(integer,double precision,jsonb)": NOBODY,
    "private.withdraw_delivery_notice()": NOBODY,
    "private.take_rate_tokens(text,integer)": NOBODY,
    "private.limit_space_writes()": NOBODY,
    "private.limit_chat_writes()": NOBODY,
    "private.lock_bot_tokens(text)": NOBODY,
    "private.bot_budget(text,text)": NOBODY,
    "private.bot_budget_refusal(text,text,text,text,text,date)": NOBODY,
    "private.add_bot_tokens(text,text,text,date,bigint,boolean)": NOBODY,
    "private.require_chat_participant(text,uuid)": NOBODY,
    "private.chat_unread(uuid,text)": NOBODY,
    "private.broadcast_chat_read()": NOBODY,
    "private.refuse_thread_like_space_id()": NOBODY,
    # CHECK constraints run them as whoever writes the row
    "private.max_intention_content_bytes()": AUTHENTICATED | SERVICE,
    "private.is_valid_mongo_id(text)": SERVICE,
    # space_intentions_before runs as the caller (under RLS) and checks its limit
    "private.page_limit(integer)": AUTHENTICATED,
    # Added by `make function` (and removed by `make function-remove`):
}


def test_every_function_in_public_and_private_is_executable_by_exactly_its_roles(
    admin: psycopg.Connection[Any],
) -> None:
    rows = admin.execute(
        "select p.oid::regprocedure::text,"
        " array(select r from unnest(array['anon', 'authenticated', 'service_role']) r"
        "       where has_function_privilege(r, p.oid, 'execute'))"
        " from pg_proc p where p.pronamespace in ('public'::regnamespace, 'private'::regnamespace)"
    ).fetchall()
    actual = {name: frozenset(roles) for name, roles in rows}
    assert actual == EXPECTED


@pytest.mark.parametrize("role", ["anon", "authenticated"])
def test_the_api_cannot_run_private_internals(api: psycopg.Connection[Any], role: str) -> None:
    for call in (
        "select private.bot_reply_id('@b', '/t', 'utterance')",
        "select private.require_chat_user()",
    ):
        with (
            pytest.raises(psycopg.errors.InsufficientPrivilege),
            acting_as(api, {"role": role}) as cur,
        ):
            cur.execute(call)
    if role == "anon":
        with (
            pytest.raises(psycopg.errors.InsufficientPrivilege),
            acting_as(api, {"role": role}) as cur,
        ):
            cur.execute("select private.my_being_ids()")
