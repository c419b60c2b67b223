"""Canned RPC results, shaped as the database returns them, for tests and
benchmarks that answer PostgREST themselves (no database behind them)."""

from __future__ import annotations

import uuid

THREAD = {
    "thread_id": "amy__bob", "user_a_mongo_id": "amy", "user_b_mongo_id": "bob",
    "user_a_supabase_id": str(uuid.uuid4()), "user_b_supabase_id": str(uuid.uuid4()),
    "created_at": "2026-11-22T10:00:00+00:00", "last_message_at": None,
}  # fmt: skip
MESSAGE = {
    "id": str(uuid.uuid4()), "thread_id": "amy__bob", "sender_supabase_id": str(uuid.uuid4()),
    "sender_mongo_id": "amy", "recipient_mongo_id": "bob", "body": "hi",
    "created_at": "2026-11-22T10:00:00+00:00", "client_id": None, "replayed": False,
}  # fmt: skip
