"""Fixtures shared by the database tests."""

from __future__ import annotations

from typing import Any

import psycopg
import pytest

from tests.support.database import User, create_user, rpc


@pytest.fixture
def trio(admin: psycopg.Connection[Any], api: psycopg.Connection[Any]) -> tuple[User, User, User]:
    """amy and bob, with their thread amy__bob, and eve, a stranger to it."""
    amy, bob, eve = (create_user(admin, name) for name in ("amy", "bob", "eve"))
    rpc(api, amy.claims(), "ensure_chat_thread", _other_mongo_id="bob")
    return amy, bob, eve
