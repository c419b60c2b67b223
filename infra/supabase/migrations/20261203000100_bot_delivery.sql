-- At-least-once from an utterance to bot-trigger (issue 23).
--
-- pg_net sends a request once and never retries, so one failed webhook (a
-- cold start slower than its timeout, a 503, a deploy) used to lose the
-- bots' answer for good. Now every utterance a bot must answer gets a
-- delivery record, written by the webhook trigger in the same transaction as
-- the utterance: once the insert commits, the record exists. bot-trigger
-- acknowledges it (public.ack_bot_delivery) after the queue took the jobs; a
-- scheduled procedure (private.redeliver_all_bot_webhooks, every minute
-- through pg_cron, in committed batches of private.redeliver_bot_webhooks)
-- sends an unacknowledged one again with growing delays, and after
-- the last attempt gives up: each bot of the space posts a visible `error`
-- intention (at its deterministic error id) and the record stays, marked
-- `failed`, for an operator. A record it cannot read is logged with its id
-- and set aside (`unreadable`); one record never stops the others.
--
-- Tuning, in private.settings (numbers; a value that does not parse is
-- ignored, one out of range is taken as the nearest bound):
-- bot_delivery_max_attempts (6; 1 to 100), bot_delivery_retry_seconds (30:
-- the wait after the first delivery, doubled after each one; 0 to 86400), up
-- to bot_delivery_max_retry_seconds (300; 0 to 86400), and
-- bot_trigger_timeout_ms (5000, pg_net's timeout per request; 100 to 60000).
-- With the defaults and a one-minute schedule the deliveries go out at about
-- 0, 1, 2, 4, 8 and 13 minutes, and the error notice about 18 minutes after
-- the utterance.

create table private.bot_deliveries (
  intention_id text primary key,
  created_at timestamptz not null default now(),
  -- Webhooks queued in pg_net so far, and when the next one is due.
  attempts int not null default 0,
  next_attempt_at timestamptz not null default now(),
  last_request_id bigint,
  -- Why the last attempt was not acknowledged, for operators (never shown to users).
  last_error text,
  state text not null default 'pending' check (state in ('pending', 'failed', 'unreadable')),
  settled_at timestamptz
);
create index bot_deliveries_due_idx on private.bot_deliveries (next_attempt_at) where state = 'pending';
comment on table private.bot_deliveries is
  'Utterances not yet acknowledged by bot-trigger (pending), given up (failed: the space has error notices) or set aside (unreadable). Requeue one with: update private.bot_deliveries set state = ''pending'', attempts = 0, next_attempt_at = now() where intention_id = ...';

-- A delivery setting: the operator's value, clamped to its range, else the
-- default. It never raises, whatever the value: it runs in members' inserts
-- (where an overflow would refuse the utterance) and in the scheduled job.
create or replace function private.bot_delivery_setting(_key text) returns numeric
language sql stable
set search_path = ''
as $$
  select least(greatest(coalesce((
      select s.value::numeric from private.settings s
      where s.key = _key and s.value ~ '^\s*[0-9]{1,30}(\.[0-9]{1,30})?\s*$'
    ), d.fallback), d.lowest), d.highest)
  from (values
    ('bot_delivery_max_attempts', 6, 1, 100),
    ('bot_delivery_retry_seconds', 30, 0, 86400),
    ('bot_delivery_max_retry_seconds', 300, 0, 86400),
    ('bot_trigger_timeout_ms', 5000, 100, 60000)
  ) d (key, fallback, lowest, highest)
  where d.key = _key
$$;

-- The wait after the n-th delivery before the next one.
create or replace function private.bot_delivery_backoff(_attempts int) returns interval
language sql stable
set search_path = ''
as $$
  select make_interval(secs => least(
    private.bot_delivery_setting('bot_delivery_retry_seconds')
      * power(2::numeric, least(greatest(_attempts, 1) - 1, 20)),
    private.bot_delivery_setting('bot_delivery_max_retry_seconds')
  )::double precision)
$$;

-- Queues one webhook for the utterance through pg_net and returns pg_net's
-- request id; raises when it cannot (not configured, pg_net missing, a
-- malformed URL). The body names the row only: bot-trigger reads it back.
create or replace function private.post_bot_webhook(_intention_id text) returns bigint
language plpgsql volatile security definer
set search_path = ''
as $$
declare
  url text;
  secret text;
  header_name text;
begin
  select
    max(value) filter (where key = 'bot_trigger_url'),
    max(value) filter (where key = 'bot_trigger_secret'),
    coalesce(max(value) filter (where key = 'bot_trigger_secret_header'), 'x-webhook-secret')
  into url, secret, header_name
  from private.settings
  where key in ('bot_trigger_url', 'bot_trigger_secret', 'bot_trigger_secret_header');
  if nullif(url, '') is null or nullif(secret, '') is null then
    raise exception 'bot webhook not configured: set bot_trigger_url and bot_trigger_secret in private.settings';
  end if;
  return net.http_post(
    url := url,
    body := jsonb_build_object(
      'type', 'INSERT', 'table', 'intentions', 'schema', 'public',
      'record', jsonb_build_object('id', _intention_id), 'old_record', null
    ),
    headers := jsonb_build_object('Content-Type', 'application/json', header_name, secret),
    timeout_milliseconds := private.bot_delivery_setting('bot_trigger_timeout_ms')::int
  );
end;
$$;

-- What pg_net recorded for a request, in a few words for operators (null:
-- nothing recorded, or pg_net's tables are not there).
create or replace function private.bot_delivery_outcome(_request_id bigint) returns text
language plpgsql stable security definer
set search_path = ''
as $$
declare
  outcome text;
begin
  select case
      when r.status_code is not null then 'bot-trigger answered ' || r.status_code
      when r.timed_out then 'timed out'
      else coalesce(left(r.error_msg, 200), 'failed')
    end
  into outcome
  from net._http_response r where r.id = _request_id;
  return outcome;
exception when others then
  return null;
end;
$$;

-- One delivery of a record (which the caller has just written or locked):
-- queue the webhook and count it, whether or not pg_net took it, so a broken
-- configuration still ends in a notice instead of retrying forever. The next
-- attempt is due after the back-off from the clock, not from the start of
-- the transaction, so a batch of the scheduled run never finds it due again.
create or replace function private.send_bot_delivery(_intention_id text) returns void
language plpgsql volatile security definer
set search_path = ''
as $$
declare
  request_id bigint;
  failure text;
begin
  begin
    request_id := private.post_bot_webhook(_intention_id);
  exception when others then
    failure := sqlerrm;
    raise warning 'bot webhook not queued for intention %: % (SQLSTATE %)', _intention_id, sqlerrm, sqlstate;
  end;
  update private.bot_deliveries d
  set attempts = d.attempts + 1,
      last_request_id = request_id,
      last_error = coalesce(failure, d.last_error),
      next_attempt_at = clock_timestamp() + private.bot_delivery_backoff(d.attempts + 1)
  where d.intention_id = _intention_id;
end;
$$;

-- The last attempt went unacknowledged: every bot of the space that has
-- neither answered nor posted a notice posts one, and the record stays.
create or replace function private.give_up_bot_delivery(_intention_id text, _reason text) returns int
language plpgsql volatile security definer
set search_path = ''
as $$
declare
  bot record;
  attempts int;
  told text;
  notices int := 0;
begin
  select d.attempts into attempts from private.bot_deliveries d where d.intention_id = _intention_id;
  told := case
    when _reason ~ '^bot-trigger answered [0-9]+$' then 'it answered ' || substring(_reason from '[0-9]+$')
    when _reason = 'timed out' then 'it did not answer in time'
    when _reason like 'bot webhook not configured%' then 'the webhook is not configured'
    else 'it could not be reached'
  end;
  for bot in
    select b.id, b.name
    from public.intentions i
    join public.beings b on b.location_id = i.location_id and b.bot_model is not null and b.id <> i.owner_id
    where i.id = _intention_id
    order by b.id
  loop
    continue when exists (
      select 1 from public.intentions r
      where r.id in (private.bot_reply_id(bot.id, _intention_id, 'utterance'),
                     private.bot_reply_id(bot.id, _intention_id, 'error'))
    );
    begin
      perform public.write_bot_reply(
        bot.id, _intention_id,
        format('%s could not answer: your message did not reach the bot service after %s attempts (%s).',
               bot.name, attempts, told),
        'failed', 'error');
      notices := notices + 1;
    exception when others then
      raise warning 'bot % could not post its error notice for intention %: %', bot.id, _intention_id, sqlerrm;
    end;
  end loop;
  update private.bot_deliveries d
  set state = 'failed', settled_at = now(), last_error = coalesce(_reason, d.last_error)
  where d.intention_id = _intention_id;
  raise warning 'bot webhook for intention % not acknowledged after % deliveries (%): % error notice(s) posted; the record stays in private.bot_deliveries',
    _intention_id, attempts, coalesce(_reason, 'no response recorded'), notices;
  return notices;
end;
$$;

-- One batch of the scheduled job: delivers up to _limit records due by
-- _due_by (default: now) again, or gives up on them. Safe to run
-- concurrently (records are locked, others skipped). Returns what it did:
-- {"sent", "gave_up", "set_aside", "failed"}.
create or replace function private.redeliver_bot_webhooks(
  _limit int default 200, _due_by timestamptz default null
) returns jsonb
language plpgsql volatile security definer
set search_path = ''
as $$
declare
  due record;
  utterance record;
  reason text;
  problem text;
  -- Nothing here may raise: an error in DECLARE would fail the whole run.
  max_attempts int;
  sent int := 0;
  gave_up int := 0;
  set_aside int := 0;
  failed int := 0;
begin
  max_attempts := private.bot_delivery_setting('bot_delivery_max_attempts')::int;
  for due in
    select d.intention_id, d.attempts, d.last_request_id, d.last_error
    from private.bot_deliveries d
    where d.state = 'pending' and d.next_attempt_at <= coalesce(_due_by, now())
    order by d.next_attempt_at
    limit greatest(_limit, 1)
    for update skip locked
  loop
    begin
      select i.id, i.type, exists (
               select 1 from public.beings s where s.id = i.owner_id and s.bot_model is not null
             ) as by_bot
      into utterance
      from public.intentions i where i.id = due.intention_id;
      problem := case
        when utterance.id is null then 'intention not found'
        when utterance.type is distinct from 'utterance' then 'not an utterance'
        when utterance.by_bot then 'spoken by a bot'
      end;
      if problem is not null then
        update private.bot_deliveries d
        set state = 'unreadable', settled_at = now(), last_error = problem
        where d.intention_id = due.intention_id;
        raise warning 'bot delivery for intention % set aside: %', due.intention_id, problem;
        set_aside := set_aside + 1;
        continue;
      end if;
      reason := coalesce(private.bot_delivery_outcome(due.last_request_id), due.last_error);
      if due.attempts >= max_attempts then
        perform private.give_up_bot_delivery(due.intention_id, reason);
        gave_up := gave_up + 1;
      else
        update private.bot_deliveries d set last_error = reason where d.intention_id = due.intention_id;
        perform private.send_bot_delivery(due.intention_id);
        sent := sent + 1;
      end if;
    exception when others then
      -- Whatever went wrong with this record, the others still go out.
      raise warning 'bot delivery for intention % failed: % (SQLSTATE %)', due.intention_id, sqlerrm, sqlstate;
      failed := failed + 1;
      begin
        update private.bot_deliveries d
        set state = 'unreadable', settled_at = now(), last_error = left(sqlerrm, 500)
        where d.intention_id = due.intention_id;
      exception when others then
        raise warning 'bot delivery for intention % could not be set aside: %', due.intention_id, sqlerrm;
      end;
    end;
  end loop;
  -- Settled records are kept 30 days for operators.
  delete from private.bot_deliveries d
  where d.state <> 'pending' and d.settled_at < now() - interval '30 days';
  return jsonb_build_object('sent', sent, 'gave_up', gave_up, 'set_aside', set_aside, 'failed', failed);
end;
$$;

-- The one race giving up cannot close: bot-trigger's acknowledgement may be
-- waiting on the record while a run gives up on it; it then finds the record
-- `failed`, deletes nothing, and the jobs it queued still run. So when a bot
-- completes its reply to an utterance whose delivery was given up, the
-- notice that bot posted for it is withdrawn: the space shows the answer,
-- not the answer and "could not answer". (The record stays `failed` for
-- operators.)
create or replace function private.withdraw_delivery_notice() returns trigger
language plpgsql security definer
set search_path = ''
as $$
declare
  trigger_id text := new.content ->> 'in_reply_to';
begin
  if trigger_id is not null
     and new.id = private.bot_reply_id(new.owner_id, trigger_id, 'utterance')
     and exists (
       select 1 from private.bot_deliveries d where d.intention_id = trigger_id and d.state = 'failed'
     ) then
    delete from public.intentions i
    where i.id = private.bot_reply_id(new.owner_id, trigger_id, 'error')
      and i.owner_id = new.owner_id and i.type = 'error';
  end if;
  return null;
end;
$$;

create trigger intentions_withdraw_delivery_notice
  after insert or update of state on public.intentions
  for each row when (new.type = 'utterance' and new.state = 'complete' and left(new.id, 11) = '/bot-reply-')
  execute function private.withdraw_delivery_notice();

-- The scheduled job: batch after batch, each committed (so pg_net sends its
-- webhooks at once and bot-trigger's acknowledgements never wait on a long
-- run's locks), until nothing due when the run started is left, a batch made
-- no progress, or _seconds have passed: after an outage the backlog drains
-- in one run instead of _batch records a minute. Each record keeps its own
-- isolation (redeliver_bot_webhooks). A procedure, to commit; so neither
-- SECURITY DEFINER nor SET (PostgreSQL forbids transaction control with
-- either): it runs as its caller (pg_cron's job runs as postgres), and every
-- name in it is qualified. Call it on its own, not inside a transaction.
-- `done`: the totals, plus "batches".
create or replace procedure private.redeliver_all_bot_webhooks(
  _batch int default 200, _seconds double precision default 45, inout done jsonb default null
)
language plpgsql
as $$
declare
  started timestamptz := pg_catalog.clock_timestamp();
  batch jsonb;
begin
  _batch := greatest(coalesce(_batch, 200), 1);
  _seconds := coalesce(_seconds, 45);
  done := '{"sent": 0, "gave_up": 0, "set_aside": 0, "failed": 0, "batches": 0}';
  loop
    batch := private.redeliver_bot_webhooks(_batch, started) || '{"batches": 1}';
    select pg_catalog.jsonb_object_agg(t.key, (t.value)::int + coalesce((batch ->> t.key)::int, 0))
      into done from pg_catalog.jsonb_each_text(done) t;
    commit;
    exit when (batch ->> 'sent')::int + (batch ->> 'gave_up')::int + (batch ->> 'set_aside')::int
                + (batch ->> 'failed')::int < _batch
      or (batch ->> 'sent')::int + (batch ->> 'gave_up')::int + (batch ->> 'set_aside')::int = 0
      or pg_catalog.clock_timestamp() > started + pg_catalog.make_interval(secs => _seconds);
  end loop;
end;
$$;
revoke all on procedure private.redeliver_all_bot_webhooks(int, double precision, jsonb)
  from public, anon, authenticated, service_role;

-- The webhook trigger, as before, plus: spaces without bots get no webhook
-- (nobody would answer), and the delivery record is written in the
-- utterance's own transaction before the first webhook is queued. Written
-- whether or not the webhook is configured: an unconfigured webhook is a
-- failed attempt (post_bot_webhook raises, send_bot_delivery logs the
-- WARNING and counts it), so an utterance posted before the settings are in
-- is delivered by the redelivery once they are, or told after the last attempt.
create or replace function private.queue_bot_trigger_webhook() returns trigger
language plpgsql security definer
set search_path = ''
as $$
begin
  if exists (select 1 from public.beings b where b.id = new.owner_id and b.bot_model is not null)
     or not exists (
       select 1 from public.beings b where b.location_id = new.location_id and b.bot_model is not null
     ) then
    return null;
  end if;
  insert into private.bot_deliveries (intention_id) values (new.id) on conflict (intention_id) do nothing;
  -- The first attempt and its bookkeeping never fail the member's insert:
  -- if they fail, the record stays due (attempts 0) for the redelivery.
  begin
    perform private.send_bot_delivery(new.id);
  exception when others then
    raise warning 'bot webhook for intention % not sent with the utterance: % (SQLSTATE %); the redelivery will send it',
      new.id, sqlerrm, sqlstate;
  end;
  return null;
end;
$$;

-- bot-trigger, once the queue has taken the utterance's jobs (or found there
-- are none): the pending record is done. Returns whether there was one.
create or replace function public.ack_bot_delivery(_intention_id text) returns boolean
language sql volatile security definer
set search_path = ''
as $$
  with settled as (
    delete from private.bot_deliveries d
    where d.intention_id = _intention_id and d.state = 'pending'
    returning 1
  )
  select exists (select 1 from settled)
$$;
revoke execute on function public.ack_bot_delivery(text) from public, anon, authenticated;
grant execute on function public.ack_bot_delivery(text) to service_role;

-- The schedule. pg_cron is one of hosted Supabase's privileged extensions
-- (postgres may create it; Supabase's event trigger then grants postgres the
-- cron schema) and keeps its jobs in the database named by
-- cron.database_name: `postgres`, the project's database on hosted. In any
-- other database (a local test template, say) pg_cron refuses to be created
-- and nothing is scheduled there: whoever runs such a database calls
-- private.redeliver_all_bot_webhooks() (or private.redeliver_bot_webhooks()
-- for one batch) on its own schedule (make dev does).
-- pg_cron before 1.5 schedules by the minute only, hence '* * * * *'.
do $$
begin
  begin
    create extension if not exists pg_cron with schema pg_catalog;
  exception when raise_exception then
    -- pg_cron's own install script refuses any other database this way.
    if sqlerrm not like 'can only create extension in database %' then
      raise;
    end if;
    raise notice 'bot webhook redelivery not scheduled in database %: %', current_database(), sqlerrm;
    return;
  end;
  perform cron.schedule('redeliver-bot-webhooks', '* * * * *', 'call private.redeliver_all_bot_webhooks()');
end
$$;
