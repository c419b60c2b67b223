-- The chat's write path. Identity always comes from auth.uid() and the
-- thread row, never from the client. Errors use PostgREST's 'PTxxx' SQLSTATE
-- (the HTTP status) with a stable machine code in DETAIL.

create or replace function private.raise_api_error(_status int, _code text, _message text)
returns void
language plpgsql
set search_path = ''
as $$
begin
  raise exception using errcode = 'PT' || _status::text, message = _message, detail = _code;
end;
$$;

-- The caller's chat identity, or a 401/403.
create or replace function private.require_chat_user(out user_id uuid, out mongo_user_id text)
language plpgsql stable
set search_path = ''
as $$
begin
  user_id := auth.uid();
  if user_id is null then
    perform private.raise_api_error(401, 'not_authenticated', 'sign in first');
  end if;
  select c.mongo_user_id into mongo_user_id from public.chat_users c where c.user_id = require_chat_user.user_id;
  if mongo_user_id is null then
    perform private.raise_api_error(403, 'no_chat_identity', 'your account is not linked to a chat user');
  end if;
end;
$$;

create or replace function public.ensure_chat_thread(_other_mongo_id text)
returns public.chat_threads
language plpgsql volatile security definer
set search_path = ''
as $$
declare
  me record := private.require_chat_user();
  other_user uuid;
  thread public.chat_threads;
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
    thread.user_a_mongo_id := me.mongo_user_id;    thread.user_a_supabase_id := me.user_id;
    thread.user_b_mongo_id := _other_mongo_id;     thread.user_b_supabase_id := other_user;
  else
    thread.user_a_mongo_id := _other_mongo_id;     thread.user_a_supabase_id := other_user;
    thread.user_b_mongo_id := me.mongo_user_id;    thread.user_b_supabase_id := me.user_id;
  end if;
  thread.thread_id := thread.user_a_mongo_id || '__' || thread.user_b_mongo_id;

  -- Concurrent callers race on the primary key: one inserts, the others wait
  -- for it and then read the same row.
  insert into public.chat_threads
    (thread_id, user_a_mongo_id, user_b_mongo_id, user_a_supabase_id, user_b_supabase_id)
  values (thread.thread_id, thread.user_a_mongo_id, thread.user_b_mongo_id,
          thread.user_a_supabase_id, thread.user_b_supabase_id)
  on conflict (thread_id) do nothing;

  select * into thread from public.chat_threads t where t.thread_id = thread.thread_id;
  return thread;
end;
$$;

-- Returns the stored row plus "replayed": true when _client_id had already
-- been used by the caller (the first row, not a second message).
create or replace function public.insert_chat_message(
  _thread_id text, _body text, _client_id uuid default null
) returns jsonb
language plpgsql volatile security definer
set search_path = ''
as $$
declare
  me record := private.require_chat_user();
  thread public.chat_threads;
  body text := regexp_replace(_body, '^\s+|\s+$', '', 'g');
  msg public.chat_messages;
begin
  select * into thread from public.chat_threads t where t.thread_id = _thread_id;
  if not found then
    perform private.raise_api_error(404, 'unknown_thread', 'no such thread');
  end if;
  if me.user_id not in (thread.user_a_supabase_id, thread.user_b_supabase_id) then
    perform private.raise_api_error(403, 'not_participant', 'you are not a participant of this thread');
  end if;
  if body is null or char_length(body) = 0 then
    perform private.raise_api_error(422, 'invalid_body', 'body must not be empty');
  end if;
  if char_length(body) > 4000 then
    perform private.raise_api_error(422, 'invalid_body', 'body must be at most 4000 characters');
  end if;

  insert into public.chat_messages
    (thread_id, sender_supabase_id, sender_mongo_id, recipient_mongo_id, body, client_id)
  values (
    thread.thread_id, me.user_id, me.mongo_user_id,
    case when me.user_id = thread.user_a_supabase_id
         then thread.user_b_mongo_id else thread.user_a_mongo_id end,
    body, _client_id
  )
  on conflict (sender_supabase_id, client_id) where client_id is not null do nothing
  returning * into msg;

  if msg.id is null then
    select * into msg from public.chat_messages m
    where m.sender_supabase_id = me.user_id and m.client_id = _client_id;
    if msg.thread_id <> thread.thread_id then
      perform private.raise_api_error(409, 'client_id_reused', 'client_id was already used in another thread');
    end if;
    return to_jsonb(msg) || '{"replayed": true}'::jsonb;
  end if;

  update public.chat_threads t
  set last_message_at = greatest(coalesce(t.last_message_at, msg.created_at), msg.created_at)
  where t.thread_id = thread.thread_id;

  return to_jsonb(msg) || '{"replayed": false}'::jsonb;
end;
$$;

-- The seed's signature, kept for front ends that still call it. The ids it is
-- given are checked against the thread and the caller; the seed trusted them.
create or replace function public.insert_chat_message(
  _thread_id text, _sender_mongo_id text, _recipient_mongo_id text, _body text
) returns public.chat_messages
language plpgsql volatile security definer
set search_path = ''
as $$
declare
  me record := private.require_chat_user();
  thread public.chat_threads;
  stored jsonb;
begin
  select * into thread from public.chat_threads t where t.thread_id = _thread_id;
  if not found then
    perform private.raise_api_error(404, 'unknown_thread', 'no such thread');
  end if;
  if _sender_mongo_id is distinct from me.mongo_user_id
     or not (
       (thread.user_a_mongo_id = me.mongo_user_id and thread.user_b_mongo_id = _recipient_mongo_id)
       or (thread.user_b_mongo_id = me.mongo_user_id and thread.user_a_mongo_id = _recipient_mongo_id)
     ) then
    perform private.raise_api_error(403, 'sender_mismatch', 'sender and recipient must be you and the other participant');
  end if;
  stored := public.insert_chat_message(_thread_id, _body, null::uuid);
  return jsonb_populate_record(null::public.chat_messages, stored);
end;
$$;

revoke execute on function public.ensure_chat_thread(text) from public, anon, service_role;
revoke execute on function public.insert_chat_message(text, text, uuid) from public, anon, service_role;
revoke execute on function public.insert_chat_message(text, text, text, text) from public, anon, service_role;
grant execute on function public.ensure_chat_thread(text) to authenticated;
grant execute on function public.insert_chat_message(text, text, uuid) to authenticated;
grant execute on function public.insert_chat_message(text, text, text, text) to authenticated;
