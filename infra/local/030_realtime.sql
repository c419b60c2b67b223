-- Stand-in for the Realtime server's schema: the broadcast table that
-- Realtime Authorization runs its RLS checks against, and the helpers that
-- write to it. Rows here are what Realtime would deliver to a channel.
create schema if not exists realtime;
grant usage on schema realtime to anon, authenticated, service_role;

create table if not exists realtime.messages (
  id uuid not null default gen_random_uuid() primary key,
  topic text not null,
  extension text not null check (extension in ('broadcast', 'presence')),
  payload jsonb,
  event text,
  private boolean default false,
  inserted_at timestamp not null default now(),
  updated_at timestamp not null default now()
);
create index if not exists messages_topic_idx on realtime.messages (topic, inserted_at);
alter table realtime.messages enable row level security;
grant select, insert, update on realtime.messages to anon, authenticated;
grant all on realtime.messages to service_role;

-- The topic of the channel being joined: Realtime sets it per check.
create or replace function realtime.topic() returns text
language sql stable
as $$
  select nullif(current_setting('realtime.topic', true), '')::text
$$;

create or replace function realtime.send(
  payload jsonb, event text, topic text, private boolean default true
) returns void
language plpgsql
as $$
begin
  begin
    perform set_config('realtime.topic', topic, true);
    insert into realtime.messages (payload, event, topic, private, extension)
    values (payload, event, topic, private, 'broadcast');
  exception when others then
    -- A failed broadcast must never undo the write that caused it.
    raise warning 'realtime.send failed: %', sqlerrm;
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

grant execute on function realtime.topic() to anon, authenticated, service_role;

do $$
begin
  if not exists (select from pg_publication where pubname = 'supabase_realtime') then
    create publication supabase_realtime;
  end if;
end
$$;
