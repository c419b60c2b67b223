-- Broadcast from the database: every new chat message is sent to the private
-- channel 'chat:<thread_id>', and only the thread's two participants may join
-- (receive) or send on it.

create or replace function private.broadcast_chat_message() returns trigger
language plpgsql security definer
set search_path = ''
as $$
begin
  perform realtime.broadcast_changes(
    'chat:' || new.thread_id, tg_op, tg_op, tg_table_name, tg_table_schema, new, old
  );
  return null;
end;
$$;

create trigger chat_messages_broadcast
  after insert on public.chat_messages
  for each row execute function private.broadcast_chat_message();

create or replace function private.is_chat_topic_participant(_topic text) returns boolean
language sql stable security definer
set search_path = ''
as $$
  select _topic like 'chat:%' and exists (
    select 1 from public.chat_threads t
    where t.thread_id = substr(_topic, 6)
      and (select auth.uid()) in (t.user_a_supabase_id, t.user_b_supabase_id)
  )
$$;
grant execute on function private.is_chat_topic_participant(text) to authenticated;

create policy chat_topic_receive on realtime.messages for select to authenticated
using (extension = 'broadcast' and private.is_chat_topic_participant(topic));

create policy chat_topic_send on realtime.messages for insert to authenticated
with check (extension = 'broadcast' and private.is_chat_topic_participant(topic));
