-- Stand-in for pg_net: requests are queued, never sent by Postgres itself.
-- In local development a deliverer process drains the queue; in tests the
-- queue is what we assert on.
create schema if not exists net;

create table if not exists net.http_request_queue (
  id bigserial primary key,
  method text not null,
  url text not null,
  headers jsonb not null,
  body bytea,
  timeout_milliseconds integer not null
);

create table if not exists net._http_response (
  id bigint,
  status_code integer,
  content_type text,
  headers jsonb,
  content text,
  timed_out boolean,
  error_msg text,
  created timestamptz not null default now()
);

create or replace function net._with_query(url text, params jsonb) returns text
language sql immutable
as $$
  select case
    when params is null or params = '{}'::jsonb then url
    else url || case when url like '%?%' then '&' else '?' end || (
      select string_agg(key || '=' || value, '&' order by key)
      from jsonb_each_text(params)
    )
  end
$$;

create or replace function net.http_post(
  url text,
  body jsonb default '{}'::jsonb,
  params jsonb default '{}'::jsonb,
  headers jsonb default '{"Content-Type": "application/json"}'::jsonb,
  timeout_milliseconds integer default 5000
) returns bigint
language sql
as $$
  insert into net.http_request_queue (method, url, headers, body, timeout_milliseconds)
  values ('POST', net._with_query(url, params), headers,
          convert_to(body::text, 'UTF8'), timeout_milliseconds)
  returning id
$$;

create or replace function net.http_get(
  url text,
  params jsonb default '{}'::jsonb,
  headers jsonb default '{}'::jsonb,
  timeout_milliseconds integer default 5000
) returns bigint
language sql
as $$
  insert into net.http_request_queue (method, url, headers, body, timeout_milliseconds)
  values ('GET', net._with_query(url, params), headers, null, timeout_milliseconds)
  returning id
$$;

-- Database webhooks as the Supabase dashboard creates them: a trigger whose
-- arguments are url, method, headers, params, timeout_ms.
create schema if not exists supabase_functions;

create or replace function supabase_functions.http_request() returns trigger
language plpgsql
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
