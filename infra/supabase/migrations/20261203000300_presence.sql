-- Realtime Authorization for Presence: who is online in a 1:1 thread and in
-- a space.
--
-- Hosted Realtime checks Presence with the same table as Broadcast: when a
-- private channel joins with presence enabled it inserts a probe row with
-- extension = 'presence' and selects it back as the user (the select
-- policies below decide whether the user sees presence_state and
-- presence_diff); at the channel's first `track` it inserts one as the user
-- (the insert policies decide whether the user may appear). A user who passes
-- neither read check cannot join the private channel at all.
--
-- Topics: 'chat:<thread_id>' (the thread's two participants, as for its
-- broadcasts) and 'space:<space id>', e.g. 'space:#lounge' (the space's
-- members: those who may read its intentions). Nobody else sees or tracks.
-- No new broadcast right is given: nobody but the database sends on a chat
-- topic (see the hardening migration), and nobody sends on a space topic.
--
-- Presence keys and payloads are the client's own (Realtime does not tie
-- them to the token): a participant could track under the other's key.
-- Treat what presence says as a hint, never as identity.

create or replace function private.is_space_topic_member(_topic text) returns boolean
language sql stable security definer
set search_path = ''
as $$
  select _topic like 'space:%'
     and substr(_topic, 7) in (select private.my_space_ids())
$$;
grant execute on function private.is_space_topic_member(text) to authenticated;

create policy chat_topic_presence_see on realtime.messages for select to authenticated
using (extension = 'presence' and private.is_chat_topic_participant(topic));

create policy chat_topic_presence_track on realtime.messages for insert to authenticated
with check (extension = 'presence' and private.is_chat_topic_participant(topic));

create policy space_topic_presence_see on realtime.messages for select to authenticated
using (extension = 'presence' and private.is_space_topic_member(topic));

create policy space_topic_presence_track on realtime.messages for insert to authenticated
with check (extension = 'presence' and private.is_space_topic_member(topic));
