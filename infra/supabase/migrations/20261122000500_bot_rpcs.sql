-- The bot pipeline's database side, for the service role only: who should
-- answer an utterance, what a bot needs to answer, and writing its reply.

-- Everything bot-trigger needs in one round trip. The intention is read from
-- the table rather than trusted from the webhook payload.
create or replace function public.bots_for_utterance(_intention_id text) returns jsonb
language sql stable security definer
set search_path = ''
as $$
  select case when i.id is null then jsonb_build_object('found', false)
  else jsonb_build_object(
    'found', true,
    'type', i.type,
    'space_id', i.location_id,
    'speaker_id', i.owner_id,
    'speaker_is_bot', speaker.bot_model is not null,
    'bots', coalesce((
      select jsonb_agg(jsonb_build_object('id', b.id, 'name', b.name) order by b.id)
      from public.beings b
      where b.location_id = i.location_id and b.bot_model is not null and b.id <> i.owner_id
    ), '[]'::jsonb)
  ) end
  from (select 1) one
  left join public.intentions i on i.id = _intention_id
  left join public.beings speaker on speaker.id = i.owner_id
$$;

create or replace function private.bot_reply_id(_bot_id text, _trigger_id text, _type text)
returns text
language sql immutable
set search_path = ''
as $$
  select '/bot-' || case _type when 'error' then 'error-' else 'reply-' end
         || md5(_bot_id || '|' || _trigger_id)
$$;

-- A bot's model, prompt and key, the reply it may already have written for
-- this trigger, and the last utterances of the space up to the trigger,
-- oldest first.
create or replace function public.bot_context(
  _bot_id text, _trigger_id text, _limit int default 10
) returns jsonb
language plpgsql stable security definer
set search_path = ''
as $$
declare
  bot public.beings;
  trigger_row public.intentions;
  result jsonb;
begin
  select * into bot from public.beings b where b.id = _bot_id and b.bot_model is not null;
  if not found then
    perform private.raise_api_error(404, 'unknown_bot', 'no such bot');
  end if;
  select * into trigger_row from public.intentions i where i.id = _trigger_id;
  if not found then
    perform private.raise_api_error(404, 'unknown_trigger', 'no such intention');
  end if;

  select jsonb_build_object(
    'bot', jsonb_build_object(
      'id', bot.id, 'name', bot.name, 'model', bot.bot_model, 'prompt', bot.bot_prompt,
      'llm_api_key', (select s.llm_api_key from private.bot_secrets s where s.bot_id = bot.id),
      'in_space', bot.location_id is not distinct from trigger_row.location_id
    ),
    'space_id', trigger_row.location_id,
    'reply', (
      select jsonb_build_object('id', r.id, 'state', r.state)
      from public.intentions r
      where r.id = private.bot_reply_id(bot.id, trigger_row.id, 'utterance')
    ),
    'messages', coalesce((
      select jsonb_agg(m order by m.created_at, m.id)
      from (
        select i.id, i.owner_id as speaker_id, s.name as speaker_name,
               coalesce(i.content ->> 'text', '') as text,
               i.owner_id = bot.id as is_self, i.created_at
        from public.intentions i
        join public.beings s on s.id = i.owner_id
        where i.location_id = trigger_row.location_id
          and i.type = 'utterance'
          and i.state not in ('draft', 'cancelled', 'failed')
          and (i.created_at, i.id) <= (trigger_row.created_at, trigger_row.id)
        order by i.created_at desc, i.id desc
        limit greatest(_limit, 1)
      ) m
    ), '[]'::jsonb)
  ) into result;
  return result;
end;
$$;

-- Writes a bot's reply (or its error notice) under an id derived from
-- (bot, trigger), so a job delivered twice still leaves one reply. Called
-- again to update the text and state while streaming. A completed reply is
-- final: a late duplicate job cannot overwrite it ("written": false).
create or replace function public.write_bot_reply(
  _bot_id text, _trigger_id text, _text text, _state text, _type text default 'utterance'
) returns jsonb
language plpgsql volatile security definer
set search_path = ''
as $$
declare
  bot public.beings;
  space_id text;
  reply_id text := private.bot_reply_id(_bot_id, _trigger_id, _type);
  row_out public.intentions;
begin
  if _type not in ('utterance', 'error') then
    perform private.raise_api_error(400, 'invalid_type', 'type must be utterance or error');
  end if;
  if _state not in ('active', 'complete', 'failed') then
    perform private.raise_api_error(400, 'invalid_state', 'state must be active, complete or failed');
  end if;
  select * into bot from public.beings b where b.id = _bot_id and b.bot_model is not null;
  if not found then
    perform private.raise_api_error(404, 'unknown_bot', 'no such bot');
  end if;
  select i.location_id into space_id from public.intentions i where i.id = _trigger_id;
  if space_id is null then
    perform private.raise_api_error(404, 'unknown_trigger', 'no such intention');
  end if;

  insert into public.intentions as cur (id, name, type, owner_id, location_id, state, content)
  values (
    reply_id,
    left(case _type when 'error' then 'Error from ' else 'Response from ' end || bot.name, 256),
    _type, bot.id, space_id, _state,
    jsonb_build_object('text', coalesce(_text, ''), 'in_reply_to', _trigger_id)
  )
  on conflict (id) do update
    set content = excluded.content, state = excluded.state
    where cur.state <> 'complete' and cur.owner_id = excluded.owner_id
  returning * into row_out;

  if row_out.id is null then
    select * into row_out from public.intentions i where i.id = reply_id;
    return to_jsonb(row_out) || '{"written": false}'::jsonb;
  end if;
  return to_jsonb(row_out) || '{"written": true}'::jsonb;
end;
$$;

-- For operators (and the local demo): set or clear a bot's provider key.
create or replace function public.set_bot_llm_api_key(_bot_id text, _key text) returns void
language plpgsql volatile security definer
set search_path = ''
as $$
begin
  if not exists (select 1 from public.beings b where b.id = _bot_id and b.bot_model is not null) then
    perform private.raise_api_error(404, 'unknown_bot', 'no such bot');
  end if;
  if nullif(_key, '') is null then
    delete from private.bot_secrets where bot_id = _bot_id;
  else
    insert into private.bot_secrets (bot_id, llm_api_key) values (_bot_id, _key)
    on conflict (bot_id) do update set llm_api_key = excluded.llm_api_key, updated_at = now();
  end if;
end;
$$;

revoke execute on function public.bots_for_utterance(text) from public, anon, authenticated;
revoke execute on function public.bot_context(text, text, int) from public, anon, authenticated;
revoke execute on function public.write_bot_reply(text, text, text, text, text) from public, anon, authenticated;
revoke execute on function public.set_bot_llm_api_key(text, text) from public, anon, authenticated;
grant execute on function public.bots_for_utterance(text) to service_role;
grant execute on function public.bot_context(text, text, int) to service_role;
grant execute on function public.write_bot_reply(text, text, text, text, text) to service_role;
grant execute on function public.set_bot_llm_api_key(text, text) to service_role;
