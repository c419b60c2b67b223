-- What the project needs from the platform, and two fixes found by checking
-- the migrations against a hosted project (issue 12).

-- 1. pg_net. Supabase does not create it by default; `postgres` may (it is
-- one of supautils' privileged extensions). Its worker sends the webhook.
create extension if not exists pg_net;

-- 2. No function in `private` is callable through the API unless granted.
-- PostgreSQL grants EXECUTE on every new function to PUBLIC, and
-- `alter default privileges in schema private revoke ... from public` cannot
-- undo that global default, so anon could run private.my_being_ids().
-- Revoke what exists, then turn the global default off for functions that
-- postgres creates from now on (API roles keep what Supabase's per-schema
-- defaults grant them in `public`).
do $$
declare
  fn regprocedure;
begin
  for fn in
    select p.oid::regprocedure from pg_catalog.pg_proc p
    where p.pronamespace = 'private'::regnamespace
  loop
    execute format('revoke execute on function %s from public, anon, authenticated, service_role', fn);
  end loop;
end
$$;
alter default privileges for role postgres revoke execute on functions from public;
-- RLS policies call these as the signed-in user.
grant execute on function private.my_being_ids(), private.my_space_ids(),
  private.is_chat_topic_participant(text) to authenticated;

-- 3. The bot webhook. A user's utterance is never lost because the webhook
-- plumbing is missing or broken: if the request cannot be queued (pg_net not
-- created, a malformed URL, ...) the insert still commits and a WARNING says
-- why. The body carries only the row's identity, so its size does not grow
-- with the utterance: bot-trigger reads the row itself (bots_for_utterance).
create or replace function private.queue_bot_trigger_webhook() returns trigger
language plpgsql security definer
set search_path = ''
as $$
declare
  url text;
  secret text;
  header_name text;
begin
  -- Bots never answer bots, so their replies need no webhook at all.
  if exists (select 1 from public.beings b where b.id = new.owner_id and b.bot_model is not null) then
    return null;
  end if;
  select
    max(value) filter (where key = 'bot_trigger_url'),
    max(value) filter (where key = 'bot_trigger_secret'),
    coalesce(max(value) filter (where key = 'bot_trigger_secret_header'), 'x-webhook-secret')
  into url, secret, header_name
  from private.settings
  where key in ('bot_trigger_url', 'bot_trigger_secret', 'bot_trigger_secret_header');

  if nullif(url, '') is null or nullif(secret, '') is null then
    raise warning 'bot webhook not configured: set bot_trigger_url and bot_trigger_secret in private.settings';
    return null;
  end if;

  begin
    perform net.http_post(
      url := url,
      body := jsonb_build_object(
        'type', tg_op, 'table', tg_table_name, 'schema', tg_table_schema,
        'record', jsonb_build_object('id', new.id), 'old_record', null
      ),
      headers := jsonb_build_object('Content-Type', 'application/json', header_name, secret),
      timeout_milliseconds := 5000
    );
  exception when others then
    raise warning 'bot webhook not queued for intention %: % (SQLSTATE %)', new.id, sqlerrm, sqlstate;
  end;
  return null;
end;
$$;
