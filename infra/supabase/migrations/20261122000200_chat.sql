-- 1:1 chat (seed 003): users linked to an external "mongo" id, threads with a
-- deterministic id, messages. Clients only read, and only their own threads;
-- writes go through the RPCs in a later migration.

create table public.chat_users (
  user_id uuid primary key references auth.users (id) on delete cascade,
  -- '__' separates the two ids in a thread id, so it may not appear in one.
  mongo_user_id text not null unique
    check (mongo_user_id ~ '^\S{1,128}$' and strpos(mongo_user_id, '__') = 0),
  created_at timestamptz not null default now(),
  updated_at timestamptz not null default now()
);

-- The link comes from app_metadata, which only the service can write. The
-- seed kept it in user_metadata, which every user can edit: a forged link
-- would let anyone read another user's chats.
create or replace function private.sync_chat_user() returns trigger
language plpgsql security definer
set search_path = ''
as $$
declare
  linked text := nullif(btrim(new.raw_app_meta_data ->> 'mongo_user_id'), '');
begin
  if linked is null then
    delete from public.chat_users where user_id = new.id;
  else
    insert into public.chat_users (user_id, mongo_user_id)
    values (new.id, linked)
    on conflict (user_id) do update
      set mongo_user_id = excluded.mongo_user_id, updated_at = now()
      where public.chat_users.mongo_user_id is distinct from excluded.mongo_user_id;
  end if;
  return new;
end;
$$;

create trigger sync_chat_user
  after insert or update of raw_app_meta_data on auth.users
  for each row execute function private.sync_chat_user();

insert into public.chat_users (user_id, mongo_user_id)
select u.id, btrim(u.raw_app_meta_data ->> 'mongo_user_id')
from auth.users u
where nullif(btrim(u.raw_app_meta_data ->> 'mongo_user_id'), '') is not null
on conflict do nothing;

create table public.chat_threads (
  thread_id text primary key,
  user_a_mongo_id text not null,
  user_b_mongo_id text not null,
  user_a_supabase_id uuid not null references auth.users (id) on delete cascade,
  user_b_supabase_id uuid not null references auth.users (id) on delete cascade,
  created_at timestamptz not null default now(),
  last_message_at timestamptz,
  -- Byte order, as JavaScript's default sort orders ASCII ids.
  constraint chat_threads_sorted check (user_a_mongo_id collate "C" < user_b_mongo_id collate "C"),
  constraint chat_threads_id_format check (thread_id = user_a_mongo_id || '__' || user_b_mongo_id)
);
create index chat_threads_user_a_idx on public.chat_threads (user_a_supabase_id);
create index chat_threads_user_b_idx on public.chat_threads (user_b_supabase_id);

create table public.chat_messages (
  id uuid primary key default gen_random_uuid(),
  thread_id text not null references public.chat_threads (thread_id) on delete cascade,
  sender_supabase_id uuid not null,
  sender_mongo_id text not null,
  recipient_mongo_id text not null,
  body text not null check (char_length(body) between 1 and 4000),
  created_at timestamptz not null default now(),
  -- Set by the client so a retried send is stored once.
  client_id uuid
);
-- Newest first, keyset-paginated on (created_at, id).
create index chat_messages_thread_history_idx
  on public.chat_messages (thread_id, created_at desc, id desc);
create unique index chat_messages_client_id_idx
  on public.chat_messages (sender_supabase_id, client_id) where client_id is not null;

alter table public.chat_users enable row level security;
alter table public.chat_threads enable row level security;
alter table public.chat_messages enable row level security;

revoke all on public.chat_users, public.chat_threads, public.chat_messages from anon;
revoke insert, update, delete, truncate, references, trigger
  on public.chat_users, public.chat_threads, public.chat_messages from authenticated;

create policy chat_users_self on public.chat_users for select to authenticated
using (user_id = (select auth.uid()));

create policy chat_threads_participants on public.chat_threads for select to authenticated
using (
  user_a_supabase_id = (select auth.uid())
  or user_b_supabase_id = (select auth.uid())
);

-- An uncorrelated subquery: Postgres runs it once per statement and hashes
-- the caller's thread ids, so reading a page costs one index scan.
create policy chat_messages_participants on public.chat_messages for select to authenticated
using (
  thread_id in (
    select t.thread_id from public.chat_threads t
    where t.user_a_supabase_id = (select auth.uid())
       or t.user_b_supabase_id = (select auth.uid())
  )
);
