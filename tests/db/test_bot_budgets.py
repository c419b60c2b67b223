"""Per-bot (and per-space) daily token budgets, as the worker uses them
(issue 28): a hold before the model is called, the spend recorded after;
past the budget by at most one reply, however many jobs run at once."""

from __future__ import annotations

import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import psycopg
import pytest

from tests.support.database import SERVICE_CLAIMS, rpc
from tests.support.limits import set_bot_budget, spent_today
from tests.support.spaces import make_world, say

pytestmark = pytest.mark.db


def _reserve(api: psycopg.Connection[Any], bot: str, trigger: str, tokens: int) -> Any:
    return rpc(
        api, SERVICE_CLAIMS, "reserve_bot_tokens", _bot_id=bot, _trigger_id=trigger, _tokens=tokens
    )


def _record(
    api: psycopg.Connection[Any], bot: str, trigger: str, tokens: int, estimated: bool = False
) -> Any:
    return rpc(api, SERVICE_CLAIMS, "record_bot_tokens",
               _bot_id=bot, _trigger_id=trigger, _tokens=tokens, _estimated=estimated)  # fmt: skip


def test_a_bot_spends_until_its_budget_is_reached_then_is_refused(
    admin: psycopg.Connection[Any], api: psycopg.Connection[Any]
) -> None:
    make_world(admin)
    set_bot_budget(admin, "@echo", 1000)
    first, second, third = (say(admin, "@guest", "#lounge", t) for t in ("a", "b", "c"))

    assert _reserve(api, "@echo", first, 700)["granted"] is True
    assert _record(api, "@echo", first, 600) == {
        "bot_tokens_today": 600, "member_tokens_today": 600, "space_tokens_today": 600,
    }  # fmt: skip
    # Below the budget another reply may start, and it may cross it
    assert _reserve(api, "@echo", second, 700)["granted"] is True
    _record(api, "@echo", second, 650, estimated=True)

    refused = _reserve(api, "@echo", third, 700)
    assert refused["granted"] is False
    assert (refused["scope"], refused["budget"], refused["spent"]) == ("bot", 1000, 1250)
    assert refused["resets_at"].endswith("T00:00:00Z")
    assert spent_today(admin, "@echo") == (1250, 650)
    row = admin.execute(
        "select replies, refused from private.bot_token_usage where (scope, subject) = ('bot', '@echo')"
    ).fetchone()
    assert row == (2, 1)
    # Another bot's budget is its own
    assert _reserve(api, "@sage", third, 700)["granted"] is True


def test_one_member_cannot_spend_a_bots_day_for_everyone(
    admin: psycopg.Connection[Any], api: psycopg.Connection[Any]
) -> None:
    # Given the default budgets (250,000 a bot, 50,000 a member of each bot),
    # and a member whose every question costs what a 16 KB one cost (the
    # review measured 279,576 tokens for nine)
    make_world(admin)
    cost = 279_576 // 9
    granted = 0
    for i in range(9):
        asked = say(admin, "@guest", "#lounge", f"long question {i}")
        hold = _reserve(api, "@echo", asked, cost)
        if not hold["granted"]:
            # Then past her share she is refused, and told it is hers
            assert (hold["scope"], hold["member"], hold["budget"]) == ("member", "@guest", 50_000)
            break
        _record(api, "@echo", asked, cost)
        granted += 1
    assert granted == 2  # the second crossed her share, as a budget allows
    assert spent_today(admin, "@echo", scope="member", member="@guest") == (2 * cost, 0)

    # And another member still gets @echo's answers, and she still gets @sage's
    theirs = say(admin, "@owner", "#lounge", "my turn")
    assert _reserve(api, "@echo", theirs, cost)["granted"] is True
    assert _reserve(api, "@sage", asked, cost)["granted"] is True


def test_a_members_share_is_an_operators_row_per_bot(
    admin: psycopg.Connection[Any], api: psycopg.Connection[Any]
) -> None:
    make_world(admin)
    set_bot_budget(admin, "@echo", 1000, scope="member")  # @echo's share; others keep '*'
    first, second = say(admin, "@guest", "#lounge", "a"), say(admin, "@guest", "#lounge", "b")
    assert _reserve(api, "@echo", first, 600)["granted"] is True
    _record(api, "@echo", first, 1000, estimated=True)

    refused = _reserve(api, "@echo", second, 10)
    assert (refused["granted"], refused["scope"], refused["spent"]) == (False, "member", 1000)
    assert spent_today(admin, "@echo", scope="member", member="@guest") == (1000, 1000)
    refusals = admin.execute(
        "select refused from private.bot_token_usage where scope = 'member' and member_id = '@guest'"
    ).fetchone()
    assert refusals == (1,)
    # A share of 0 keeps every member from a bot; '*' stays for the others
    set_bot_budget(admin, "@sage", 0, scope="member")
    assert _reserve(api, "@sage", second, 1)["granted"] is False
    attic = say(admin, "@stranger", "#attic", "anyone?")
    assert _reserve(api, "@hermit", attic, 1)["granted"] is True


def test_concurrent_jobs_never_overrun_by_more_than_one_reply(
    admin: psycopg.Connection[Any], authenticator_dsn: str
) -> None:
    make_world(admin)
    set_bot_budget(admin, "@echo", 10_000)
    triggers = [say(admin, "@guest", "#lounge", f"q{i}") for i in range(20)]

    def reserve(trigger: str) -> bool:
        with psycopg.connect(authenticator_dsn, autocommit=True) as conn:
            return bool(_reserve(conn, "@echo", trigger, 3000)["granted"])

    with ThreadPoolExecutor(max_workers=20) as pool:
        granted = list(pool.map(reserve, triggers))

    # Holds of 0, 3000, 6000 and 9000 before each were below 10,000: four
    # replies in flight, at most one of them past the budget
    assert granted.count(True) == 4


def test_a_reply_recorded_while_its_duplicate_job_reserves_never_deadlocks(
    admin: psycopg.Connection[Any], authenticator_dsn: str
) -> None:
    # Under at-least-once delivery a job may run twice at once: one records
    # its reply's spend while the other asks for the same hold. Run the two
    # against each other, released together, many times.
    make_world(admin)
    rounds = 150
    triggers = [say(admin, "@guest", "#lounge", f"q{i}") for i in range(rounds)]
    barrier = threading.Barrier(2)
    failures: list[str] = []

    def race(call: Callable[[psycopg.Connection[Any], str], Any]) -> None:
        with psycopg.connect(authenticator_dsn, autocommit=True) as conn:
            for trigger in triggers:
                barrier.wait(timeout=30)
                try:
                    call(conn, trigger)
                except psycopg.Error as exc:
                    failures.append(f"{type(exc).__name__}: {exc}")

    with psycopg.connect(authenticator_dsn, autocommit=True) as setup:
        for trigger in triggers:
            _reserve(setup, "@echo", trigger, 100)  # the first job's hold
    with ThreadPoolExecutor(max_workers=2) as pool:
        done = [
            pool.submit(race, lambda conn, t: _record(conn, "@echo", t, 50)),
            pool.submit(race, lambda conn, t: _reserve(conn, "@echo", t, 100)),
        ]
        for future in done:
            future.result(timeout=300)

    # Then neither ever failed, and every recorded spend is in the ledger
    assert failures == []
    assert spent_today(admin, "@echo") == (50 * rounds, 0)


def test_holds_of_dead_jobs_expire_and_a_redelivered_job_keeps_one_hold(
    admin: psycopg.Connection[Any], api: psycopg.Connection[Any]
) -> None:
    make_world(admin)
    set_bot_budget(admin, "@echo", 1000)
    first, second = say(admin, "@guest", "#lounge", "a"), say(admin, "@guest", "#lounge", "b")
    assert _reserve(api, "@echo", first, 1500)["granted"] is True
    # The same job again (a redelivery) replaces its own hold instead of adding one
    assert _reserve(api, "@echo", first, 1500)["granted"] is True
    assert _reserve(api, "@echo", second, 10)["granted"] is False

    # When the first job died and its hold expired
    admin.execute("update private.bot_token_holds set expires_at = now() - interval '1 second'")
    assert _reserve(api, "@echo", second, 10)["granted"] is True
    holds = admin.execute("select trigger_id from private.bot_token_holds").fetchall()
    assert holds == [(second,)]


def test_a_space_budget_holds_every_bot_in_it_and_zero_stops_a_bot(
    admin: psycopg.Connection[Any], api: psycopg.Connection[Any]
) -> None:
    make_world(admin)
    set_bot_budget(admin, "#lounge", 500, scope="space")
    first, second = say(admin, "@guest", "#lounge", "a"), say(admin, "@guest", "#lounge", "b")
    _reserve(api, "@echo", first, 100)
    _record(api, "@echo", first, 300)
    _reserve(api, "@sage", first, 100)
    _record(api, "@sage", first, 300)

    refused = _reserve(api, "@echo", second, 100)
    assert (refused["granted"], refused["scope"], refused["spent"]) == (False, "space", 600)
    assert spent_today(admin, "#lounge", scope="space") == (600, 0)

    # A bot with a budget of 0 never calls its model; the default still holds for others
    set_bot_budget(admin, "@hermit", 0)
    attic = say(admin, "@stranger", "#attic", "anyone?")
    assert _reserve(api, "@hermit", attic, 1)["granted"] is False


def test_unknown_bots_triggers_and_negative_tokens_are_refused(
    admin: psycopg.Connection[Any], api: psycopg.Connection[Any]
) -> None:
    make_world(admin)
    said = say(admin, "@guest", "#lounge", "a")
    for bot, trigger, tokens, expected in (
        ("@nobody", said, 1, "PT404"),
        ("@guest", said, 1, "PT404"),  # a person, not a bot
        ("@echo", "/msg-gone", 1, "PT404"),
        ("@echo", said, -1, "PT400"),
    ):
        with pytest.raises(psycopg.Error) as refused:
            _reserve(api, bot, trigger, tokens)
        assert refused.value.sqlstate == expected
