-- Hardening against hostile members (issue 14). Written to run on hosted
-- Supabase as `postgres`, which owns public.* but not realtime.messages
-- (whose policies it may still manage).

------------------------------------------------------------------------------
-- Utterance size: one limit, enforced here, on every writer.
------------------------------------------------------------------------------

-- 16 KiB of content as JSON text (about 2,500 words): far beyond a chat line,
-- well under the functions' 64 KiB request limit, so the row a webhook or the
-- worker reads back always fits. Bot replies are cut to fit (write_bot_reply).
create or replace function private.max_intention_content_bytes() returns int
language sql immutable
set search_path = ''
as $$ select 16384 $$;
-- The CHECK below runs it as the writer: signed-in users (RLS-checked
-- inserts and updates) and the service.
grant execute on function private.max_intention_content_bytes() to authenticated, service_role;

-- NOT VALID: rows already stored stay readable; every new or updated row is checked.
alter table public.intentions
  add constraint intentions_content_size
  check (octet_length(content::text) <= private.max_intention_content_bytes()) not valid;

------------------------------------------------------------------------------
-- Bot reply ids belong to bots.
------------------------------------------------------------------------------

-- Clients write only what they mean: a new utterance's own fields, and later
-- its content and state. Never the id (a squatted '/bot-reply-' id silenced
-- the bot), the owner, the space, the type or the timestamps.
revoke insert, update on public.intentions from anon, authenticated;
grant insert (id, name, type, owner_id, location_id, state, content) on public.intentions to authenticated;
grant update (content, state) on public.intentions to authenticated;

-- Whoever writes (a client, the service, a later migration): an id under
-- '/bot-' is held only by a bot.
create or replace function private.guard_bot_reply_id() returns trigger
language plpgsql security definer
set search_path = ''
as $$
begin
  if left(new.id, 5) = '/bot-' and not exists (
    select 1 from public.beings b where b.id = new.owner_id and b.bot_model is not null
  ) then
    -- insufficient_privilege, as the insert policy refuses it: 403 through PostgREST.
    raise exception using errcode = '42501', detail = 'reserved_id',
      message = 'ids starting with /bot- are reserved for bot replies';
  end if;
  return new;
end;
$$;

create trigger intentions_guard_bot_reply_id
  before insert or update of id, owner_id on public.intentions
  for each row execute function private.guard_bot_reply_id();

-- Same as before, except that only the bot's own row counts as its reply.
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
        and r.owner_id = bot.id
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

-- As before, plus: the text is cut to the content limit, and an id held by
-- anything but this bot's own reply is an error (409 reply_id_taken), never a
-- silent "written": false. A completed reply of this bot stays final
-- ("written": false, so a duplicate job is a no-op).
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
  reply_text text := coalesce(_text, '');
  content jsonb;
  excess int;
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

  content := jsonb_build_object('text', reply_text, 'in_reply_to', _trigger_id);
  loop
    excess := octet_length(content::text) - private.max_intention_content_bytes();
    exit when excess <= 0;
    -- A character takes 1 to 6 bytes as JSON text: cut at least enough, at most 6 times too much.
    reply_text := left(reply_text, greatest(char_length(reply_text) - greatest((excess + 5) / 6, 1), 0));
    content := jsonb_build_object('text', reply_text, 'in_reply_to', _trigger_id);
  end loop;

  insert into public.intentions as cur (id, name, type, owner_id, location_id, state, content)
  values (
    reply_id,
    left(case _type when 'error' then 'Error from ' else 'Response from ' end || bot.name, 256),
    _type, bot.id, space_id, _state, content
  )
  on conflict (id) do update
    set content = excluded.content, state = excluded.state
    where cur.state <> 'complete' and cur.owner_id = excluded.owner_id and cur.type = excluded.type
  returning * into row_out;

  if row_out.id is null then
    select * into row_out from public.intentions i where i.id = reply_id;
    if row_out.owner_id is distinct from bot.id or row_out.type is distinct from _type then
      perform private.raise_api_error(409, 'reply_id_taken', 'the reply id is held by another row');
    end if;
    return to_jsonb(row_out) || '{"written": false}'::jsonb;
  end if;
  return to_jsonb(row_out) || '{"written": true}'::jsonb;
end;
$$;

------------------------------------------------------------------------------
-- Nobody but the database sends on a chat channel.
------------------------------------------------------------------------------

-- Participants could insert a broadcast copying the database's own INSERT
-- event with the other participant as sender. Clients never need to send on
-- chat:<thread_id> (messages go through insert_chat_message), so there is no
-- send policy at all: only the database's broadcast_changes writes there.
-- Realtime checks the send permission once per channel join, not per event,
-- so a policy limited to some event names would not hold.
drop policy if exists chat_topic_send on realtime.messages;

------------------------------------------------------------------------------
-- Thread ids are unambiguous.
------------------------------------------------------------------------------

-- thread_id = a || '__' || b. With '_' allowed at an id's ends, ('A_', 'b')
-- and ('A', '_b') both gave 'A___b'. An id has no whitespace, no '__', and no
-- '_' at either end: then the first '__' in a thread id is the separator.
create or replace function private.is_valid_mongo_id(_id text) returns boolean
language sql immutable
set search_path = ''
as $$
  select _id ~ '^\S{1,128}$' and strpos(_id, '__') = 0
     and left(_id, 1) <> '_' and right(_id, 1) <> '_'
$$;
-- chat_users is written by the sync trigger (as its owner) and, at most,
-- by the service; clients never write it.
grant execute on function private.is_valid_mongo_id(text) to service_role;

-- NOT VALID: a project holding an ambiguous id keeps working (and
-- ensure_chat_thread below never hands it someone else's thread); every new
-- or changed link is checked.
alter table public.chat_users
  add constraint chat_users_mongo_id_unambiguous
  check (private.is_valid_mongo_id(mongo_user_id)) not valid;

-- As before, plus: the row returned must be the caller's thread with that
-- user; anything else is an error, never someone else's thread.
create or replace function public.ensure_chat_thread(_other_mongo_id text)
returns public.chat_threads
language plpgsql volatile security definer
set search_path = ''
as $$
declare
  me record := private.require_chat_user();
  other_user uuid;
  thread public.chat_threads;
  wanted public.chat_threads;
begin
  if _other_mongo_id is null or btrim(_other_mongo_id) = '' then
    perform private.raise_api_error(400, 'invalid_other_mongo_id', 'other_mongo_id is required');
  end if;
  if _other_mongo_id = me.mongo_user_id then
    perform private.raise_api_error(400, 'self_thread', 'cannot open a chat thread with yourself');
  end if;
  select c.user_id into other_user from public.chat_users c where c.mongo_user_id = _other_mongo_id;
  if other_user is null then
    perform private.raise_api_error(404, 'unknown_user', 'no chat user has that id');
  end if;

  if me.mongo_user_id collate "C" < _other_mongo_id collate "C" then
    wanted.user_a_mongo_id := me.mongo_user_id;    wanted.user_a_supabase_id := me.user_id;
    wanted.user_b_mongo_id := _other_mongo_id;     wanted.user_b_supabase_id := other_user;
  else
    wanted.user_a_mongo_id := _other_mongo_id;     wanted.user_a_supabase_id := other_user;
    wanted.user_b_mongo_id := me.mongo_user_id;    wanted.user_b_supabase_id := me.user_id;
  end if;
  wanted.thread_id := wanted.user_a_mongo_id || '__' || wanted.user_b_mongo_id;

  -- Concurrent callers race on the primary key: one inserts, the others wait
  -- for it and then read the same row.
  insert into public.chat_threads
    (thread_id, user_a_mongo_id, user_b_mongo_id, user_a_supabase_id, user_b_supabase_id)
  values (wanted.thread_id, wanted.user_a_mongo_id, wanted.user_b_mongo_id,
          wanted.user_a_supabase_id, wanted.user_b_supabase_id)
  on conflict (thread_id) do nothing;

  select * into thread from public.chat_threads t where t.thread_id = wanted.thread_id;
  if (thread.user_a_supabase_id, thread.user_b_supabase_id, thread.user_a_mongo_id, thread.user_b_mongo_id)
     is distinct from
     (wanted.user_a_supabase_id, wanted.user_b_supabase_id, wanted.user_a_mongo_id, wanted.user_b_mongo_id) then
    perform private.raise_api_error(409, 'thread_id_conflict', 'that thread id belongs to another pair of users');
  end if;
  return thread;
end;
$$;
