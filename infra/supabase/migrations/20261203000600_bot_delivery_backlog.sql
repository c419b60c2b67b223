-- The undelivered-utterance backlog, for the metrics (issue 25).
--
-- bot-trigger calls this once a minute on its EventBridge schedule (not per
-- webhook: no request pays a round trip for it) and writes the answer as
-- metrics; an alarm fires when the oldest utterance bot-trigger has not
-- acknowledged is older than a few minutes. That is also how "webhooks stop
-- arriving while utterances are being written" shows: every utterance a bot
-- must answer has a delivery record from the moment it is stored, so
-- whatever breaks between the insert and the acknowledgement (pg_net, the
-- URL, the secret, API Gateway, bot-trigger, SQS) leaves records ageing here.
--
-- pending: records not acknowledged yet; oldest_pending_seconds: the age of
-- the oldest (0 when none); failed_last_hour, unreadable_last_hour: records
-- given up on (their bots posted error notices) or set aside in the last hour.
create or replace function public.bot_delivery_backlog() returns jsonb
language sql stable security definer
set search_path = ''
as $$
  select jsonb_build_object(
    'pending', pending.n,
    'oldest_pending_seconds',
      coalesce(round(extract(epoch from now() - pending.oldest)::numeric, 3), 0),
    'failed_last_hour', settled.failed,
    'unreadable_last_hour', settled.unreadable
  )
  from (
    select count(*) as n, min(d.created_at) as oldest
    from private.bot_deliveries d
    where d.state = 'pending'
  ) pending,
  (
    select count(*) filter (where d.state = 'failed') as failed,
           count(*) filter (where d.state = 'unreadable') as unreadable
    from private.bot_deliveries d
    where d.state <> 'pending' and d.settled_at > now() - interval '1 hour'
  ) settled
$$;
revoke execute on function public.bot_delivery_backlog() from public, anon, authenticated;
grant execute on function public.bot_delivery_backlog() to service_role;
