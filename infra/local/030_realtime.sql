-- Stand-in for the Realtime server's schema: the broadcast table that
-- Realtime Authorization runs its RLS checks against, and the helpers that
-- write to it. Rows here are what Realtime would deliver to a channel.
--
-- As the Realtime server (v2.3x, PG15 tenants) leaves it: realtime.messages
-- is partitioned by day on inserted_at and owned by supabase_realtime_admin;
-- the server, not SQL, creates the daily partitions, so a send with no
-- partition for today only warns and nothing is broadcast.
create schema if not exists realtime;
alter schema realtime owner to supabase_admin;
grant usage on schema realtime to postgres, anon, authenticated, service_role;

create table if not exists realtime.messages (
  topic text not null,
  extension text not null,
  payload jsonb,
  event text,
  private boolean default false,
  updated_at timestamp not null default now(),
  inserted_at timestamp not null default now(),
  id uuid not null default gen_random_uuid(),
  binary_payload bytea,
  constraint messages_payload_exclusive check (payload is null or binary_payload is null),
  primary key (id, inserted_at)
) partition by range (inserted_at);
create index if not exists messages_inserted_at_topic_index
  on realtime.messages (inserted_at desc, topic)
  where extension = 'broadcast' and private is true;
alter table realtime.messages owner to supabase_realtime_admin;
alter table realtime.messages enable row level security;
revoke all on realtime.messages from anon, authenticated, service_role, postgres;
grant select, insert, update on realtime.messages to postgres, anon, authenticated, service_role;

-- The topic of the channel being joined: Realtime sets it per check.
create or replace function realtime.topic() returns text
language sql stable
as $$
  select nullif(current_setting('realtime.topic', true), '')::text
$$;

-- Runs as the caller (no SECURITY DEFINER), so the caller's INSERT grant and,
-- without BYPASSRLS, the table's policies apply. A failure only warns: a
-- broadcast never undoes the write that caused it.
create or replace function realtime.send(
  payload jsonb, event text, topic text, private boolean default true
) returns void
language plpgsql
as $$
declare
  generated_id uuid := gen_random_uuid();
begin
  begin
    perform set_config('realtime.topic', topic, true);
    insert into realtime.messages (id, payload, event, topic, private, extension)
    values (
      generated_id,
      case when payload ? 'id' then payload else jsonb_set(payload, '{id}', to_jsonb(generated_id)) end,
      event, topic, private, 'broadcast'
    );
  exception when others then
    raise warning 'WarnSendingBroadcastMessage: %', sqlerrm;
  end;
end;
$$;

create or replace function realtime.broadcast_changes(
  topic_name text, event_name text, operation text, table_name text,
  table_schema text, new record, old record, level text default 'ROW'
) returns void
language plpgsql
as $$
declare
  row_data jsonb := null;
  old_data jsonb := null;
begin
  if level = 'ROW' then
    if operation in ('INSERT', 'UPDATE') then row_data := to_jsonb(new); end if;
    if operation in ('UPDATE', 'DELETE') then old_data := to_jsonb(old); end if;
  end if;
  perform realtime.send(
    jsonb_build_object(
      'old_record', old_data, 'record', row_data, 'operation', operation,
      'table', table_name, 'schema', table_schema
    ),
    event_name, topic_name, true
  );
end;
$$;

alter function realtime.topic() owner to supabase_realtime_admin;
alter function realtime.send(jsonb, text, text, boolean) owner to supabase_realtime_admin;
alter function realtime.broadcast_changes(text, text, text, text, text, record, record, text)
  owner to supabase_realtime_admin;
grant execute on function realtime.topic() to postgres, anon, authenticated, service_role;

do $$
begin
  if not exists (select from pg_publication where pubname = 'supabase_realtime') then
    create publication supabase_realtime;
  end if;
end
$$;
-- Hosted's setup creates it as postgres, so the dashboard and migrations
-- (as postgres) can add tables to it.
alter publication supabase_realtime owner to postgres;

-- What the Realtime server does when it connects to a project and then
-- periodically: make the daily partitions from yesterday to three days ahead
-- (UTC dates, named messages_YYYY_MM_DD, owned by supabase_realtime_admin)
-- and drop the ones older than three days. Local only: infra.local.platform
-- calls it (tests and make dev); hosted needs nothing from the migrations.
create schema if not exists platform_local;
revoke all on schema platform_local from public;

create or replace function platform_local.maintain_realtime_partitions(
  today date default (now() at time zone 'utc')::date
) returns setof text
language plpgsql
set search_path = ''
as $$
declare
  day date;
  name text;
  part record;
begin
  for day in select generate_series(today - 1, today + 3, interval '1 day')::date loop
    name := 'messages_' || to_char(day, 'YYYY_MM_DD');
    if to_regclass('realtime.' || name) is null then
      execute format(
        'create table realtime.%I partition of realtime.messages for values from (%L) to (%L)',
        name, day::timestamp, (day + 1)::timestamp
      );
      execute format('alter table realtime.%I owner to supabase_realtime_admin', name);
      return next name;
    end if;
  end loop;
  for part in
    select c.relname from pg_catalog.pg_inherits i
    join pg_catalog.pg_class c on c.oid = i.inhrelid
    where i.inhparent = 'realtime.messages'::regclass
      and c.relname ~ '^messages_\d{4}_\d{2}_\d{2}$'
      and to_date(substr(c.relname, 10), 'YYYY_MM_DD') < today - 3
  loop
    execute format('drop table realtime.%I', part.relname);
  end loop;
end;
$$;
revoke all on function platform_local.maintain_realtime_partitions(date) from public;

select platform_local.maintain_realtime_partitions();
