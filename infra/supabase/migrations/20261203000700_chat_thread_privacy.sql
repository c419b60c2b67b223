-- A stranger cannot learn whether two users have a thread.
--
-- insert_chat_message answered 403 not_participant for someone else's thread
-- and 404 unknown_thread for one that does not exist, so anyone signed in
-- could probe 'ada__bob' and learn that Ada and Bob talk. Now every chat RPC
-- answers both with 404 unknown_thread (private.require_chat_participant,
-- 20261203000400), the same status, code and message.

-- As before (20261122000400), with the thread found through
-- require_chat_participant.
create or replace function public.insert_chat_message(
  _thread_id text, _body text, _client_id uuid default null
) returns jsonb
language plpgsql volatile security definer
set search_path = ''
as $$
declare
  me record := private.require_chat_user();
  thread public.chat_threads := private.require_chat_participant(_thread_id, me.user_id);
  body text := regexp_replace(_body, '^\s+|\s+$', '', 'g');
  msg public.chat_messages;
begin
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

-- The seed's signature: a stranger gets the same 404 before the ids it
-- names are compared (a 403 sender_mismatch would tell the thread exists).
create or replace function public.insert_chat_message(
  _thread_id text, _sender_mongo_id text, _recipient_mongo_id text, _body text
) returns public.chat_messages
language plpgsql volatile security definer
set search_path = ''
as $$
declare
  me record := private.require_chat_user();
  thread public.chat_threads := private.require_chat_participant(_thread_id, me.user_id);
  stored jsonb;
begin
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
