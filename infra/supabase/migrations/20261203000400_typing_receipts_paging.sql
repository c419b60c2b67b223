-- The rest of the chat (issue 27): typing indicators on their own Realtime
-- topic, read receipts and unread counts, and keyset paging through history.
-- Written to run on hosted Supabase as `postgres`.

------------------------------------------------------------------------------
-- Typing indicators: 'typing:<thread_id>' and 'typing:<space id>'.
------------------------------------------------------------------------------

-- A participant needs a channel to send ephemeral events on, and
-- 'chat:<thread_id>' stays the database's alone (see the hardening
-- migration: Realtime checks the send right once per join, so no policy can
-- let a client send "typing" there without also letting it forge "INSERT").
-- So typing gets its own topic, which the database never broadcasts on:
-- nothing sent there can pass for a stored message.
--
-- 'typing:ada__bob' belongs to the thread's two participants and
-- 'typing:#lounge' to the space's members (those who may read its
-- intentions), the names after 'chat:' and 'space:'. A thread id and a
-- space id could be spelled alike (a being's id is free text), so a topic
-- that names an existing thread is the thread's alone: the space's members
-- are then refused (fail closed), never let into the thread's typing.
--
-- What a client sends there is its own (Realtime does not stamp the
-- sender): in a space a member could claim to be another. Show it as a hint.
create or replace function private.is_typing_topic_member(_topic text) returns boolean
language sql stable security definer
set search_path = ''
as $$
  select case
    when _topic is null or left(_topic, 7) <> 'typing:' then false
    when exists (select 1 from public.chat_threads t where t.thread_id = substr(_topic, 8))
      then exists (
        select 1 from public.chat_threads t
        where t.thread_id = substr(_topic, 8)
          and (select auth.uid()) in (t.user_a_supabase_id, t.user_b_supabase_id)
      )
    else substr(_topic, 8) in (select private.my_space_ids())
  end
$$;
grant execute on function private.is_typing_topic_member(text) to authenticated;

-- Broadcast only: receiving (the join's read check) and sending (the write
-- check). No presence there: who is online is on chat:/space:.
create policy typing_topic_receive on realtime.messages for select to authenticated
using (extension = 'broadcast' and private.is_typing_topic_member(topic));

create policy typing_topic_send on realtime.messages for insert to authenticated
with check (extension = 'broadcast' and private.is_typing_topic_member(topic));

------------------------------------------------------------------------------
-- Shared by the thread RPCs below.
------------------------------------------------------------------------------

-- The thread, if _user_id takes part in it; else 404 unknown_thread, whether
-- the thread does not exist or is someone else's: a stranger must not learn
-- whether two users have a thread (insert_chat_message answers the same
-- since 20261203000700).
create or replace function private.require_chat_participant(_thread_id text, _user_id uuid)
returns public.chat_threads
language plpgsql stable
set search_path = ''
as $$
declare
  thread public.chat_threads;
begin
  select * into thread from public.chat_threads t
  where t.thread_id = _thread_id and _user_id in (t.user_a_supabase_id, t.user_b_supabase_id);
  if not found then
    perform private.raise_api_error(404, 'unknown_thread', 'no such thread');
  end if;
  return thread;
end;
$$;

-- The page size every paging RPC accepts: 1 to 100 (default 50).
create or replace function private.page_limit(_limit int) returns int
language plpgsql immutable
set search_path = ''
as $$
begin
  if _limit is null or _limit < 1 or _limit > 100 then
    raise exception using errcode = 'PT400', detail = 'invalid_limit',
      message = 'limit must be between 1 and 100';
  end if;
  return _limit;
end;
$$;
-- The space's paging RPC runs as the caller (under RLS), so the caller runs it too.
grant execute on function private.page_limit(int) to authenticated;

------------------------------------------------------------------------------
-- Read receipts.
------------------------------------------------------------------------------

-- How far each participant has read a thread: one row per (thread, user),
-- the position of the newest message they marked read. The position is
-- kept as (created_at, id), the order history is shown in, so it means the
-- same even if that message were gone. Only mark_chat_thread_read writes it.
create table public.chat_read_marks (
  thread_id text not null references public.chat_threads (thread_id) on delete cascade,
  user_id uuid not null references auth.users (id) on delete cascade,
  message_id uuid not null,
  message_created_at timestamptz not null,
  read_at timestamptz not null default now(),
  primary key (thread_id, user_id)
);

alter table public.chat_read_marks enable row level security;
revoke all on public.chat_read_marks from anon;
revoke insert, update, delete, truncate, references, trigger on public.chat_read_marks from authenticated;

-- Both participants see both marks: a read receipt is the other's mark.
create policy chat_read_marks_participants on public.chat_read_marks for select to authenticated
using (
  thread_id in (
    select t.thread_id from public.chat_threads t
    where t.user_a_supabase_id = (select auth.uid())
       or t.user_b_supabase_id = (select auth.uid())
  )
);

-- Unread means: messages from the other participant after my mark (my own
-- messages are never unread to me). This index makes counting them one
-- short index-only range scan per thread: (sender, thread) equal,
-- (created_at, id) after the mark. The sender leads so that a page of a
-- thread (thread_id alone) keeps to chat_messages_thread_history_idx.
-- `if not exists`: on a large table the operator builds it CONCURRENTLY
-- before `db push` (README, Deploy; checked at the end of this file).
create index if not exists chat_messages_unread_idx
  on public.chat_messages (sender_supabase_id, thread_id, created_at, id);

-- _user_id's threads (or the one named), each with the other participant,
-- the unread count, _user_id's mark and the thread's last activity: one
-- query, per thread one range scan of chat_messages_unread_idx.
create or replace function private.chat_unread(_user_id uuid, _thread_id text default null)
returns table (
  thread_id text,
  other_mongo_id text,
  unread_count bigint,
  last_read_message_id uuid,
  last_message_at timestamptz
)
language sql stable
set search_path = ''
as $$
  select t.thread_id,
         case when t.user_a_supabase_id = _user_id then t.user_b_mongo_id else t.user_a_mongo_id end,
         unread.n,
         r.message_id,
         t.last_message_at
  from public.chat_threads t
  left join public.chat_read_marks r on r.thread_id = t.thread_id and r.user_id = _user_id
  cross join lateral (
    select count(*) as n from public.chat_messages m
    where m.thread_id = t.thread_id
      and m.sender_supabase_id = case when t.user_a_supabase_id = _user_id
                                      then t.user_b_supabase_id else t.user_a_supabase_id end
      and (m.created_at, m.id) > (coalesce(r.message_created_at, '-infinity'::timestamptz),
                                  coalesce(r.message_id, '00000000-0000-0000-0000-000000000000'::uuid))
  ) unread
  where (t.user_a_supabase_id = _user_id or t.user_b_supabase_id = _user_id)
    and (_thread_id is null or t.thread_id = _thread_id)
$$;

-- Marks the caller's read position in a thread at a message of that thread.
-- Monotonic: a message older than the current mark leaves it where it is
-- ("moved": false), so marks from several tabs or late requests never move
-- it back. Returns the mark, whether it moved, and the caller's unread count
-- in the thread. When it moves, the other participant learns it live: a
-- 'READ' broadcast on chat:<thread_id> (trigger below).
create or replace function public.mark_chat_thread_read(_thread_id text, _message_id uuid)
returns jsonb
language plpgsql volatile security definer
set search_path = ''
as $$
declare
  me record := private.require_chat_user();
  thread public.chat_threads := private.require_chat_participant(_thread_id, me.user_id);
  target public.chat_messages;
  mark public.chat_read_marks;
  moved boolean;
begin
  select * into target from public.chat_messages m
  where m.id = _message_id and m.thread_id = thread.thread_id;
  if not found then
    perform private.raise_api_error(404, 'unknown_message', 'no such message in this thread');
  end if;

  insert into public.chat_read_marks as cur (thread_id, user_id, message_id, message_created_at)
  values (thread.thread_id, me.user_id, target.id, target.created_at)
  on conflict (thread_id, user_id) do update
    set message_id = excluded.message_id,
        message_created_at = excluded.message_created_at,
        read_at = now()
    where (excluded.message_created_at, excluded.message_id) > (cur.message_created_at, cur.message_id)
  returning * into mark;
  moved := mark.thread_id is not null;
  if not moved then
    select * into mark from public.chat_read_marks r
    where r.thread_id = thread.thread_id and r.user_id = me.user_id;
  end if;

  return to_jsonb(mark) || jsonb_build_object(
    'moved', moved,
    'unread_count', (select u.unread_count from private.chat_unread(me.user_id, thread.thread_id) u)
  );
end;
$$;

-- The read receipt, sent by the database on the thread's own channel (where
-- no client may send), so it cannot be forged. Event 'READ'; the payload
-- names the reader and the message they have read up to.
create or replace function private.broadcast_chat_read() returns trigger
language plpgsql security definer
set search_path = ''
as $$
declare
  thread public.chat_threads;
begin
  select * into thread from public.chat_threads t where t.thread_id = new.thread_id;
  perform realtime.send(
    jsonb_build_object(
      'thread_id', new.thread_id,
      'reader_id', new.user_id,
      'reader_mongo_id', case when new.user_id = thread.user_a_supabase_id
                              then thread.user_a_mongo_id else thread.user_b_mongo_id end,
      'message_id', new.message_id,
      'message_created_at', new.message_created_at,
      'read_at', new.read_at
    ),
    'READ', 'chat:' || new.thread_id, true
  );
  return null;
end;
$$;

create trigger chat_read_marks_broadcast
  after insert or update on public.chat_read_marks
  for each row execute function private.broadcast_chat_read();

-- The caller's threads, each with its unread count (see private.chat_unread).
create or replace function public.chat_unread_counts()
returns table (
  thread_id text,
  other_mongo_id text,
  unread_count bigint,
  last_read_message_id uuid,
  last_message_at timestamptz
)
language sql stable security definer
set search_path = ''
as $$
  select u.* from private.require_chat_user() me, private.chat_unread(me.user_id) u
  order by u.last_message_at desc nulls last, u.thread_id
$$;

------------------------------------------------------------------------------
-- History paging: keyset on (created_at, id).
------------------------------------------------------------------------------

-- A page of a thread's messages, newest first: the newest _limit messages
-- (_before null), or those strictly before the message _before (which must
-- be in the thread). Pass the last row's id to get the next page back. A
-- keyset never shifts with new inserts, so pages never skip or repeat a
-- message; a message committed later arrives on chat:<thread_id> (subscribe
-- before loading the first page). Served by chat_messages_thread_history_idx.
create or replace function public.chat_messages_before(
  _thread_id text, _before uuid default null, _limit int default 50
) returns setof public.chat_messages
language plpgsql stable security definer
set search_path = ''
as $$
declare
  me record := private.require_chat_user();
  thread public.chat_threads := private.require_chat_participant(_thread_id, me.user_id);
  page_size int := private.page_limit(_limit);
  cursor_at timestamptz;
begin
  if _before is null then
    return query
      select * from public.chat_messages m where m.thread_id = thread.thread_id
      order by m.created_at desc, m.id desc limit page_size;
    return;
  end if;
  select m.created_at into cursor_at from public.chat_messages m
  where m.id = _before and m.thread_id = thread.thread_id;
  if not found then
    perform private.raise_api_error(404, 'unknown_message', 'no such message in this thread');
  end if;
  return query
    select * from public.chat_messages m
    where m.thread_id = thread.thread_id and (m.created_at, m.id) < (cursor_at, _before)
    order by m.created_at desc, m.id desc limit page_size;
end;
$$;

-- The same for a space's intentions (utterances and bots' error notices, as
-- its channel shows them), run as the caller: the intentions' own RLS
-- decides what is there. A caller who is not a member (or a space that does
-- not exist: the two are not told apart) is a 403.
create or replace function public.space_intentions_before(
  _space_id text, _before text default null, _limit int default 50
) returns setof public.intentions
language plpgsql stable security invoker
set search_path = ''
as $$
declare
  page_size int := private.page_limit(_limit);
  cursor_at timestamptz;
begin
  if _space_id is null or _space_id not in (select private.my_space_ids()) then
    raise exception using errcode = 'PT403', detail = 'not_member',
      message = 'you are not a member of this space';
  end if;
  if _before is null then
    return query
      select * from public.intentions i where i.location_id = _space_id
      order by i.created_at desc, i.id desc limit page_size;
    return;
  end if;
  select i.created_at into cursor_at from public.intentions i
  where i.id = _before and i.location_id = _space_id;
  if not found then
    raise exception using errcode = 'PT404', detail = 'unknown_intention',
      message = 'no such intention in this space';
  end if;
  return query
    select * from public.intentions i
    where i.location_id = _space_id and (i.created_at, i.id) < (cursor_at, _before)
    order by i.created_at desc, i.id desc limit page_size;
end;
$$;

-- (location_id, created_at) could not order ties on created_at by id; this
-- one serves the page above and bot_context's recent lines, and replaces it.
create index if not exists intentions_location_history_idx
  on public.intentions (location_id, created_at desc, id desc);
drop index if exists public.intentions_location_created_idx;

-- The two indexes above lock their table against writes while they build.
-- Not CONCURRENTLY: a file is one transaction (the schema builder's, and
-- `db push` sends a file as one implicit transaction; the pinned CLI runs a
-- CONCURRENTLY statement apart, committing what came before it, so a file
-- that fails after it is half applied and recorded as not applied). An
-- operator with large tables builds them concurrently first (README,
-- Deploy) and `if not exists` keeps theirs. But a concurrent build that
-- failed leaves an INVALID index of that name, which `if not exists` would
-- keep too, and a typo would keep another index under the name: refuse
-- both, saying what to do, rather than run without the index.
do $$
declare
  wanted record;
  problem text;
begin
  for wanted in
    select * from (values
      ('chat_messages_unread_idx', 'public.chat_messages',
       ' USING btree (sender_supabase_id, thread_id, created_at, id)'),
      ('intentions_location_history_idx', 'public.intentions',
       ' USING btree (location_id, created_at DESC, id DESC)')
    ) w (name, on_table, definition)
  loop
    select case
        when not i.indisvalid or not i.indisready then 'is INVALID (a CREATE INDEX CONCURRENTLY that failed)'
        when i.indrelid <> wanted.on_table::regclass or i.indisunique or i.indpred is not null
             or substring(pg_catalog.pg_get_indexdef(i.indexrelid) from ' USING .*$') <> wanted.definition
          then 'is not the one this migration builds: ' || pg_catalog.pg_get_indexdef(i.indexrelid)
      end
    into problem
    from pg_catalog.pg_index i
    where i.indexrelid = pg_catalog.to_regclass('public.' || wanted.name);
    if problem is not null then
      raise exception 'index public.% %', wanted.name, problem
        using hint = format('drop index concurrently public.%I; build it again as the README''s Deploy section says (or let this migration build it), then run db push again', wanted.name);
    end if;
  end loop;
end
$$;

revoke execute on function public.mark_chat_thread_read(text, uuid) from public, anon, service_role;
revoke execute on function public.chat_unread_counts() from public, anon, service_role;
revoke execute on function public.chat_messages_before(text, uuid, int) from public, anon, service_role;
revoke execute on function public.space_intentions_before(text, text, int) from public, anon, service_role;
grant execute on function public.mark_chat_thread_read(text, uuid) to authenticated;
grant execute on function public.chat_unread_counts() to authenticated;
grant execute on function public.chat_messages_before(text, uuid, int) to authenticated;
grant execute on function public.space_intentions_before(text, text, int) to authenticated;
