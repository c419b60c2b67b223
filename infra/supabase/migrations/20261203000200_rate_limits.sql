-- Per-user rate limits (issue 28): how fast one signed-in member may write.
--
-- A token bucket per (user, action), taken in the same transaction as the
-- write, by triggers on every table a member's request writes: chat
-- messages and threads (through the RPCs) and intentions (clients insert and
-- edit them directly through PostgREST, under RLS). Over the limit the write
-- is refused with SQLSTATE 'PT429', which PostgREST answers as HTTP 429 with
-- the body {"code": "PT429", "message": ..., "details": "rate_limited",
-- "hint": "Retry-After: <seconds>"}; the functions read the same fields
-- (shared/db/errors.py) and answer 429 with a Retry-After header.
--
-- The limits are rows of private.rate_limits: an operator changes them in
-- the SQL editor, without a migration (README, "Limits"). Writes by the
-- service and by SQL sessions (no `sub` in the request's claims) are never
-- limited.

create table private.rate_limits (
  action text primary key
    check (action in ('chat_message', 'chat_thread', 'utterance', 'bot_answer')),
  -- `burst` at once, then `rate` more per `per`, refilled continuously.
  burst integer not null check (burst between 1 and 1000000),
  rate integer not null check (rate between 1 and 1000000),
  per interval not null check (per between interval '1 second' and interval '7 days'),
  what text not null
);

-- Defaults a real chat lives with: a person types far slower than any of
-- these, a script hits them within seconds. bot_answer is the one that
-- bills: each utterance in a space with bots costs one per bot there (all of
-- them, even past the burst: see take_rate_tokens).
insert into private.rate_limits (action, burst, rate, per, what) values
  ('chat_message', 30, 60, '1 minute',
   'messages in 1:1 threads (a retry with a used client_id is not a new message)'),
  ('chat_thread', 20, 60, '1 hour',
   'new 1:1 threads (opening an existing thread writes nothing)'),
  ('utterance', 30, 60, '1 minute',
   'utterances written or edited in spaces'),
  ('bot_answer', 10, 10, '1 minute',
   'bot answers a member''s utterances ask for: one per bot in the space');

-- One row per member and action. Only the take function below writes it, in
-- the transaction of the write it allows: a refused (or failed) write rolls
-- its take back with it. Updated in place at every write (HOT: no indexed
-- column changes), hence the free space left in each page.
create table private.rate_buckets (
  user_id uuid not null,
  action text not null,
  tokens double precision not null,
  refilled_at timestamptz not null,
  primary key (user_id, action)
) with (fillfactor = 70);

-- The API roles neither read nor change limits or buckets (supautils' and
-- Supabase's defaults grant nothing in `private`; said here as well).
revoke all on private.rate_limits, private.rate_buckets
  from public, anon, authenticated, service_role;

-- Takes `_cost` tokens of the caller's `_action` bucket, or refuses the
-- whole transaction with PT429. Concurrent writes of one member queue on the
-- bucket's row lock (the upsert), so 50 at once never take more than the
-- bucket holds.
--
-- The full cost is always charged. A cost above the burst (an utterance in a
-- space with more bots than bot_answer's burst) could never fit, so it is
-- allowed when the bucket is full and leaves it in debt: the next write
-- waits until the bucket is full again, and the rate holds on average (30
-- bots, burst 10, 10 a minute: one such utterance every 3 minutes).
create or replace function private.take_rate_tokens(_action text, _cost integer default 1)
returns void
language plpgsql volatile security definer
set search_path = ''
as $$
declare
  caller uuid := auth.uid();
  lim private.rate_limits;
  -- Before the lock wait: a late start only refills less, never more.
  started timestamptz := clock_timestamp();
  per_second double precision;
  remaining double precision;
  refilled double precision;
  wait_seconds bigint;
begin
  if caller is null or _cost is null or _cost < 1 then
    return;
  end if;
  select * into lim from private.rate_limits l where l.action = _action;
  if not found then
    return;  -- an operator deleted the row: no limit
  end if;
  per_second := lim.rate / extract(epoch from lim.per);

  insert into private.rate_buckets as b (user_id, action, tokens, refilled_at)
  values (caller, _action, lim.burst - _cost, started)
  on conflict (user_id, action) do update
    set tokens = least(
          lim.burst,
          b.tokens + greatest(extract(epoch from started - b.refilled_at), 0) * per_second
        ) - _cost,
        refilled_at = greatest(b.refilled_at, started)
  returning b.tokens into remaining;

  refilled := remaining + _cost;  -- what the bucket held before this write
  if remaining < 0 and not (_cost > lim.burst and refilled >= lim.burst) then
    -- Until it holds the cost, or is full for a cost above the burst.
    wait_seconds := greatest(ceil((least(_cost, lim.burst) - refilled) / per_second), 1);
    raise exception using
      errcode = 'PT429',
      message = format('%s: try again in %s s', case _action
        when 'chat_message' then 'too many messages'
        when 'chat_thread' then 'too many new chat threads'
        when 'utterance' then 'too many messages in spaces'
        when 'bot_answer' then 'too many questions for the bots'
        else 'too many requests' end, wait_seconds),
      detail = 'rate_limited',
      hint = 'Retry-After: ' || wait_seconds;
  end if;
end;
$$;

-- Intentions: every utterance written or edited by a member takes from
-- 'utterance'; a new one in a space with bots also takes one 'bot_answer'
-- per bot that will answer it (bots never answer bots, as the webhook
-- trigger decides). BEFORE the row is written: a flood is refused before
-- the insert, its indexes and its webhook cost anything.
create or replace function private.limit_space_writes() returns trigger
language plpgsql security definer
set search_path = ''
as $$
declare
  answering integer;
begin
  if auth.uid() is null then
    return new;  -- the service (bot replies) and SQL sessions
  end if;
  perform private.take_rate_tokens('utterance');
  if tg_op = 'INSERT' and new.type = 'utterance' and not exists (
    select 1 from public.beings s where s.id = new.owner_id and s.bot_model is not null
  ) then
    select count(*) into answering from public.beings b
    where b.location_id = new.location_id and b.bot_model is not null and b.id <> new.owner_id;
    perform private.take_rate_tokens('bot_answer', answering);
  end if;
  return new;
end;
$$;

create trigger intentions_rate_limit
  before insert or update on public.intentions
  for each row execute function private.limit_space_writes();

-- Chat rows are written with ON CONFLICT DO NOTHING (a replayed client_id,
-- an existing thread), and BEFORE triggers fire for rows that conflict too:
-- AFTER INSERT counts only rows actually written. The action is the
-- trigger's argument.
create or replace function private.limit_chat_writes() returns trigger
language plpgsql security definer
set search_path = ''
as $$
begin
  perform private.take_rate_tokens(tg_argv[0]);
  return null;
end;
$$;

create trigger chat_messages_rate_limit
  after insert on public.chat_messages
  for each row execute function private.limit_chat_writes('chat_message');

create trigger chat_threads_rate_limit
  after insert on public.chat_threads
  for each row execute function private.limit_chat_writes('chat_thread');
