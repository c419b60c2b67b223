-- Stand-in for how the Realtime server learns about new rows. Hosted
-- Realtime reads the WAL (logical replication); the local Realtime endpoint
-- (infra/dev/realtime) listens instead.
--
--   channel 'local_realtime_broadcast': {"id": ..., "topic": ...} for every
--     row inserted into realtime.messages (realtime.send, broadcast_changes);
--     the endpoint reads the row once and hands it to the topic's authorized
--     subscribers, as Realtime does.
--   channel 'local_realtime_changes': {"id": <staged id>} for every insert,
--     update or delete on a table in the publication supabase_realtime (what
--     postgres_changes subscribers listen to). The change itself (the row as
--     this statement left it, as the WAL records it) waits in
--     local_realtime.staged_changes: a notification holds at most 8000 bytes,
--     a row can hold far more. The endpoint takes (deletes) each staged change,
--     checks per subscriber, under RLS, that the row is visible to them, and
--     sends the staged record.
create schema if not exists local_realtime;
revoke all on schema local_realtime from public;

create or replace function local_realtime.notify_broadcast() returns trigger
language plpgsql security definer
set search_path = ''
as $$
begin
  perform pg_notify(
    'local_realtime_broadcast',
    json_build_object('id', new.id, 'topic', new.topic)::text
  );
  return null;
end;
$$;

-- A row trigger on the parent covers every partition (PostgreSQL 13+), so
-- this holds whether realtime.messages is a plain or a partitioned table.
drop trigger if exists local_realtime_broadcast on realtime.messages;
create trigger local_realtime_broadcast
  after insert on realtime.messages
  for each row execute function local_realtime.notify_broadcast();

-- Unlogged: a stand-in's queue, worth nothing after a crash (hosted
-- Realtime does not replay either). Rows a running endpoint never took
-- (none was listening) are cleaned up by the trigger below.
create unlogged table if not exists local_realtime.staged_changes (
  id bigserial primary key,
  staged_at timestamptz not null default now(),
  change jsonb not null
);
revoke all on local_realtime.staged_changes from public;

-- The trigger's arguments are the table's primary key columns.
create or replace function local_realtime.notify_change() returns trigger
language plpgsql security definer
set search_path = ''
as $$
declare
  source jsonb := to_jsonb(case when tg_op = 'DELETE' then old else new end);
  keys jsonb := '{}'::jsonb;
  column_name text;
  staged bigint;
begin
  foreach column_name in array tg_argv loop
    keys := keys || jsonb_build_object(column_name, source -> column_name);
  end loop;
  insert into local_realtime.staged_changes (change)
  values (jsonb_build_object(
    'schema', tg_table_schema, 'table', tg_table_name, 'type', tg_op, 'keys', keys,
    'record', case when tg_op = 'DELETE' then null else source end,
    'commit_timestamp', now()
  ))
  returning id into staged;
  -- Now and then, drop what no endpoint took (none was running).
  if staged % 500 = 0 then
    delete from local_realtime.staged_changes where staged_at < now() - interval '10 minutes';
  end if;
  perform pg_notify('local_realtime_changes', json_build_object('id', staged)::text);
  return null;
end;
$$;

-- What the endpoint calls per notification: the staged change, taken once.
create or replace function local_realtime.take_change(staged bigint) returns jsonb
language sql security definer
set search_path = ''
as $$
  delete from local_realtime.staged_changes where id = staged returning change
$$;
revoke all on function local_realtime.take_change(bigint) from public;

-- Puts the change trigger on every table of supabase_realtime that has a
-- primary key, and takes it off tables that left the publication.
create or replace function local_realtime.attach_change_triggers() returns void
language plpgsql security definer
set search_path = ''
as $$
declare
  target record;
begin
  for target in
    select c.oid, n.nspname, c.relname
    from pg_catalog.pg_trigger t
    join pg_catalog.pg_class c on c.oid = t.tgrelid
    join pg_catalog.pg_namespace n on n.oid = c.relnamespace
    where t.tgname = 'local_realtime_changes'
      and not exists (
        select 1 from pg_catalog.pg_publication_tables p
        where p.pubname = 'supabase_realtime' and p.schemaname = n.nspname and p.tablename = c.relname
      )
  loop
    execute format('drop trigger local_realtime_changes on %I.%I', target.nspname, target.relname);
  end loop;

  for target in
    select p.schemaname, p.tablename, (
      select string_agg(quote_literal(a.attname), ', ' order by k.ord)
      from pg_catalog.pg_index i
      cross join lateral unnest(i.indkey) with ordinality as k(attnum, ord)
      join pg_catalog.pg_attribute a on a.attrelid = i.indrelid and a.attnum = k.attnum
      where i.indrelid = format('%I.%I', p.schemaname, p.tablename)::regclass and i.indisprimary
    ) as key_args
    from pg_catalog.pg_publication_tables p
    where p.pubname = 'supabase_realtime'
  loop
    continue when target.key_args is null;
    execute format(
      'create or replace trigger local_realtime_changes after insert or update or delete on %I.%I'
      ' for each row execute function local_realtime.notify_change(%s)',
      target.schemaname, target.tablename, target.key_args
    );
  end loop;
end;
$$;

create or replace function local_realtime.on_publication_change() returns event_trigger
language plpgsql security definer
set search_path = ''
as $$
begin
  perform local_realtime.attach_change_triggers();
end;
$$;

-- Migrations run after the stand-ins, so tables join the publication later:
-- follow every change to a publication.
drop event trigger if exists local_realtime_publication;
create event trigger local_realtime_publication on ddl_command_end
  when tag in ('CREATE PUBLICATION', 'ALTER PUBLICATION')
  execute function local_realtime.on_publication_change();

select local_realtime.attach_change_triggers();
