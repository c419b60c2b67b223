"""Per-user rate limits (issue 28), on the real database: every write a
member can cause takes from her bucket in the same transaction, 50 writes at
once never take more than the bucket holds, a refusal is PT429 with
`rate_limited` and when to retry, and nobody but the operator changes the
limits."""

from __future__ import annotations

import uuid
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import psycopg
import pytest

from tests.support.database import SERVICE_CLAIMS, User, acting_as, create_user, rpc
from tests.support.limits import refusal, set_bot_budget, set_rate_limit
from tests.support.spaces import add_being, make_world, say, speak

pytestmark = pytest.mark.db

PRIVATE_TABLES = [
    "private.rate_limits",
    "private.rate_buckets",
    "private.bot_budgets",
    "private.bot_token_usage",
    "private.bot_token_holds",
]
API_ROLES = ["anon", "authenticated", "service_role"]


@pytest.fixture
def pair(admin: psycopg.Connection[Any], api: psycopg.Connection[Any]) -> tuple[User, User, str]:
    amy, bob = create_user(admin, "amy"), create_user(admin, "bob")
    thread = rpc(api, amy.claims(), "ensure_chat_thread", _other_mongo_id="bob")
    return amy, bob, str(thread["thread_id"])


def _post(api: psycopg.Connection[Any], user: User, thread_id: str, **args: Any) -> Any:
    return rpc(api, user.claims(), "insert_chat_message", _thread_id=thread_id, _body="hi", **args)


def test_the_defaults_are_rows_a_real_chat_lives_with(admin: psycopg.Connection[Any]) -> None:
    rows = admin.execute(
        "select action, burst, rate, extract(epoch from per)::int from private.rate_limits"
    ).fetchall()
    limits = {action: (burst, rate, per) for action, burst, rate, per in rows}
    assert limits == {
        "chat_message": (30, 60, 60),
        "chat_thread": (20, 60, 3600),
        "utterance": (30, 60, 60),
        "bot_answer": (10, 10, 60),
    }
    budgets = admin.execute("select scope, subject, tokens_per_day from private.bot_budgets")
    assert sorted(budgets.fetchall()) == [("bot", "*", 250000), ("member", "*", 50000)]


@pytest.mark.parametrize("role", API_ROLES)
def test_no_api_role_may_read_or_change_limits_budgets_or_buckets(
    admin: psycopg.Connection[Any], api: psycopg.Connection[Any], role: str
) -> None:
    privileges = "select, insert, update, delete, truncate, references, trigger"
    for table in PRIVATE_TABLES:
        row = admin.execute(
            "select has_table_privilege(%s, %s, %s)", (role, table, privileges)
        ).fetchone()
        assert row == (False,), (role, table)
    claims = SERVICE_CLAIMS if role == "service_role" else {"role": role, "sub": str(uuid.uuid4())}
    for statement in (
        "update private.rate_limits set burst = 1000000",
        "delete from private.rate_limits",
        "insert into private.bot_budgets values ('bot', '@mine', 999999999)",
        "update private.bot_token_usage set tokens = 0",
        "delete from private.rate_buckets",
        "select * from private.rate_limits",
    ):
        with pytest.raises(psycopg.errors.InsufficientPrivilege), acting_as(api, claims) as cur:
            cur.execute(statement)


@pytest.mark.parametrize(
    ("table", "column", "value"),
    [
        ("private.rate_limits", "burst", "-1"),
        ("private.rate_limits", "burst", "0"),
        ("private.rate_limits", "burst", None),
        ("private.rate_limits", "burst", "1000001"),
        ("private.rate_limits", "burst", "99999999999"),
        ("private.rate_limits", "rate", "0"),
        ("private.rate_limits", "rate", "-3"),
        ("private.rate_limits", "rate", None),
        ("private.rate_limits", "rate", "1000001"),
        ("private.rate_limits", "per", "0 seconds"),
        ("private.rate_limits", "per", "-1 minute"),
        ("private.rate_limits", "per", "1 mon"),
        ("private.rate_limits", "per", None),
        ("private.bot_budgets", "tokens_per_day", "-1"),
        ("private.bot_budgets", "tokens_per_day", None),
        ("private.bot_budgets", "tokens_per_day", "9223372036854775808"),
    ],
)
def test_an_operators_odd_limit_is_refused_when_set_so_no_member_write_meets_it(
    admin: psycopg.Connection[Any], table: str, column: str, value: str | None
) -> None:
    # The operator's update fails at once, saying why; the row keeps its value
    with pytest.raises((psycopg.errors.IntegrityError, psycopg.errors.DataError)):
        admin.execute(f"update {table} set {column} = %s", (value,))  # noqa: S608


def test_the_extreme_limits_an_operator_may_set_still_answer_members_cleanly(
    admin: psycopg.Connection[Any], api: psycopg.Connection[Any], pair: tuple[User, User, str]
) -> None:
    amy, bob, thread_id = pair
    # The slowest: one message, then one a week; the next is a 429 saying so
    set_rate_limit(admin, "chat_message", burst=1, rate=1, per="7 days")
    _post(api, amy, thread_id)
    with pytest.raises(psycopg.Error) as refused:
        _post(api, amy, thread_id)
    assert refusal(refused.value) == ("PT429", "rate_limited", 7 * 24 * 3600)
    # The fastest: a million at once, a million a second
    set_rate_limit(admin, "chat_message", burst=1_000_000, rate=1_000_000, per="1 second")
    for _ in range(3):
        _post(api, bob, thread_id)
    # The largest budget a bot may have, and none at all
    make_world(admin)
    said = say(admin, "@guest", "#lounge", "hi")
    set_bot_budget(admin, "@echo", 2**63 - 1)
    set_bot_budget(admin, "@sage", 0)
    reserve = {"_trigger_id": said, "_tokens": 2**62}
    assert rpc(api, SERVICE_CLAIMS, "reserve_bot_tokens", _bot_id="@echo", **reserve)["granted"]
    assert not rpc(api, SERVICE_CLAIMS, "reserve_bot_tokens", _bot_id="@sage", **reserve)["granted"]


def test_fifty_parallel_messages_by_one_user_stay_exactly_within_the_limit(
    admin: psycopg.Connection[Any], authenticator_dsn: str, pair: tuple[User, User, str]
) -> None:
    amy, bob, thread_id = pair
    set_rate_limit(admin, "chat_message", burst=10)

    def send(_: int) -> str:
        with psycopg.connect(authenticator_dsn, autocommit=True) as conn:
            try:
                _post(conn, amy, thread_id)
            except psycopg.Error as exc:
                return str(refusal(exc)[:2])
            return "stored"

    with ThreadPoolExecutor(max_workers=50) as pool:
        outcomes = list(pool.map(send, range(50)))

    # Then exactly the bucket's ten were stored, the other forty refused
    assert outcomes.count("stored") == 10
    assert outcomes.count("('PT429', 'rate_limited')") == 40
    assert admin.execute("select count(*) from public.chat_messages").fetchone() == (10,)
    # And bob's bucket is his own
    with psycopg.connect(authenticator_dsn, autocommit=True) as conn:
        assert _post(conn, bob, thread_id)["sender_mongo_id"] == "bob"


def test_a_refusal_says_when_to_retry_and_the_bucket_refills(
    admin: psycopg.Connection[Any], api: psycopg.Connection[Any], pair: tuple[User, User, str]
) -> None:
    amy, _, thread_id = pair
    set_rate_limit(admin, "chat_message", burst=2, rate=1, per="1 minute")
    _post(api, amy, thread_id)
    _post(api, amy, thread_id)

    with pytest.raises(psycopg.Error) as refused:
        _post(api, amy, thread_id)
    state, code, seconds = refusal(refused.value)
    assert (state, code) == ("PT429", "rate_limited")
    assert 55 <= seconds <= 60
    assert "try again in" in (refused.value.diag.message_primary or "")

    # When the minute has passed (the bucket's clock moved back instead of waiting)
    admin.execute(
        "update private.rate_buckets set refilled_at = refilled_at - interval '61 seconds'"
    )
    assert _post(api, amy, thread_id)["replayed"] is False
    assert admin.execute("select count(*) from public.chat_messages").fetchone() == (3,)


def test_a_retried_client_id_is_not_a_new_message(
    admin: psycopg.Connection[Any], api: psycopg.Connection[Any], pair: tuple[User, User, str]
) -> None:
    amy, _, thread_id = pair
    set_rate_limit(admin, "chat_message", burst=1)
    client_id = str(uuid.uuid4())
    _post(api, amy, thread_id, _client_id=client_id)

    # The retry of the stored message is answered; a new one is refused
    assert _post(api, amy, thread_id, _client_id=client_id)["replayed"] is True
    with pytest.raises(psycopg.Error) as refused:
        _post(api, amy, thread_id, _client_id=str(uuid.uuid4()))
    assert refused.value.sqlstate == "PT429"


def test_new_threads_are_limited_but_opening_one_again_is_not(
    admin: psycopg.Connection[Any], api: psycopg.Connection[Any]
) -> None:
    amy = create_user(admin, "amy")
    for other in ("bob", "cat", "dan"):
        create_user(admin, other)
    set_rate_limit(admin, "chat_thread", burst=2)
    rpc(api, amy.claims(), "ensure_chat_thread", _other_mongo_id="bob")
    rpc(api, amy.claims(), "ensure_chat_thread", _other_mongo_id="cat")

    again = rpc(api, amy.claims(), "ensure_chat_thread", _other_mongo_id="bob")
    assert again["thread_id"] == "amy__bob"
    with pytest.raises(psycopg.Error) as refused:
        rpc(api, amy.claims(), "ensure_chat_thread", _other_mongo_id="dan")
    assert refusal(refused.value)[:2] == ("PT429", "rate_limited")
    assert admin.execute("select count(*) from public.chat_threads").fetchone() == (2,)


def test_utterances_and_edits_take_from_the_members_bucket(
    admin: psycopg.Connection[Any], api: psycopg.Connection[Any]
) -> None:
    world = make_world(admin)
    add_being(admin, "#quiet", type_="space", owner="@guest")  # a space without bots
    set_rate_limit(admin, "utterance", burst=3)
    first = speak(api, world.guest, "@guest", "#quiet", "one")
    speak(api, world.guest, "@guest", "#quiet", "two")
    with acting_as(api, world.guest.claims(), commit=True) as cur:
        cur.execute(
            'update public.intentions set content = \'{"text": "edited"}\' where id = %s',
            (first,),
        )

    with pytest.raises(psycopg.Error) as refused:
        speak(api, world.guest, "@guest", "#quiet", "four")
    assert refusal(refused.value)[:2] == ("PT429", "rate_limited")
    # Another member is not affected
    speak(api, world.owner, "@owner", "#lounge", "hello")
    # The service's writes are never limited (bot replies stream as updates)
    for state in ("active", "active", "complete"):
        rpc(api, SERVICE_CLAIMS, "write_bot_reply",
            _bot_id="@echo", _trigger_id=first, _text="...", _state=state)  # fmt: skip


def test_an_utterance_asks_one_bot_answer_per_bot_in_the_space(
    admin: psycopg.Connection[Any], api: psycopg.Connection[Any]
) -> None:
    # Given #lounge with two bots, #quiet with none, and room for four answers
    world = make_world(admin)
    add_being(admin, "#quiet", type_="space", owner="@guest")
    set_rate_limit(admin, "bot_answer", burst=4)
    admin.execute(
        "insert into private.settings (key, value) values"
        " ('bot_trigger_url', 'http://bot-trigger.invalid/'), ('bot_trigger_secret', 's')"
    )
    speak(api, world.guest, "@guest", "#lounge", "one")
    speak(api, world.guest, "@guest", "#lounge", "two")

    # Then a third question to both bots is refused, saying so
    with pytest.raises(psycopg.Error) as refused:
        speak(api, world.guest, "@guest", "#lounge", "three")
    assert refusal(refused.value)[:2] == ("PT429", "rate_limited")
    assert "bots" in (refused.value.diag.message_primary or "")
    # And neither it nor its webhook was stored
    stored = admin.execute("select count(*) from public.intentions").fetchone()
    queued = admin.execute("select count(*) from net.http_request_queue").fetchone()
    assert (stored, queued) == ((2,), (2,))
    # While a space without bots takes nothing from that bucket
    speak(api, world.guest, "@guest", "#quiet", "no bots here")


def test_a_space_with_more_bots_than_the_burst_is_charged_every_answer(
    admin: psycopg.Connection[Any], api: psycopg.Connection[Any]
) -> None:
    # Given a space with 30 bots, and the default limit: 10 answers at once, 10 a minute
    world = make_world(admin)
    add_being(admin, "#crowd", type_="space", owner="@guest")
    for i in range(30):
        add_being(admin, f"@bot{i}", type_="bot", location="#crowd", bot_model="m")
    set_rate_limit(admin, "bot_answer", burst=10, rate=10, per="1 minute")

    # When a member asks them, her full bucket lets the question through and
    # is charged all 30 answers: 20 in debt
    speak(api, world.guest, "@guest", "#crowd", "everyone?")
    tokens = admin.execute(
        "select tokens from private.rate_buckets where action = 'bot_answer'"
    ).fetchone()
    assert tokens == (-20.0,)

    # Then the next question waits until the bucket is full again: 30
    # answers at 10 a minute, 3 minutes
    with pytest.raises(psycopg.Error) as refused:
        speak(api, world.guest, "@guest", "#crowd", "anyone?")
    state, code, seconds = refusal(refused.value)
    assert (state, code) == ("PT429", "rate_limited")
    assert 175 <= seconds <= 180
    # Not sooner (two minutes on, the bucket is not full yet)
    admin.execute("update private.rate_buckets set refilled_at = refilled_at - interval '120 s'")
    with pytest.raises(psycopg.Error) as still:
        speak(api, world.guest, "@guest", "#crowd", "anyone?")
    assert 55 <= refusal(still.value)[2] <= 60
    # And once it is, one more question of 30 answers goes through
    admin.execute("update private.rate_buckets set refilled_at = refilled_at - interval '60 s'")
    speak(api, world.guest, "@guest", "#crowd", "now?")


def test_fifty_parallel_utterances_to_the_bots_stay_within_the_limit(
    admin: psycopg.Connection[Any], authenticator_dsn: str
) -> None:
    world = make_world(admin)
    set_rate_limit(admin, "bot_answer", burst=9)  # two bots: four utterances

    def ask(i: int) -> str:
        with psycopg.connect(authenticator_dsn, autocommit=True) as conn:
            try:
                speak(conn, world.guest, "@guest", "#lounge", f"question {i}")
            except psycopg.Error as exc:
                return str(exc.sqlstate)
            return "stored"

    with ThreadPoolExecutor(max_workers=50) as pool:
        outcomes = list(pool.map(ask, range(50)))

    assert (outcomes.count("stored"), outcomes.count("PT429")) == (4, 46)
