"""What an operator does to the limits in the SQL editor (README, "Limits"),
and how a refusal looks from the database's side."""

from __future__ import annotations

from typing import Any

import psycopg


def set_rate_limit(
    admin: psycopg.Connection[Any], action: str, *, burst: int, rate: int = 1, per: str = "1 day"
) -> None:
    """`burst` at once, then `rate` per `per` (by default almost no refill,
    so a test's count does not depend on how long it takes)."""
    updated = admin.execute(
        "update private.rate_limits set burst = %s, rate = %s, per = %s::interval"
        " where action = %s",
        (burst, rate, per, action),
    ).rowcount
    assert updated == 1, action


def set_bot_budget(
    admin: psycopg.Connection[Any], subject: str, tokens_per_day: int, *, scope: str = "bot"
) -> None:
    admin.execute(
        "insert into private.bot_budgets (scope, subject, tokens_per_day) values (%s, %s, %s)"
        " on conflict (scope, subject) do update set tokens_per_day = excluded.tokens_per_day",
        (scope, subject, tokens_per_day),
    )


def spent_today(
    admin: psycopg.Connection[Any], subject: str, scope: str = "bot", member: str = ""
) -> tuple[int, int]:
    """(tokens, of which estimated) the bot or space spent today (UTC); with
    scope "member", what `member` spent of the bot `subject`."""
    row = admin.execute(
        "select tokens, estimated_tokens from private.bot_token_usage"
        " where scope = %s and subject = %s and member_id = %s"
        " and day = (now() at time zone 'UTC')::date",
        (scope, subject, member),
    ).fetchone()
    return (int(row[0]), int(row[1])) if row else (0, 0)


def refusal(exc: psycopg.Error) -> tuple[str | None, str | None, int]:
    """(SQLSTATE, DETAIL, seconds in HINT) of a rate-limit refusal."""
    hint = exc.diag.message_hint or ""
    assert hint.startswith("Retry-After: "), hint
    return exc.sqlstate, exc.diag.message_detail, int(hint.removeprefix("Retry-After: "))
