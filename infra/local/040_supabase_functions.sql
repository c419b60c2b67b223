-- Stand-in for the schema the dashboard's "Database Webhooks" switch
-- creates: supabase_functions.http_request, a trigger function that sends
-- the row through pg_net. It calls net.http_post at run time, so it needs the
-- pg_net extension (a migration creates it).
-- A trigger whose arguments are url, method, headers, params, timeout_ms.
create schema if not exists supabase_functions;

create or replace function supabase_functions.http_request() returns trigger
language plpgsql security definer
set search_path = supabase_functions
as $$
declare
  url text := tg_argv[0]::text;
  method text := upper(coalesce(tg_argv[1]::text, 'POST'));
  headers jsonb := coalesce(nullif(tg_argv[2]::text, 'null'), '{}')::jsonb;
  params jsonb := coalesce(nullif(tg_argv[3]::text, 'null'), '{}')::jsonb;
  timeout_ms integer := coalesce(tg_argv[4]::integer, 1000);
  payload jsonb;
begin
  if url is null or url = 'null' then
    raise exception 'supabase_functions.http_request: url argument is missing';
  end if;
  payload := jsonb_build_object(
    'type', tg_op,
    'table', tg_table_name,
    'schema', tg_table_schema,
    'record', case when tg_op in ('INSERT', 'UPDATE') then to_jsonb(new) end,
    'old_record', case when tg_op in ('UPDATE', 'DELETE') then to_jsonb(old) end
  );
  if method = 'GET' then
    perform net.http_get(url, params, headers, timeout_ms);
  else
    perform net.http_post(url, payload, params, headers, timeout_ms);
  end if;
  return coalesce(new, old);
end;
$$;

alter schema supabase_functions owner to supabase_admin;
grant usage on schema supabase_functions to postgres, anon, authenticated, service_role;
alter function supabase_functions.http_request() owner to supabase_functions_admin;
