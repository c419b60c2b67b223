-- Spaces, beings and intentions (seed 000), with RLS that maps the signed-in
-- auth user to the beings linked to it. The seed compared a being id such as
-- '@alice' with the JWT's uuid `sub`, which never matches.

-- Helpers for policies and secrets that the API must never list or call.
create schema if not exists private;
revoke all on schema private from public;
-- Policies run with the caller's rights, so the API roles need to reach the
-- policy helpers (and only those: no table in this schema is granted).
grant usage on schema private to anon, authenticated, service_role;
alter default privileges in schema private revoke execute on functions from public;

create or replace function private.set_modified_at() returns trigger
language plpgsql
set search_path = ''
as $$
begin
  new.modified_at := now();
  return new;
end;
$$;

create table public.beings (
  id text primary key check (char_length(id) between 1 and 255),
  name text not null check (char_length(name) between 1 and 256),
  type text not null check (type in ('guest', 'space', 'document', 'user', 'bot')),
  created_at timestamptz not null default now(),
  modified_at timestamptz not null default now(),
  owner_id text references public.beings (id) on delete set null,
  location_id text references public.beings (id) on delete set null,
  -- The auth user who speaks as this being. A column (not the seed's ext_ids
  -- JSON) so the policies below can use an index.
  auth_user_id uuid references auth.users (id) on delete set null,
  ext_ids jsonb not null default '[]'::jsonb,
  id_history jsonb not null default '[]'::jsonb,
  metadata jsonb not null default '{}'::jsonb,
  properties jsonb not null default '{}'::jsonb,
  content jsonb not null default '{}'::jsonb,
  -- A being with a model is a bot. Its API key is not here: see private.bot_secrets.
  bot_model text,
  bot_prompt text
);
create index beings_owner_idx on public.beings (owner_id);
create index beings_location_idx on public.beings (location_id);
create index beings_auth_user_idx on public.beings (auth_user_id) where auth_user_id is not null;
create index beings_bots_by_location_idx on public.beings (location_id) where bot_model is not null;

create table public.intentions (
  id text primary key check (char_length(id) between 1 and 255),
  name text not null check (char_length(name) between 1 and 256),
  type text not null check (type in ('utterance', 'error')),
  created_at timestamptz not null default now(),
  modified_at timestamptz not null default now(),
  owner_id text not null references public.beings (id) on delete cascade,
  location_id text not null references public.beings (id) on delete cascade,
  state text not null check (state in ('draft', 'active', 'paused', 'complete', 'cancelled', 'failed')),
  content jsonb not null default '{}'::jsonb
);
create index intentions_owner_idx on public.intentions (owner_id);
create index intentions_location_created_idx on public.intentions (location_id, created_at);

create trigger beings_modified_at before update on public.beings
  for each row execute function private.set_modified_at();
create trigger intentions_modified_at before update on public.intentions
  for each row execute function private.set_modified_at();

alter publication supabase_realtime add table public.intentions;

-- Bots' provider keys: no grant to anon, authenticated or service_role, so
-- neither the REST API nor a policy mistake can expose them. Only SECURITY
-- DEFINER functions granted to service_role read them.
create table private.bot_secrets (
  bot_id text primary key references public.beings (id) on delete cascade,
  llm_api_key text not null,
  updated_at timestamptz not null default now()
);

-- The beings the caller speaks as.
create or replace function private.my_being_ids() returns setof text
language sql stable security definer
set search_path = ''
as $$
  select b.id from public.beings b where b.auth_user_id = (select auth.uid())
$$;

-- The spaces whose contents the caller may see: those their beings own or
-- are located in.
create or replace function private.my_space_ids() returns setof text
language sql stable security definer
set search_path = ''
as $$
  with mine as (
    select b.id, b.location_id from public.beings b
    where b.auth_user_id = (select auth.uid())
  )
  select s.id from public.beings s where s.owner_id in (select id from mine)
  union
  select location_id from mine where location_id is not null
$$;

grant execute on function private.my_being_ids(), private.my_space_ids() to authenticated;

alter table public.beings enable row level security;
alter table public.intentions enable row level security;

-- Clients read through RLS; beings are managed by the service, so clients
-- have no write policy on them (moving a being would let it see a space).
revoke insert, update, delete, truncate, references, trigger on public.beings from anon, authenticated;
revoke delete, truncate, references, trigger on public.intentions from anon, authenticated;

create policy beings_visible on public.beings for select to authenticated
using (
  id in (select private.my_being_ids())
  or id in (select private.my_space_ids())
  or location_id in (select private.my_space_ids())
);

create policy intentions_visible on public.intentions for select to authenticated
using (location_id in (select private.my_space_ids()));

-- Ids under '/bot-' are reserved for bot replies, so a user cannot take the
-- id a reply will be written under.
create policy intentions_speak on public.intentions for insert to authenticated
with check (
  type = 'utterance'
  and left(id, 5) <> '/bot-'
  and owner_id in (select private.my_being_ids())
  and location_id in (select private.my_space_ids())
);

create policy intentions_edit_own on public.intentions for update to authenticated
using (owner_id in (select private.my_being_ids()))
with check (
  type = 'utterance'
  and owner_id in (select private.my_being_ids())
  and location_id in (select private.my_space_ids())
);
