"""Whatever a client sends, the answer is 2xx or 4xx with a JSON error body."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

import psycopg
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.integration.conftest import Invoke
from tests.support.database import User, create_user

pytestmark = pytest.mark.integration

json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=50),
    lambda inner: (
        st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=20), inner, max_size=4)
    ),
    max_leaves=12,
)
field_names = st.sampled_from(
    [
        "thread_id",
        "body",
        "client_id",
        "other_mongo_id",
        "user_a_mongo_id",
        "user_b_mongo_id",
        "extra",
    ]
)
bodies = st.one_of(
    st.dictionaries(field_names, json_values, max_size=4).map(json.dumps),
    json_values.map(json.dumps),
    st.text(max_size=200),
    st.binary(max_size=100).map(lambda b: b.decode("latin-1")),
)
content_types = st.sampled_from(
    ["application/json", "application/json; charset=utf-8", "text/plain", ""]
)
FUZZ = settings(
    max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)


@pytest.fixture
def amy(admin: psycopg.Connection[Any]) -> User:
    create_user(admin, "bob")
    return create_user(admin, "amy")


def _check(result: Any) -> None:
    assert 200 <= result.status < 500, (result.status, result.body)
    if result.status >= 400:
        assert isinstance(result.body, dict)
        assert isinstance(result.body["error"]["code"], str)


@pytest.mark.parametrize("path", ["/chat/messages", "/chat/threads/ensure"])
@pytest.mark.parametrize("adapter", ["direct"], indirect=True)
def test_any_body_gets_a_client_answer(
    chat_message: Invoke,
    thread_ensure: Invoke,
    amy: User,
    bearer: Callable[..., dict[str, str]],
    path: str,
) -> None:
    invoke = chat_message if path == "/chat/messages" else thread_ensure
    auth = bearer(amy)

    @FUZZ
    @given(body=bodies, content_type=content_types)
    def run(body: str, content_type: str) -> None:
        headers = {**auth, "content-type": content_type} if content_type else dict(auth)
        _check(invoke("POST", path, raw_body=body, headers=headers))

    run()


@pytest.mark.parametrize("adapter", ["direct"], indirect=True)
def test_any_authorization_header_gets_a_client_answer(chat_message: Invoke) -> None:
    @FUZZ
    @given(value=st.text(max_size=300).filter(lambda v: "\n" not in v and "\r" not in v))
    def run(value: str) -> None:
        result = chat_message(
            "POST",
            "/chat/messages",
            body={"thread_id": "a__b", "body": "x"},
            headers={"authorization": value},
        )
        assert result.status == 401

    run()
