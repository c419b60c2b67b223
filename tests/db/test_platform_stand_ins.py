"""The local stand-ins behave as hosted Supabase does (issue 12): roles and
ownership, supautils' policy grants, realtime.messages, pg_net, auth.users.
Each test names the hosted fact it holds the local platform to."""

from __future__ import annotations

import datetime as dt
import json
import uuid
from typing import Any

import psycopg
import pytest

from infra.local.partitions import maintain_realtime_partitions
from infra.local.pg_net import PgNetWorker
from tests.support.database import acting_as, create_user, rpc, warnings_of
from tests.support.webhooks import Receiver, responses

pytestmark = pytest.mark.db

API_ROLES = ("anon", "authenticated", "service_role")


def _memberships(conn: psycopg.Connection[Any], role: str) -> set[str]:
    rows = conn.execute(
        "select r.rolname from pg_auth_members m join pg_roles r on r.oid = m.roleid"
        " where m.member = %s::regrole",
        (role,),
    ).fetchall()
    return {r[0] for r in rows}


# Roles


def test_postgres_is_the_hosted_admin_not_a_superuser(admin: psycopg.Connection[Any]) -> None:
    row = admin.execute(
        "select current_user, rolsuper, rolbypassrls, rolcreaterole, rolcreatedb, rolreplication, rolcanlogin"
        " from pg_roles where rolname = current_user"
    ).fetchone()
    assert row == ("postgres", False, True, True, True, True, True)
    assert admin.execute("select rolname from pg_roles where oid = 10").fetchone() == (
        "supabase_admin",
    )
    assert _memberships(admin, "postgres") == set(API_ROLES)


def test_superuser_powers_are_refused_to_postgres(admin: psycopg.Connection[Any]) -> None:
    # What a migration needing a superuser (or the services' own roles) hits on hosted
    refused = [
        "alter table auth.users add column nickname text",
        "alter table realtime.messages add column extra text",
        "create event trigger t on ddl_command_start execute function pg_catalog.now()",
        "alter role postgres superuser",
    ]
    for statement in refused:
        with pytest.raises(psycopg.errors.InsufficientPrivilege):
            admin.execute(statement)


def test_api_roles_inherit_and_authenticator_times_out_after_8s(
    admin: psycopg.Connection[Any], api: psycopg.Connection[Any]
) -> None:
    rows = dict(
        admin.execute(
            "select rolname, rolinherit from pg_roles"
            " where rolname in ('anon', 'authenticated', 'service_role', 'authenticator')"
        ).fetchall()
    )
    assert rows == {
        "anon": True,
        "authenticated": True,
        "service_role": True,
        "authenticator": False,
    }
    assert api.execute("show statement_timeout").fetchone() == ("8s",)


def test_only_service_role_bypasses_rls(admin: psycopg.Connection[Any]) -> None:
    rows = dict(
        admin.execute(
            "select rolname, rolbypassrls from pg_roles"
            " where rolname in ('anon', 'authenticated', 'service_role', 'authenticator')"
        ).fetchall()
    )
    assert rows == {
        "anon": False,
        "authenticated": False,
        "service_role": True,
        "authenticator": False,
    }


def test_migrations_ran_as_postgres(admin: psycopg.Connection[Any]) -> None:
    owners = admin.execute(
        "select distinct pg_get_userbyid(relowner) from pg_class"
        " where relnamespace in ('public'::regnamespace, 'private'::regnamespace)"
    ).fetchall()
    assert owners == [("postgres",)]


# auth.users


def test_auth_users_is_gotrues_with_rls_and_nullable_metadata(
    admin: psycopg.Connection[Any],
) -> None:
    owner, rls = admin.execute(
        "select pg_get_userbyid(relowner), relrowsecurity from pg_class where oid = 'auth.users'::regclass"
    ).fetchone() or (None, None)
    assert (owner, rls) == ("supabase_auth_admin", True)
    column = admin.execute(
        "select is_nullable, column_default from information_schema.columns"
        " where table_schema = 'auth' and table_name = 'users' and column_name = 'raw_app_meta_data'"
    ).fetchone()
    assert column == ("YES", None)
    owners = admin.execute(
        "select distinct pg_get_userbyid(proowner) from pg_proc where pronamespace = 'auth'::regnamespace"
    ).fetchall()
    assert owners == [("supabase_auth_admin",)]


def test_the_api_roles_cannot_read_auth_users(api: psycopg.Connection[Any]) -> None:
    for role in API_ROLES:
        with (
            pytest.raises(psycopg.errors.InsufficientPrivilege),
            acting_as(api, {"role": role}) as cur,
        ):
            cur.execute("select count(*) from auth.users")


def test_triggers_on_auth_users_work_when_gotrue_writes(
    superuser: psycopg.Connection[Any], admin: psycopg.Connection[Any]
) -> None:
    # Given GoTrue (supabase_auth_admin) signs a user up with no metadata at all
    user_id = uuid.uuid4()
    superuser.execute("set role supabase_auth_admin")
    superuser.execute(
        "insert into auth.users (id, email) values (%s, 'new@example.test')", (user_id,)
    )
    assert admin.execute(
        "select count(*) from public.chat_users where user_id = %s", (user_id,)
    ).fetchone() == (0,)

    # When the service links the account in app_metadata
    superuser.execute(
        "update auth.users set raw_app_meta_data = %s where id = %s",
        (json.dumps({"provider": "email", "mongo_user_id": "m-new"}), user_id),
    )

    # Then the migration's trigger made the chat identity
    assert admin.execute(
        "select mongo_user_id from public.chat_users where user_id = %s", (user_id,)
    ).fetchone() == ("m-new",)


# supautils' policy_grants


def test_postgres_manages_policies_on_realtime_messages_in_one_multi_statement_migration(
    admin: psycopg.Connection[Any],
) -> None:
    acl_before = admin.execute(
        "select relacl::text from pg_class where oid = 'realtime.messages'::regclass"
    ).fetchone()
    admin.execute(
        "create policy probe_a on realtime.messages for select to authenticated using (false);"
        " alter policy probe_a on realtime.messages using (true);"
        " create policy probe_b on realtime.messages for insert to authenticated with check (false);"
        " drop policy probe_b on realtime.messages;"
        " drop policy if exists probe_missing on realtime.messages;"
    )
    names = admin.execute(
        "select polname from pg_policy where polrelid = 'realtime.messages'::regclass"
    ).fetchall()
    assert ("probe_a",) in names
    assert ("probe_b",) not in names
    # Nothing is left behind: no membership, the table's owner and grants unchanged
    assert _memberships(admin, "postgres") == set(API_ROLES)
    assert (
        admin.execute(
            "select relacl::text from pg_class where oid = 'realtime.messages'::regclass"
        ).fetchone()
        == acl_before
    )
    assert admin.execute(
        "select pg_get_userbyid(relowner) from pg_class where oid = 'realtime.messages'::regclass"
    ).fetchone() == ("supabase_realtime_admin",)


def test_postgres_gets_no_policy_rights_on_tables_not_listed(
    admin: psycopg.Connection[Any],
) -> None:
    partition = "realtime.messages_" + dt.datetime.now(dt.UTC).strftime("%Y_%m_%d")
    for statement in (
        f"create policy p on {partition} for select using (true)",
        "create policy p on platform_local.policy_grants for select using (true)",
    ):
        with pytest.raises(psycopg.errors.InsufficientPrivilege):
            admin.execute(statement)
    # A failed migration leaves no loan behind either
    with pytest.raises(psycopg.errors.UndefinedObject):
        admin.execute(
            "create policy ok on realtime.messages for select using (true); drop policy nope on realtime.messages"
        )
    assert _memberships(admin, "postgres") == set(API_ROLES)
    assert admin.execute("select count(*) from pg_policy where polname = 'ok'").fetchone() == (0,)


def test_no_session_can_claim_to_be_the_platform_creating_an_extension(
    admin: psycopg.Connection[Any],
) -> None:
    # Given postgres sets what the platform's own code path once used as its
    # switch (any session may set a custom setting)
    admin.execute("set platform_local.creating_extension = 'on'")
    partition = "realtime.messages_" + dt.datetime.now(dt.UTC).strftime("%Y_%m_%d")

    # Then the policy grants behave exactly as without it: allowed on a listed
    # table, refused elsewhere, in one multi-statement migration as on hosted
    admin.execute(
        "create policy probe_c on realtime.messages for select to authenticated using (false);"
        " drop policy probe_c on realtime.messages;"
    )
    with pytest.raises(psycopg.errors.InsufficientPrivilege):
        admin.execute(
            "create policy probe_d on realtime.messages for select using (true);"
            f" create policy p on {partition} for select using (true)"
        )
    assert _memberships(admin, "postgres") == set(API_ROLES)
    # And the record the platform's path keeps is closed to postgres
    with pytest.raises(psycopg.errors.InsufficientPrivilege):
        admin.execute(
            "insert into platform_local.creating_extensions values (pg_backend_pid(), pg_current_xact_id())"
        )


# realtime.messages


def test_realtime_messages_is_partitioned_as_the_real_one(admin: psycopg.Connection[Any]) -> None:
    strategy = admin.execute(
        "select partstrat, (select attname from pg_attribute where attrelid = partrelid and attnum = partattrs[0])"
        " from pg_partitioned_table where partrelid = 'realtime.messages'::regclass"
    ).fetchone()
    assert strategy == ("r", "inserted_at")
    key = admin.execute(
        "select array_agg(a.attname order by k.ord) from pg_index i"
        " cross join unnest(i.indkey) with ordinality k(attnum, ord)"
        " join pg_attribute a on a.attrelid = i.indrelid and a.attnum = k.attnum"
        " where i.indrelid = 'realtime.messages'::regclass and i.indisprimary"
    ).fetchone()
    assert key == (["id", "inserted_at"],)
    columns = {r[0] for r in admin.execute(
        "select column_name from information_schema.columns where table_schema = 'realtime' and table_name = 'messages'"
    )}  # fmt: skip
    assert "binary_payload" in columns
    checks = admin.execute(
        "select pg_get_constraintdef(oid) from pg_constraint where conrelid = 'realtime.messages'::regclass and contype = 'c'"
    ).fetchall()
    assert not any("extension" in c[0] for c in checks)
    privileges = admin.execute(
        "select array_agg(privilege_type::text order by privilege_type) from information_schema.role_table_grants"
        " where table_schema = 'realtime' and table_name = 'messages' and grantee = 'service_role'"
    ).fetchone()
    assert privileges == (["INSERT", "SELECT", "UPDATE"],)


def test_daily_partitions_are_named_and_owned_as_the_server_makes_them(
    admin: psycopg.Connection[Any],
) -> None:
    today = dt.datetime.now(dt.UTC).date()
    expected = {f"messages_{today + dt.timedelta(days=d):%Y_%m_%d}" for d in range(-1, 4)}
    rows = admin.execute(
        "select c.relname, pg_get_userbyid(c.relowner), pg_get_expr(c.relpartbound, c.oid)"
        " from pg_inherits i join pg_class c on c.oid = i.inhrelid"
        " where i.inhparent = 'realtime.messages'::regclass"
    ).fetchall()
    assert {r[0] for r in rows} >= expected
    assert {r[1] for r in rows} == {"supabase_realtime_admin"}
    bound = next(r[2] for r in rows if r[0] == f"messages_{today:%Y_%m_%d}")
    assert (
        bound
        == f"FOR VALUES FROM ('{today} 00:00:00') TO ('{today + dt.timedelta(days=1)} 00:00:00')"
    )


def test_partition_maintenance_recreates_missing_days_and_drops_old_ones(
    superuser: psycopg.Connection[Any], admin_dsn: str
) -> None:
    today = dt.datetime.now(dt.UTC).date()
    old = today - dt.timedelta(days=10)
    superuser.execute(f"drop table realtime.messages_{today:%Y_%m_%d}")
    superuser.execute(
        f"create table realtime.messages_{old:%Y_%m_%d} partition of realtime.messages"
        f" for values from ('{old}') to ('{old + dt.timedelta(days=1)}')"
    )
    assert maintain_realtime_partitions(admin_dsn) == [f"messages_{today:%Y_%m_%d}"]
    assert superuser.execute(
        f"select to_regclass('realtime.messages_{old:%Y_%m_%d}')"
    ).fetchone() == (None,)
    assert maintain_realtime_partitions(admin_dsn) == []


def test_realtime_send_adds_payload_id_and_sets_the_topic(admin: psycopg.Connection[Any]) -> None:
    with admin.transaction(force_rollback=True):
        admin.execute("select realtime.send('{\"a\": 1}', 'ping', 'room:1')")
        assert admin.execute("select realtime.topic()").fetchone() == ("room:1",)
        row = admin.execute(
            "select id, topic, event, payload, private, extension from realtime.messages"
        ).fetchone()
        assert row is not None
        assert row[1:3] == ("room:1", "ping")
        assert row[3] == {"a": 1, "id": str(row[0])}
        assert row[4:] == (True, "broadcast")
        admin.execute("select realtime.send('{\"id\": \"mine\"}', 'ping', 'room:1')")
        assert admin.execute(
            "select count(*) from realtime.messages where payload ->> 'id' = 'mine'"
        ).fetchone() == (1,)


def test_realtime_send_only_warns_without_a_partition_and_broadcasts_nothing(
    superuser: psycopg.Connection[Any], admin: psycopg.Connection[Any]
) -> None:
    # Given the Realtime server has not made today's partition
    today = dt.datetime.now(dt.UTC).date()
    superuser.execute(f"drop table realtime.messages_{today:%Y_%m_%d}")
    warnings = warnings_of(admin)

    # When the database broadcasts, the caller's write is not undone
    admin.execute("select realtime.send('{}', 'ping', 'room:1')")

    assert any(
        w.startswith("WarnSendingBroadcastMessage") and "no partition" in w for w in warnings
    )
    assert admin.execute("select count(*) from realtime.messages").fetchone() == (0,)


def test_a_chat_message_is_kept_when_its_broadcast_has_no_partition(
    superuser: psycopg.Connection[Any], admin: psycopg.Connection[Any], api: psycopg.Connection[Any]
) -> None:
    amy, _ = create_user(admin, "amy"), create_user(admin, "bob")
    thread = rpc(api, amy.claims(), "ensure_chat_thread", _other_mongo_id="bob")
    today = dt.datetime.now(dt.UTC).date()
    superuser.execute(f"drop table realtime.messages_{today:%Y_%m_%d}")
    row = rpc(api, amy.claims(), "insert_chat_message", _thread_id=thread["thread_id"], _body="hi")
    assert admin.execute(
        "select body from public.chat_messages where id = %s", (row["id"],)
    ).fetchone() == ("hi",)


# pg_net


def test_pg_net_is_an_extension_created_by_the_migrations(admin: psycopg.Connection[Any]) -> None:
    row = admin.execute(
        "select pg_get_userbyid(extowner), (select pg_get_userbyid(proowner) from pg_proc"
        " where oid = 'net.http_post(text, jsonb, jsonb, jsonb, integer)'::regprocedure)"
        " from pg_extension where extname = 'pg_net'"
    ).fetchone()
    # Created by postgres (a migration); its objects belong to the platform
    assert row == ("postgres", "supabase_admin")


def test_http_post_requires_exactly_json_content_type(admin: psycopg.Connection[Any]) -> None:
    for headers in (
        {"Content-Type": "text/plain"},
        {"content-type": "application/json; charset=utf-8"},
    ):
        with pytest.raises(psycopg.errors.RaiseException, match="Content-Type header must be"):
            admin.execute(
                "select net.http_post('http://127.0.0.1:9/x', '{}', headers => %s)",
                (json.dumps(headers),),
            )
    # Omitted, it is added; another header case is accepted
    admin.execute(
        "select net.http_post('http://127.0.0.1:9/x', '{}', headers => '{\"x-k\": \"v\"}')"
    )
    admin.execute(
        "select net.http_post('http://127.0.0.1:9/x', '{}', headers => '{\"content-type\": \"application/json\"}')"
    )


def test_http_post_rejects_malformed_urls(admin: psycopg.Connection[Any]) -> None:
    for url in ("not a url", "127.0.0.1:9/x", "http://", "http://exa mple.test/", "http://x/\n"):
        with pytest.raises(psycopg.errors.DataException, match="invalid URL"):
            admin.execute("select net.http_post(%s)", (url,))


def test_the_worker_sends_at_once_and_records_responses(
    admin: psycopg.Connection[Any], webhook_receiver: Receiver, pg_net_worker: PgNetWorker
) -> None:
    webhook_receiver.status = 201
    first = admin.execute(
        'select net.http_post(%s, \'{"k": 1}\', \'{"a": "b c"}\')', (webhook_receiver.url + "/x",)
    ).fetchone()
    [request] = webhook_receiver.wait_for(1)
    assert (request.path, request.json()) == ("/x?a=b%20c", {"k": 1})
    assert request.headers["content-type"] == "application/json"
    unreachable = admin.execute(
        "select net.http_get('http://127.0.0.1:9/nothing-listens')"
    ).fetchone()
    rows = responses(admin, 2)
    assert first is not None
    assert unreachable is not None
    assert [(r[0], r[1]) for r in rows] == [(first[0], 201), (unreachable[0], None)]
    assert rows[1][2]  # the error is recorded, as pg_net does


def test_supabase_functions_http_request_sends_the_webhook_payload(
    admin: psycopg.Connection[Any], webhook_receiver: Receiver, pg_net_worker: PgNetWorker
) -> None:
    admin.execute("create table public.things (id int primary key, name text)")
    admin.execute(
        "create trigger things_hook after insert or update on public.things for each row execute function"
        f" supabase_functions.http_request('{webhook_receiver.url}/hook', 'POST', '{{\"x-k\": \"v\"}}', '{{}}', '1000')"
    )
    admin.execute("insert into public.things values (1, 'a')")
    admin.execute("update public.things set name = 'b'")
    bodies = [r.json() for r in webhook_receiver.wait_for(2)]
    assert bodies[0] == {
        "type": "INSERT",
        "table": "things",
        "schema": "public",
        "record": {"id": 1, "name": "a"},
        "old_record": None,
    }
    assert bodies[1]["type"] == "UPDATE"
    assert bodies[1]["old_record"] == {"id": 1, "name": "a"}
    assert webhook_receiver.received[0].headers["x-k"] == "v"


# auth helpers


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
