-- The local demo: two chat users, a space with both of them, and a bot.
-- Idempotent: make dev runs it on every start.
insert into auth.users (id, email, raw_app_meta_data, raw_user_meta_data) values
  ('00000000-0000-4000-8000-00000000a0a0', 'ada@example.test', '{"provider": "email", "mongo_user_id": "ada"}', '{"name": "Ada"}'),
  ('00000000-0000-4000-8000-00000000b0b0', 'bob@example.test', '{"provider": "email", "mongo_user_id": "bob"}', '{"name": "Bob"}')
on conflict (id) do nothing;

insert into public.beings (id, name, type, auth_user_id) values
  ('@ada', 'Ada', 'user', '00000000-0000-4000-8000-00000000a0a0'),
  ('@bob', 'Bob', 'user', '00000000-0000-4000-8000-00000000b0b0')
on conflict (id) do nothing;
insert into public.beings (id, name, type, owner_id) values ('#lounge', 'The Lounge', 'space', '@ada')
on conflict (id) do nothing;
update public.beings set location_id = '#lounge' where id in ('@ada', '@bob') and location_id is null;
insert into public.beings (id, name, type, owner_id, location_id, bot_model, bot_prompt) values
  ('@echo', 'Echo', 'bot', '@ada', '#lounge', 'openrouter/auto', 'You are Echo, a friendly bot in a small chat space. Answer briefly.')
on conflict (id) do nothing;
