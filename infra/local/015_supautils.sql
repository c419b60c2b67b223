-- Stand-in for the supautils extension's `policy_grants`: on hosted,
-- `postgres` may CREATE/ALTER/DROP POLICY on a fixed list of tables it does
-- not own (supautils.policy_grants in supabase/postgres), and on nothing else
-- it does not own. Plain PostgreSQL only lets the owner do that. Emulated
-- with event triggers: when a policy command starts, the role running it is
-- made a member of the owners of its listed tables (which satisfies the
-- owner check without touching the tables' ACLs); when it ends the
-- memberships are revoked, and a command that touched any other table not
-- the role's own is refused. An error rolls everything back with the
-- transaction.
create schema if not exists platform_local;
revoke all on schema platform_local from public;

create table if not exists platform_local.policy_grants (
  role_name name not null,
  table_name text not null,
  primary key (role_name, table_name)
);
-- Hosted's list for postgres (tables that do not exist here are skipped).
insert into platform_local.policy_grants (role_name, table_name)
select 'postgres', t from unnest(array[
  'auth.audit_log_entries', 'auth.identities', 'auth.refresh_tokens', 'auth.sessions',
  'auth.users', 'realtime.messages', 'storage.buckets', 'storage.migrations',
  'storage.objects', 'storage.s3_multipart_uploads', 'storage.s3_multipart_uploads_parts'
]) t
on conflict do nothing;

-- Memberships granted for the command under way.
create table if not exists platform_local.policy_loans (
  member name not null,
  owner_role name not null,
  primary key (member, owner_role)
);

-- Inside SECURITY DEFINER current_user is the function's owner; the role
-- running the command is the SET ROLE one, else the session's.
create or replace function platform_local.invoker() returns name
language sql stable
set search_path = ''
as $$
  select coalesce(nullif(current_setting('role'), 'none'), session_user)::name
$$;

create or replace function platform_local.give_back_policy_owners() returns void
language plpgsql security definer
set search_path = ''
as $$
declare
  loan record;
begin
  for loan in delete from platform_local.policy_loans returning member, owner_role loop
    execute format('revoke %I from %I', loan.owner_role, loan.member);
  end loop;
end;
$$;

-- Refuses a policy on `target` unless the role owns it (without the loan)
-- or the table is on its list.
create or replace function platform_local.check_policy_target(target regclass) returns void
language plpgsql security definer
set search_path = ''
as $$
declare
  who name := platform_local.invoker();
begin
  -- The platform creating a privileged extension as the superuser
  -- (016_privileged_extensions.sql): its policies are the platform's own.
  -- Asked of 016's own record, which no session can write.
  if platform_local.creating_extension() then
    return;
  end if;
  if pg_catalog.pg_has_role(who, (select c.relowner from pg_catalog.pg_class c where c.oid = target), 'USAGE')
     or exists (
       select 1 from platform_local.policy_grants g
       where g.role_name = who and to_regclass(g.table_name) = target
     ) then
    return;
  end if;
  raise exception 'must be owner of table %', (select c.relname from pg_catalog.pg_class c where c.oid = target)
    using errcode = '42501';
end;
$$;

create or replace function platform_local.lend_policy_owners() returns event_trigger
language plpgsql security definer
set search_path = ''
as $$
declare
  who name := platform_local.invoker();
  owner_role name;
begin
  perform platform_local.give_back_policy_owners();
  if (select r.rolsuper from pg_catalog.pg_roles r where r.rolname = who)
     or platform_local.creating_extension() then
    return;
  end if;
  for owner_role in
    select distinct o.rolname
    from platform_local.policy_grants g
    join pg_catalog.pg_class c on c.oid = to_regclass(g.table_name)
    join pg_catalog.pg_roles o on o.oid = c.relowner
    where g.role_name = who and not pg_catalog.pg_has_role(who, o.oid, 'USAGE')
  loop
    insert into platform_local.policy_loans (member, owner_role) values (who, owner_role);
    execute format('grant %I to %I', owner_role, who);
  end loop;
end;
$$;

create or replace function platform_local.end_policy_command() returns event_trigger
language plpgsql security definer
set search_path = ''
as $$
declare
  target regclass;
begin
  perform platform_local.give_back_policy_owners();
  for target in
    select p.polrelid::regclass
    from pg_catalog.pg_event_trigger_ddl_commands() d
    join pg_catalog.pg_policy p on p.oid = d.objid
    where d.classid = 'pg_catalog.pg_policy'::regclass
  loop
    perform platform_local.check_policy_target(target);
  end loop;
end;
$$;

create or replace function platform_local.end_policy_drop() returns event_trigger
language plpgsql security definer
set search_path = ''
as $$
declare
  target regclass;
begin
  perform platform_local.give_back_policy_owners();
  for target in
    select to_regclass(format('%I.%I', d.address_names[1], d.address_names[2]))
    from pg_catalog.pg_event_trigger_dropped_objects() d
    where d.object_type = 'policy'
  loop
    perform platform_local.check_policy_target(target);
  end loop;
end;
$$;

revoke all on all functions in schema platform_local from public;

do $$
begin
  if not exists (select from pg_event_trigger where evtname = 'platform_local_policy_grants_start') then
    create event trigger platform_local_policy_grants_start on ddl_command_start
      when tag in ('CREATE POLICY', 'ALTER POLICY', 'DROP POLICY')
      execute function platform_local.lend_policy_owners();
  end if;
  if not exists (select from pg_event_trigger where evtname = 'platform_local_policy_grants_end') then
    -- Also for DROP POLICY: one that drops nothing (IF EXISTS) fires no sql_drop.
    create event trigger platform_local_policy_grants_end on ddl_command_end
      when tag in ('CREATE POLICY', 'ALTER POLICY', 'DROP POLICY')
      execute function platform_local.end_policy_command();
  end if;
  if not exists (select from pg_event_trigger where evtname = 'platform_local_policy_grants_drop') then
    create event trigger platform_local_policy_grants_drop on sql_drop
      when tag in ('DROP POLICY')
      execute function platform_local.end_policy_drop();
  end if;
end
$$;
