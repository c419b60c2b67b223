-- The database webhook: each new utterance by a non-bot is POSTed to
-- bot-trigger through pg_net, in Supabase's webhook shape
-- {type, table, schema, record, old_record}.
--
-- The URL and the shared secret are not in this migration. Operators set them
-- once per project (see the README, "Deploy"):
--   insert into private.settings (key, value) values
--     ('bot_trigger_url', 'https://<api>/webhooks/bot-trigger'),
--     ('bot_trigger_secret', '<the WEBHOOK_SECRET of the functions>')
--   on conflict (key) do update set value = excluded.value;
-- Optional: 'bot_trigger_secret_header' (default x-webhook-secret).

create table private.settings (
  key text primary key,
  value text not null,
  updated_at timestamptz not null default now()
);

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

  perform net.http_post(
    url := url,
    body := jsonb_build_object(
      'type', tg_op, 'table', tg_table_name, 'schema', tg_table_schema,
      'record', to_jsonb(new), 'old_record', null
    ),
    headers := jsonb_build_object('Content-Type', 'application/json', header_name, secret),
    timeout_milliseconds := 5000
  );
  return null;
end;
$$;

create trigger intentions_bot_webhook
  after insert on public.intentions
  for each row when (new.type = 'utterance')
  execute function private.queue_bot_trigger_webhook();
