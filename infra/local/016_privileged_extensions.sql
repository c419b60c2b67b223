-- Stand-in for supautils' `privileged_extensions` and Supabase's after-create
-- grants: on hosted, `postgres` may create a listed extension that is not
-- trusted (pg_cron among them); supautils creates it as the superuser, so its
-- objects belong to supabase_admin, and Supabase's event trigger
-- (extensions.grant_pg_cron_access) then grants postgres what it may use.
-- Plain PostgreSQL lets only a superuser create pg_cron.
--
-- Emulated with an event trigger: when a role that is not a superuser starts
-- a CREATE EXTENSION whose text names a listed extension that is not
-- installed, the trigger (owned by supabase_admin) creates it first, as the
-- superuser, and runs its grants; the role's own command then finds it
-- installed. Hence the one difference from hosted: the command must say
-- `if not exists` (the migrations do). pg_cron's own rule still holds: it is
-- created only in the database named by cron.database_name.
--
-- Which extension the command names is read from its text: at
-- ddl_command_start PostgreSQL hands an event trigger no parse tree. The
-- match decides only which listed extension to create first, and hosted
-- lets postgres create any of them, so a false match costs nothing a
-- project could not do itself.
create schema if not exists platform_local;
revoke all on schema platform_local from public;

-- The transactions in which this stand-in is creating a privileged
-- extension as the superuser: the policies its install script makes are
-- the platform's own (015_supautils.sql lets them through). Only the
-- SECURITY DEFINER trigger below writes here (the schema is closed to every
-- other role), and its row lives and dies with that transaction, so no
-- session can claim to be the platform (a custom setting could be set by
-- anyone).
create table if not exists platform_local.creating_extensions (
  backend_pid int not null,
  transaction_id xid8 not null,
  primary key (backend_pid, transaction_id)
);
revoke all on platform_local.creating_extensions from public;

create or replace function platform_local.creating_extension() returns boolean
language sql volatile security definer
set search_path = ''
as $$
  select exists (
    select 1 from platform_local.creating_extensions c
    where c.backend_pid = pg_catalog.pg_backend_pid()
      and c.transaction_id = pg_catalog.pg_current_xact_id()
  )
$$;
revoke all on function platform_local.creating_extension() from public;

create table if not exists platform_local.privileged_extensions (
  name text primary key,
  create_options text not null default '',
  after_create text not null default ''
);
insert into platform_local.privileged_extensions (name, create_options, after_create)
values (
  'pg_cron', 'with schema pg_catalog',
  $grants$
    grant usage on schema cron to postgres with grant option;
    alter default privileges in schema cron grant all on tables to postgres with grant option;
    alter default privileges in schema cron grant all on functions to postgres with grant option;
    alter default privileges in schema cron grant all on sequences to postgres with grant option;
    alter default privileges for user supabase_admin in schema cron grant all on sequences to postgres with grant option;
    alter default privileges for user supabase_admin in schema cron grant all on tables to postgres with grant option;
    alter default privileges for user supabase_admin in schema cron grant all on functions to postgres with grant option;
    grant all privileges on all tables in schema cron to postgres with grant option;
    revoke all on table cron.job from postgres;
    grant select on table cron.job to postgres with grant option;
  $grants$
)
on conflict (name) do update
  set create_options = excluded.create_options, after_create = excluded.after_create;

create or replace function platform_local.create_privileged_extension() returns event_trigger
language plpgsql security definer
set search_path = ''
as $$
declare
  who name := coalesce(nullif(current_setting('role'), 'none'), session_user)::name;
  ext record;
begin
  if platform_local.creating_extension()
     or (select r.rolsuper from pg_catalog.pg_roles r where r.rolname = who) then
    return;
  end if;
  for ext in
    select p.name, p.create_options, p.after_create
    from platform_local.privileged_extensions p
    where not exists (select from pg_catalog.pg_extension e where e.extname = p.name)
      and pg_catalog.current_query() ~* (
        'create\s+extension\s+(if\s+not\s+exists\s+)?"?' || p.name || '"?(\s|;|$)')
  loop
    insert into platform_local.creating_extensions (backend_pid, transaction_id)
    values (pg_catalog.pg_backend_pid(), pg_catalog.pg_current_xact_id());
    execute format('create extension %I %s', ext.name, ext.create_options);
    execute ext.after_create;
    delete from platform_local.creating_extensions c
    where c.backend_pid = pg_catalog.pg_backend_pid()
      and c.transaction_id = pg_catalog.pg_current_xact_id();
  end loop;
end;
$$;
revoke all on function platform_local.create_privileged_extension() from public;

do $$
begin
  if not exists (select from pg_event_trigger where evtname = 'platform_local_privileged_extensions') then
    create event trigger platform_local_privileged_extensions on ddl_command_start
      when tag in ('CREATE EXTENSION')
      execute function platform_local.create_privileged_extension();
  end if;
end
$$;
