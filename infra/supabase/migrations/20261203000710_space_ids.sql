-- Ids containing '__' belong to 1:1 threads (<a>__<b>), so a typing topic
-- 'typing:<id>' never names both a thread and a space.
--
-- private.is_typing_topic_member (20261203000400) already fails closed when
-- a space and a thread are spelled alike: the thread wins and the space's
-- members are refused. That still left such a space without typing at all,
-- and a space created as 'ada__bob' before Ada and Bob open their thread
-- would lose its typing topic to them later. Now no new space may have '__'
-- in its id (nor may a being become a space with one); spaces stored before
-- this migration keep working (only a change of id or type is checked), as
-- with a NOT VALID constraint, whose check would instead refuse every later
-- update of such a row.
create or replace function private.refuse_thread_like_space_id() returns trigger
language plpgsql
set search_path = ''
as $$
begin
  if new.type = 'space' and strpos(new.id, '__') > 0
     and (tg_op = 'INSERT' or new.id is distinct from old.id or new.type is distinct from old.type) then
    raise exception using errcode = '23514', detail = 'reserved_id',
      message = format('a space id may not contain ''__'' (reserved for chat thread ids): %s', new.id);
  end if;
  return new;
end;
$$;

create trigger beings_space_id_not_thread_like
  before insert or update of id, type on public.beings
  for each row execute function private.refuse_thread_like_space_id();
