-- Stand-in for the roles a Supabase project has, as hosted sets them up.
-- Local only: hosted Supabase already has them, so migrations never create
-- them. Applied by the bootstrap superuser (supabase_admin); the migrations
-- then run as `postgres`, which is not a superuser on hosted.
do $$
begin
  if not exists (select from pg_roles where rolname = 'postgres') then
    create role postgres login;
  end if;
  if not exists (select from pg_roles where rolname = 'anon') then
    create role anon nologin;
  end if;
  if not exists (select from pg_roles where rolname = 'authenticated') then
    create role authenticated nologin;
  end if;
  if not exists (select from pg_roles where rolname = 'service_role') then
    create role service_role nologin bypassrls;
  end if;
  if not exists (select from pg_roles where rolname = 'authenticator') then
    -- PostgREST (and our direct adapter) log in as authenticator and switch to
    -- the request's role; NOINHERIT so it has no rights of its own.
    create role authenticator login noinherit password 'authenticator';
  end if;
  -- The services' own roles: GoTrue owns auth, Realtime owns its tables,
  -- pg_net's functions are granted to the functions admin.
  if not exists (select from pg_roles where rolname = 'supabase_auth_admin') then
    create role supabase_auth_admin login noinherit createrole noreplication;
  end if;
  if not exists (select from pg_roles where rolname = 'supabase_realtime_admin') then
    create role supabase_realtime_admin nologin noinherit noreplication;
  end if;
  if not exists (select from pg_roles where rolname = 'supabase_functions_admin') then
    create role supabase_functions_admin login noinherit createrole noreplication;
  end if;
end
$$;

-- The project's admin: what the dashboard, `supabase db push` and our
-- migrations run as. Not a member of the services' admin roles.
alter role postgres login nosuperuser createdb createrole replication bypassrls;
-- API roles inherit their grants (hosted changed them from NOINHERIT in 2023).
alter role anon inherit;
alter role authenticated inherit;
alter role service_role inherit;
alter role authenticator noinherit;
alter role anon set statement_timeout = '3s';
alter role authenticated set statement_timeout = '8s';
alter role authenticator set statement_timeout = '8s';
alter role authenticator set lock_timeout = '8s';

grant anon, authenticated, service_role to authenticator;
grant anon, authenticated, service_role to postgres;

-- The project database belongs to postgres, as hosted's setup leaves it, so
-- postgres can create schemas and (trusted) extensions in it.
do $$
begin
  execute format('alter database %I owner to postgres', current_database());
  execute format('grant all on database %I to postgres', current_database());
end
$$;

-- Supabase grants everything in public to the API roles and relies on RLS
-- (and on revoking EXECUTE per function) to narrow it down. The defaults are
-- per creating role: objects made by postgres (the migrations) and by
-- supabase_admin.
grant usage on schema public to postgres, anon, authenticated, service_role;
alter default privileges for role postgres in schema public grant all on tables to anon, authenticated, service_role;
alter default privileges for role postgres in schema public grant all on sequences to anon, authenticated, service_role;
alter default privileges for role postgres in schema public grant all on functions to anon, authenticated, service_role;
alter default privileges for role supabase_admin in schema public grant all on tables to postgres, anon, authenticated, service_role;
alter default privileges for role supabase_admin in schema public grant all on sequences to postgres, anon, authenticated, service_role;
alter default privileges for role supabase_admin in schema public grant all on functions to postgres, anon, authenticated, service_role;

-- Extensions live in their own schema, as on hosted.
create schema if not exists extensions;
grant usage on schema extensions to postgres, anon, authenticated, service_role;
create extension if not exists pgcrypto with schema extensions;
