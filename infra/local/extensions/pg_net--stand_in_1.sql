-- Stand-in for pg_net's SQL interface, written from its documented contract:
-- net.http_get/http_post/http_delete validate and queue a request in
-- net.http_request_queue and return its id; a worker (here the Python
-- process in infra/local/pg_net.py, woken by NOTIFY) takes each request off
-- the queue at once, sends it and records the outcome in net._http_response.
\echo Use "CREATE EXTENSION pg_net" to load this file. \quit

create schema if not exists net;

create domain net.http_method as text
  check (value ilike 'get' or value ilike 'post' or value ilike 'delete');

-- Unlogged, as pg_net's: a crash loses pending requests rather than slowing every insert.
create unlogged table net.http_request_queue (
  id bigserial,
  method net.http_method not null,
  url text not null,
  headers jsonb,
  body bytea,
  timeout_milliseconds integer not null
);

create unlogged table net._http_response (
  id bigint,
  status_code integer,
  content_type text,
  headers jsonb,
  content text,
  timed_out boolean,
  error_msg text,
  created timestamptz not null default now()
);
create index on net._http_response (created);

-- Percent-encodes everything but RFC 3986's unreserved characters.
create function net._urlencode_string(string varchar) returns text
language sql immutable strict
as $$
  select coalesce(string_agg(
    case when ch ~ '^[A-Za-z0-9_.~-]$' then ch
         else upper(regexp_replace(encode(convert_to(ch, 'UTF8'), 'hex'), '(..)', '%\1', 'g'))
    end, '' order by pos), '')
  from regexp_split_to_table(string, '') with ordinality as t(ch, pos)
$$;

-- The URL with the params appended; raises on a URL that does not parse
-- (no scheme, no host, whitespace or control characters), as pg_net's
-- libcurl URL parser does when the request is made.
create function net._encode_url_with_params(url text, params jsonb) returns text
language plpgsql immutable
as $$
declare
  query text;
begin
  if url is null
     or url !~ '^[A-Za-z][A-Za-z0-9+.-]*://[^[:space:][:cntrl:]/?#]+([/?#][^[:space:][:cntrl:]]*)?$' then
    raise exception 'invalid URL "%": Malformed input to a URL function', url
      using errcode = '22000';
  end if;
  select string_agg(net._urlencode_string(key) || '=' || net._urlencode_string(value), '&' order by key)
  into query
  from jsonb_each_text(coalesce(params, '{}'::jsonb));
  if query is null then
    return url;
  end if;
  return url || case when strpos(url, '?') > 0 then '&' else '?' end || query;
end;
$$;

-- Tells the worker there is work (it also polls, so a lost wake-up only delays).
create function net.wake() returns void
language sql
as $$ select pg_notify('pg_net_wake', '') $$;

create function net.http_get(
  url text,
  params jsonb default '{}'::jsonb,
  headers jsonb default '{}'::jsonb,
  timeout_milliseconds integer default 5000
) returns bigint
language plpgsql security definer
set search_path = net
as $$
declare
  request_id bigint;
begin
  insert into net.http_request_queue (method, url, headers, body, timeout_milliseconds)
  values ('GET', net._encode_url_with_params(url, params), headers, null, timeout_milliseconds)
  returning id into request_id;
  perform net.wake();
  return request_id;
end;
$$;

create function net.http_post(
  url text,
  body jsonb default '{}'::jsonb,
  params jsonb default '{}'::jsonb,
  headers jsonb default '{"Content-Type": "application/json"}'::jsonb,
  timeout_milliseconds integer default 5000
) returns bigint
language plpgsql security definer
set search_path = net
as $$
declare
  request_id bigint;
  content_type text;
begin
  select value into content_type
  from jsonb_each_text(coalesce(headers, '{}'::jsonb))
  where lower(key) = 'content-type'
  limit 1;
  if content_type is null then
    headers := coalesce(headers, '{}'::jsonb) || '{"Content-Type": "application/json"}'::jsonb;
  elsif content_type <> 'application/json' then
    raise exception 'Content-Type header must be "application/json"';
  end if;
  insert into net.http_request_queue (method, url, headers, body, timeout_milliseconds)
  values ('POST', net._encode_url_with_params(url, params), headers,
          convert_to(body::text, 'UTF8'), timeout_milliseconds)
  returning id into request_id;
  perform net.wake();
  return request_id;
end;
$$;

create function net.http_delete(
  url text,
  params jsonb default '{}'::jsonb,
  headers jsonb default '{}'::jsonb,
  timeout_milliseconds integer default 5000,
  body jsonb default null
) returns bigint
language plpgsql security definer
set search_path = net
as $$
declare
  request_id bigint;
begin
  insert into net.http_request_queue (method, url, headers, body, timeout_milliseconds)
  values ('DELETE', net._encode_url_with_params(url, params), headers,
          convert_to(body::text, 'UTF8'), timeout_milliseconds)
  returning id into request_id;
  perform net.wake();
  return request_id;
end;
$$;

-- pg_net's own grants, then what Supabase's grant_pg_net_access event
-- trigger does on CREATE EXTENSION: the request functions are callable by
-- the project's roles only.
grant usage on schema net to public;
grant all on all sequences in schema net to public;
grant all on all tables in schema net to public;
revoke all on function net.http_get(text, jsonb, jsonb, integer) from public;
revoke all on function net.http_post(text, jsonb, jsonb, jsonb, integer) from public;
revoke all on function net.http_delete(text, jsonb, jsonb, integer, jsonb) from public;
grant execute on function net.http_get(text, jsonb, jsonb, integer)
  to supabase_functions_admin, postgres, anon, authenticated, service_role;
grant execute on function net.http_post(text, jsonb, jsonb, jsonb, integer)
  to supabase_functions_admin, postgres, anon, authenticated, service_role;
grant execute on function net.http_delete(text, jsonb, jsonb, integer, jsonb)
  to supabase_functions_admin, postgres, anon, authenticated, service_role;
