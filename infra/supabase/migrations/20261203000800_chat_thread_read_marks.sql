-- The read marks a thread already has, for a page that opens it.
--
-- A participant learns the other's mark live ('READ' on chat:<thread_id>,
-- 20261203000400), but only while subscribed: a page opened (or reloaded)
-- after the other read never showed "seen". This returns both
-- participants' marks in the READ payload's shape, so a client handles a
-- row as it handles the broadcast. SECURITY DEFINER like the other thread
-- RPCs: the thread check is private.require_chat_participant's, so a
-- stranger gets the 404 unknown_thread a missing thread gets.
create or replace function public.chat_thread_read_marks(_thread_id text)
returns table (
  thread_id text,
  reader_id uuid,
  reader_mongo_id text,
  message_id uuid,
  message_created_at timestamptz,
  read_at timestamptz
)
language plpgsql stable security definer
set search_path = ''
as $$
declare
  me record := private.require_chat_user();
  thread public.chat_threads := private.require_chat_participant(_thread_id, me.user_id);
begin
  return query
    select r.thread_id, r.user_id,
           case when r.user_id = thread.user_a_supabase_id
                then thread.user_a_mongo_id else thread.user_b_mongo_id end,
           r.message_id, r.message_created_at, r.read_at
    from public.chat_read_marks r
    where r.thread_id = thread.thread_id
    order by r.read_at, r.user_id;
end;
$$;

revoke execute on function public.chat_thread_read_marks(text) from public, anon, service_role;
grant execute on function public.chat_thread_read_marks(text) to authenticated;
