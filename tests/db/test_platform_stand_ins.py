"""The local stand-ins behave as Supabase documents them."""

from __future__ import annotations

import json
import uuid
from typing import Any

import psycopg
import pytest

pytestmark = pytest.mark.db


def test_auth_helpers_read_the_claims_and_the_older_setting(admin: psycopg.Connection[Any]) -> None:
    sub = uuid.uuid4()
    with admin.transaction(force_rollback=True):
        admin.execute(
            "select set_config('request.jwt.claims', %s, true)",
            (json.dumps({"sub": str(sub), "role": "authenticated", "aud": "authenticated"}),),
        )
        row = admin.execute("select auth.uid(), auth.role(), auth.jwt() ->> 'aud'").fetchone()
        assert row == (sub, "authenticated", "authenticated")
        older = uuid.uuid4()
        admin.execute("select set_config('request.jwt.claim.sub', %s, true)", (str(older),))
        assert admin.execute("select auth.uid()").fetchone() == (older,)
    with admin.transaction(force_rollback=True):
        assert admin.execute("select auth.uid(), auth.jwt()").fetchone() == (None, None)


def test_realtime_send_sets_the_topic_and_never_raises(admin: psycopg.Connection[Any]) -> None:
    with admin.transaction(force_rollback=True):
        admin.execute("select realtime.send('{\"a\": 1}', 'ping', 'room:1')")
        assert admin.execute("select realtime.topic()").fetchone() == ("room:1",)
        assert admin.execute(
            "select topic, event, payload, private, extension from realtime.messages"
        ).fetchall() == [("room:1", "ping", {"a": 1}, True, "broadcast")]
    notices: list[str] = []
    admin.add_notice_handler(lambda d: notices.append(str(d.message_primary)))
    admin.execute("select realtime.send('{}', 'ping', null)")  # topic is required
    assert any("realtime.send failed" in n for n in notices)


def test_http_post_queues_with_query_and_returns_the_id(admin: psycopg.Connection[Any]) -> None:
    request_id = admin.execute(
        "select net.http_post('http://127.0.0.1:9/x', '{\"k\": 1}', '{\"a\": \"b\"}')"
    ).fetchone()
    row = admin.execute(
        "select id, url, headers, convert_from(body, 'UTF8') from net.http_request_queue"
    ).fetchone()
    assert row is not None
    assert request_id is not None
    assert row[0] == request_id[0]
    assert row[1] == "http://127.0.0.1:9/x?a=b"
    assert row[2] == {"Content-Type": "application/json"}
    assert json.loads(row[3]) == {"k": 1}


def test_supabase_functions_http_request_builds_the_webhook_payload(
    admin: psycopg.Connection[Any],
) -> None:
    admin.execute("create table public.things (id int primary key, name text)")
    admin.execute(
        "create trigger things_hook after insert or update on public.things for each row execute function"
        " supabase_functions.http_request('http://127.0.0.1:9/hook', 'POST', '{\"x-k\": \"v\"}', '{}', '1000')"
    )
    admin.execute("insert into public.things values (1, 'a')")
    admin.execute("update public.things set name = 'b'")
    bodies = [
        json.loads(r[0])
        for r in admin.execute(
            "select convert_from(body, 'UTF8') from net.http_request_queue order by id"
        )
    ]
    assert bodies[0] == {
        "type": "INSERT",
        "table": "things",
        "schema": "public",
        "record": {"id": 1, "name": "a"},
        "old_record": None,
    }
    assert bodies[1]["type"] == "UPDATE"
    assert bodies[1]["old_record"] == {"id": 1, "name": "a"}


def test_service_role_bypasses_rls_and_roles_exist(admin: psycopg.Connection[Any]) -> None:
    rows = dict(
        admin.execute(
            "select rolname, rolbypassrls from pg_roles where rolname in ('anon', 'authenticated', 'service_role', 'authenticator')"
        ).fetchall()
    )
    assert rows == {
        "anon": False,
        "authenticated": False,
        "service_role": True,
        "authenticator": False,
    }
