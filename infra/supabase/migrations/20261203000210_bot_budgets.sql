-- Per-bot (and per-space) daily budgets of model tokens (issue 28), and
-- each member's daily share of every bot's.
--
-- Before a bot calls its model the worker asks reserve_bot_tokens for a
-- hold of the most the reply can cost (its prompt, estimated, plus the
-- reply's max_tokens); after the reply, record_bot_tokens replaces the hold
-- with what the provider says it spent (or an estimate from the text). A
-- hold is granted while, for the bot, for the member who spoke (the trigger
-- utterance's owner: their share of that bot) and for the space, the day's
-- spent tokens plus the holds of replies in flight are below the budget, so
-- past it only the one reply that crossed it finishes: each budget is
-- overrun by at most one reply. Refused, the bot writes a short notice
-- instead of calling the model. A member's share keeps one member from
-- spending a bot's whole day for everyone.
--
-- Budgets are rows of private.bot_budgets an operator changes in the SQL
-- editor (README, "Limits"). Days are UTC.

create table private.bot_budgets (
  scope text not null check (scope in ('bot', 'space', 'member')),
  -- A bot's or a space's being id ('member': the bot whose share it is);
  -- '*' is the budget of every one without its own row.
  subject text not null check (char_length(subject) between 1 and 255),
  tokens_per_day bigint not null check (tokens_per_day >= 0),
  primary key (scope, subject)
);

-- A bot: about 100 to 200 answers a day with a few lines of context. A
-- member: a fifth of that from each bot (about 5 answers that cost the most
-- a prompt and a reply can, many more of a chat's usual size), so no one
-- member spends a bot's day. 0 stops a bot (or a space's bots, or every
-- member's use of a bot) from calling the model at all. No space budget by
-- default.
insert into private.bot_budgets (scope, subject, tokens_per_day) values
  ('bot', '*', 250000),
  ('member', '*', 50000);

-- What each bot, each space and each member (of each bot) spent, per UTC
-- day: also the operator's view.
create table private.bot_token_usage (
  scope text not null check (scope in ('bot', 'space', 'member')),
  -- The bot or the space; for 'member' the bot, and member_id who spoke.
  subject text not null,
  member_id text not null default '',
  day date not null,
  tokens bigint not null default 0,
  -- Of `tokens`, those estimated from the text (the provider reported none).
  estimated_tokens bigint not null default 0,
  replies integer not null default 0,
  refused integer not null default 0,
  primary key (scope, subject, member_id, day)
);

-- Replies in flight. A job that dies without recording leaves its hold
-- until it expires; the same job redelivered takes the same row.
create table private.bot_token_holds (
  bot_id text not null,
  trigger_id text not null,
  space_id text not null,
  -- Who spoke the trigger utterance: whose share the reply is charged to.
  member_id text not null,
  tokens bigint not null check (tokens >= 0),
  expires_at timestamptz not null,
  primary key (bot_id, trigger_id)
);
create index bot_token_holds_space_idx on private.bot_token_holds (space_id);

revoke all on private.bot_budgets, private.bot_token_usage, private.bot_token_holds
  from public, anon, authenticated, service_role;

-- Every reservation and every record of one bot's tokens takes this lock
-- first, for the rest of its transaction: one bot's holds and ledgers (its
-- own, its members') are then only ever touched by one job at a time,
-- whatever order each function touches them in. Without it, a job recording
-- its spend (hold, then ledger) and a duplicate of that job reserving
-- (ledger, then hold), which at-least-once delivery makes normal, could
-- deadlock and lose the spend. Jobs of different bots share only a space's
-- ledger, and every function takes that one last.
create or replace function private.lock_bot_tokens(_bot_id text) returns void
language sql volatile
set search_path = ''
as $$
  select pg_catalog.pg_advisory_xact_lock(pg_catalog.hashtext('private.bot_token_usage'),
                                          pg_catalog.hashtext(_bot_id))
$$;

-- The budget of a bot, a space, or each member's share of a bot: its own
-- row, else the '*' row, else none.
create or replace function private.bot_budget(_scope text, _subject text) returns bigint
language sql stable
set search_path = ''
as $$
  select b.tokens_per_day from private.bot_budgets b
  where b.scope = _scope and b.subject in (_subject, '*')
  order by b.subject = '*'
  limit 1
$$;

-- Null while (scope, subject, member) may spend; else why not. Locks the
-- day's ledger row, so concurrent reservations against one budget take
-- turns and each sees the holds granted before it.
create or replace function private.bot_budget_refusal(
  _scope text, _subject text, _member text, _bot_id text, _trigger_id text, _day date
) returns jsonb
language plpgsql volatile
set search_path = ''
as $$
declare
  budget bigint := private.bot_budget(_scope, _subject);
  spent bigint;
  held numeric;
begin
  if budget is null then
    return null;
  end if;
  insert into private.bot_token_usage (scope, subject, member_id, day)
  values (_scope, _subject, _member, _day)
  on conflict do nothing;
  select u.tokens into spent from private.bot_token_usage u
  where (u.scope, u.subject, u.member_id, u.day) = (_scope, _subject, _member, _day)
  for update;
  select coalesce(sum(h.tokens), 0) into held from private.bot_token_holds h
  where case _scope
          when 'bot' then h.bot_id = _subject
          when 'member' then h.bot_id = _subject and h.member_id = _member
          else h.space_id = _subject
        end
    and h.expires_at > now()
    and (h.bot_id, h.trigger_id) <> (_bot_id, _trigger_id);
  if spent + held < budget then
    return null;
  end if;
  update private.bot_token_usage u set refused = u.refused + 1
  where (u.scope, u.subject, u.member_id, u.day) = (_scope, _subject, _member, _day);
  return jsonb_build_object(
    'granted', false, 'scope', _scope, 'budget', budget, 'spent', spent, 'held', held,
    -- In UTC whatever the session's TimeZone.
    'resets_at', to_char(_day + 1, 'YYYY-MM-DD"T00:00:00Z"')
  ) || case when _scope = 'member' then jsonb_build_object('member', _member) else '{}' end;
end;
$$;

-- A hold of `_tokens` for the bot's answer to `_trigger_id`, or a refusal:
-- {"granted": true, "hold_seconds": n} or {"granted": false, "scope":
-- "bot"|"member"|"space", "budget", "spent", "held", "resets_at"} (and
-- "member" for a member's share). The member is the trigger's owner, read
-- from the row.
create or replace function public.reserve_bot_tokens(
  _bot_id text, _trigger_id text, _tokens bigint
) returns jsonb
language plpgsql volatile security definer
set search_path = ''
as $$
declare
  today date := (now() at time zone 'UTC')::date;
  space_id text;
  member_id text;
  refusal jsonb;
  -- Longer than any reply may take (the worker's timeout is 90 s), shorter
  -- than the queue's redelivery (720 s): a dead job's hold is gone before
  -- its retry.
  hold_for interval := interval '5 minutes';
begin
  if _tokens is null or _tokens < 0 then
    perform private.raise_api_error(400, 'invalid_tokens', 'tokens must be zero or more');
  end if;
  if not exists (select 1 from public.beings b where b.id = _bot_id and b.bot_model is not null) then
    perform private.raise_api_error(404, 'unknown_bot', 'no such bot');
  end if;
  select i.location_id, i.owner_id into space_id, member_id
  from public.intentions i where i.id = _trigger_id;
  if space_id is null then
    perform private.raise_api_error(404, 'unknown_trigger', 'no such intention');
  end if;

  perform private.lock_bot_tokens(_bot_id);
  delete from private.bot_token_holds h where h.bot_id = _bot_id and h.expires_at <= now();
  -- The bot's ledgers, then the space's (shared with other bots' jobs) last.
  refusal := coalesce(
    private.bot_budget_refusal('bot', _bot_id, '', _bot_id, _trigger_id, today),
    private.bot_budget_refusal('member', _bot_id, member_id, _bot_id, _trigger_id, today),
    private.bot_budget_refusal('space', space_id, '', _bot_id, _trigger_id, today)
  );
  if refusal is not null then
    delete from private.bot_token_holds h where h.bot_id = _bot_id and h.trigger_id = _trigger_id;
    return refusal;
  end if;

  insert into private.bot_token_holds (bot_id, trigger_id, space_id, member_id, tokens, expires_at)
  values (_bot_id, _trigger_id, space_id, member_id, _tokens, now() + hold_for)
  on conflict (bot_id, trigger_id) do update
    set space_id = excluded.space_id, member_id = excluded.member_id, tokens = excluded.tokens,
        expires_at = excluded.expires_at;
  return jsonb_build_object('granted', true, 'hold_seconds', extract(epoch from hold_for)::int);
end;
$$;

-- Adds a reply's tokens to a day's ledger; returns the day's total.
create or replace function private.add_bot_tokens(
  _scope text, _subject text, _member text, _day date, _tokens bigint, _estimated boolean
) returns bigint
language sql volatile
set search_path = ''
as $$
  insert into private.bot_token_usage as u
    (scope, subject, member_id, day, tokens, estimated_tokens, replies)
  values (_scope, _subject, _member, _day, _tokens, case when _estimated then _tokens else 0 end, 1)
  on conflict (scope, subject, member_id, day) do update
    set tokens = u.tokens + excluded.tokens,
        estimated_tokens = u.estimated_tokens + excluded.estimated_tokens,
        replies = u.replies + 1
  returning u.tokens
$$;

-- What a reply spent: the hold is released and `_tokens` added to today's
-- spending of the bot, of the member who spoke (their share of the bot) and
-- of the space. Returns the day's totals.
create or replace function public.record_bot_tokens(
  _bot_id text, _trigger_id text, _tokens bigint, _estimated boolean default false
) returns jsonb
language plpgsql volatile security definer
set search_path = ''
as $$
declare
  today date := (now() at time zone 'UTC')::date;
  space_id text;
  member_id text;
  totals jsonb;
begin
  if _tokens is null or _tokens < 0 then
    perform private.raise_api_error(400, 'invalid_tokens', 'tokens must be zero or more');
  end if;
  perform private.lock_bot_tokens(_bot_id);
  delete from private.bot_token_holds h
  where h.bot_id = _bot_id and h.trigger_id = _trigger_id
  returning h.space_id, h.member_id into space_id, member_id;
  if space_id is null then
    select i.location_id, i.owner_id into space_id, member_id
    from public.intentions i where i.id = _trigger_id;
  end if;
  -- In this order: the space's ledger (shared with other bots' jobs) last.
  totals := jsonb_build_object(
    'bot_tokens_today', private.add_bot_tokens('bot', _bot_id, '', today, _tokens, _estimated));
  if member_id is not null then
    totals := totals || jsonb_build_object('member_tokens_today',
      private.add_bot_tokens('member', _bot_id, member_id, today, _tokens, _estimated));
  end if;
  if space_id is not null then
    totals := totals || jsonb_build_object('space_tokens_today',
      private.add_bot_tokens('space', space_id, '', today, _tokens, _estimated));
  end if;
  return totals;
end;
$$;

revoke execute on function public.reserve_bot_tokens(text, text, bigint) from public, anon, authenticated;
revoke execute on function public.record_bot_tokens(text, text, bigint, boolean) from public, anon, authenticated;
grant execute on function public.reserve_bot_tokens(text, text, bigint) to service_role;
grant execute on function public.record_bot_tokens(text, text, bigint, boolean) to service_role;
