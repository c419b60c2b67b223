"""One mapping from a database error to a typed error, for both adapters.

Follows PostgREST's table of SQLSTATEs to HTTP statuses, so a function
answers the same through PostgREST and through the direct adapter.
"""

from __future__ import annotations

import logging
import re

from shared.errors import AppError, ServiceUnavailable, error_for_status

logger = logging.getLogger(__name__)

# Our SQL puts when to retry a 'PT429' in HINT, as the HTTP header reads:
# "Retry-After: 12" (PostgREST returns HINT as the body's "hint").
_RETRY_AFTER = re.compile(r"^Retry-After: ?(\d{1,9})$")


def retry_after_from_hint(hint: str | None) -> int | None:
    """The seconds a 'Retry-After: <seconds>' hint says, else None."""
    match = _RETRY_AFTER.match(hint.strip()) if hint else None
    return int(match.group(1)) if match else None


def status_for_sqlstate(sqlstate: str, *, signed_in: bool) -> int:
    if len(sqlstate) == 5 and sqlstate.startswith("PT") and sqlstate[2:].isdigit():
        return int(sqlstate[2:])
    if sqlstate == "42501":
        # PostgREST: insufficient privilege is 401 for anon, 403 otherwise.
        return 403 if signed_in else 401
    prefix = sqlstate[:2]
    exact = {"23503": 409, "23505": 409, "25006": 405, "P0001": 400, "42883": 404, "42P01": 404}
    if sqlstate in exact:
        return exact[sqlstate]
    if prefix in ("08", "53", "57"):
        return 503
    if prefix in ("22", "23"):
        return 400
    return 500


def error_from_database(
    sqlstate: str | None,
    message: str,
    detail: str | None,
    *,
    signed_in: bool,
    hint: str | None = None,
) -> AppError:
    status = status_for_sqlstate(sqlstate or "", signed_in=signed_in)
    if status == 503:
        return ServiceUnavailable("database unavailable", code="database_unavailable")
    if status >= 500:
        # Details of an internal failure stay in the log, not in the response.
        logger.error("database error %s: %s", sqlstate, message)
        return error_for_status(500, "internal error", "internal_error")
    code = detail if detail and detail.replace("_", "").isalnum() else None
    return error_for_status(status, message, code, retry_after=retry_after_from_hint(hint))
