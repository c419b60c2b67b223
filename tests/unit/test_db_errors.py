"""A database refusal becomes one typed error, whichever adapter saw it: a
'PT429' with its hint is a 429 that says when to retry."""

from __future__ import annotations

import json

import pytest

from shared.db.errors import error_from_database, retry_after_from_hint
from shared.errors import ServiceUnavailable, TooManyRequests
from shared.http.errors import response_for

pytestmark = pytest.mark.unit


def test_pt429_with_its_hint_is_too_many_requests_with_retry_after() -> None:
    error = error_from_database(
        "PT429",
        "too many messages: try again in 12 s",
        "rate_limited",
        signed_in=True,
        hint="Retry-After: 12",
    )
    assert isinstance(error, TooManyRequests)
    assert (error.status, error.code, error.retry_after) == (429, "rate_limited", 12)

    response = response_for(error)
    assert response.status_code == 429
    assert response.headers["retry-after"] == "12"
    assert json.loads(bytes(response.body)) == {
        "error": {
            "code": "rate_limited",
            "message": "too many messages: try again in 12 s",
            "retry_after": 12,
        }
    }


@pytest.mark.parametrize("hint", [None, "", "soon", "Retry-After: -3", "Retry-After: 1.5"])
def test_a_429_without_a_readable_hint_retries_after_a_second(hint: str | None) -> None:
    error = error_from_database("PT429", "slow down", "rate_limited", signed_in=True, hint=hint)
    assert isinstance(error, TooManyRequests)
    assert error.retry_after == 1
    assert retry_after_from_hint(hint) is None


def test_a_hint_never_changes_what_is_not_a_429() -> None:
    error = error_from_database("PT404", "no such thread", "unknown_thread", signed_in=True,
                                hint="Retry-After: 99")  # fmt: skip
    assert (error.status, error.code) == (404, "unknown_thread")
    assert not hasattr(error, "retry_after")
    unavailable = response_for(ServiceUnavailable("database unavailable", retry_after=5))
    assert unavailable.headers["retry-after"] == "5"
