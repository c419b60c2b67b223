"""The page's history on opening a thread or a space, which a Supabase front
end reads with supabase-js (`supabase.from('chat_messages').select('*')
.eq('thread_id', id).order('created_at', {ascending: false}).limit(50)`).
No PostgREST runs locally, so this runs that select as PostgREST would: the
caller's token verified, then as `authenticated` under RLS, which alone
decides what is theirs to read."""

from __future__ import annotations

from typing import Any, LiteralString

import psycopg

from infra.dev.web.lounge import as_caller

LIMIT = 50
# The newest rows first, then handed back oldest first, as a chat shows them.
_QUERIES: dict[str, LiteralString] = {
    "thread_id": "select to_jsonb(m) from public.chat_messages m where m.thread_id = %s"
    " order by m.created_at desc, m.id desc limit %s",
    "space": "select to_jsonb(i) from public.intentions i where i.location_id = %s"
    " order by i.created_at desc, i.id desc limit %s",
}
KINDS = tuple(_QUERIES)


def recent(database_url: str, token: str, kind: str, value: str) -> list[dict[str, Any]]:
    """The last LIMIT rows of a thread (`kind` thread_id) or a space
    (`kind` space) that the caller may read, oldest first."""
    with psycopg.connect(database_url) as conn, conn.transaction(force_rollback=True):
        as_caller(conn, token)
        rows = conn.execute(_QUERIES[kind], (value, LIMIT)).fetchall()
    return [row[0] for row in reversed(rows)]
