"""What one member can make the bots cost, through the real pipeline (the
webhook, bot-trigger, the queue, the worker, a loopback model): a flood of
questions is cut at the rate limit in the database, and a bot past its
daily token budget answers with a notice instead of calling the model."""

from __future__ import annotations

import logging
import time
from collections.abc import Iterator
from typing import Any

import psycopg
import pytest

from shared.bots.budget import EVENT
from tests.integration import test_bot_pipeline as bot_pipeline
from tests.support.fake_llm import FakeLlm, Step, reply
from tests.support.limits import refusal, set_bot_budget, spent_today
from tests.support.pipeline import deliver_webhooks, discard_webhooks, drain
from tests.support.spaces import make_world, say, speak

pytestmark = pytest.mark.integration

# The pipeline as test_bot_pipeline sets it up (moto SQS, the loopback model, the webhook).
adapter, llm, queues, pipeline = (
    bot_pipeline.adapter,
    bot_pipeline.llm,
    bot_pipeline.queues,
    bot_pipeline.pipeline,
)
Handler = bot_pipeline.Handler
Queues = tuple[Any, str, str]


@pytest.fixture
def worker_log() -> Iterator[list[logging.LogRecord]]:
    """The worker's structured log lines (its logger does not propagate)."""
    records: list[logging.LogRecord] = []

    class Keep(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            records.append(record)

    handler = Keep()
    logging.getLogger("bot-worker").addHandler(handler)
    yield records
    logging.getLogger("bot-worker").removeHandler(handler)


@pytest.fixture
def sage_alone(admin: psycopg.Connection[Any]) -> None:
    """#lounge with one bot, @sage."""
    make_world(admin)
    admin.execute("delete from public.beings where id = '@echo'")


def _answers(admin: psycopg.Connection[Any], trigger_id: str) -> dict[str, tuple[str, str]]:
    rows = admin.execute(
        "select owner_id || ':' || type, state, content->>'text' from public.intentions"
        " where content->>'in_reply_to' = %s",
        (trigger_id,),
    ).fetchall()
    return {key: (state, text) for key, state, text in rows}


def _ask(
    admin: psycopg.Connection[Any], pipeline: tuple[Handler, Handler], queues: Queues, text: str
) -> str:
    said = say(admin, "@guest", "#lounge", text)
    deliver_webhooks(admin, pipeline[0])
    drain(queues[0], queues[1], pipeline[1])
    return said


def test_a_flood_of_questions_costs_at_most_the_configured_model_calls(
    pipeline: tuple[Handler, Handler],
    queues: Queues,
    admin: psycopg.Connection[Any],
    api: psycopg.Connection[Any],
    llm: FakeLlm,
) -> None:
    # Given #lounge with two bots, and the default limit on bot answers
    world = make_world(admin)
    limit = admin.execute(
        "select burst, rate, extract(epoch from per)::float from private.rate_limits"
        " where action = 'bot_answer'"
    ).fetchone()
    assert limit is not None
    burst, rate, per = limit

    # When one member sends 100 questions as fast as PostgREST takes them
    stored: list[str] = []
    refused: list[tuple[str | None, str | None, int]] = []
    started = time.monotonic()
    for i in range(100):
        try:
            stored.append(speak(api, world.guest, "@guest", "#lounge", f"question {i}"))
        except psycopg.Error as exc:
            refused.append(refusal(exc))
    elapsed = time.monotonic() - started
    trigger, worker = pipeline
    delivered = deliver_webhooks(admin, trigger)
    drain(queues[0], queues[1], worker, rounds=30)

    # Then the model was called at most as often as the limit allows (two
    # bots: two calls per stored question), every call answered
    assert len(llm.requests) == 2 * len(stored)
    assert burst - 1 <= len(llm.requests) <= burst + rate * elapsed / per
    assert [d.status for d in delivered] == [202] * len(stored)
    answered = admin.execute(
        "select count(*) from public.intentions where owner_id in ('@echo', '@sage')"
        " and state = 'complete'"
    ).fetchone()
    assert answered == (len(llm.requests),)
    # And every other question was refused clearly, saying when to retry
    assert len(stored) + len(refused) == 100
    assert {r[:2] for r in refused} == {("PT429", "rate_limited")}
    assert all(1 <= r[2] <= per for r in refused)
    # And another member is not affected
    speak(api, world.owner, "@owner", "#lounge", "my turn")


@pytest.mark.parametrize("adapter", ["direct", "postgrest"], indirect=True)
def test_a_bot_over_its_daily_budget_answers_with_a_notice_and_no_model_call(
    pipeline: tuple[Handler, Handler],
    queues: Queues,
    admin: psycopg.Connection[Any],
    llm: FakeLlm,
    worker_log: list[logging.LogRecord],
) -> None:
    # Given @echo has spent today's budget
    make_world(admin)
    set_bot_budget(admin, "@echo", 1000)
    admin.execute(
        "insert into private.bot_token_usage (scope, subject, day, tokens)"
        " values ('bot', '@echo', (now() at time zone 'UTC')::date, 1000)"
    )

    # When a member asks the bots
    said = _ask(admin, pipeline, queues, "hello bots")

    # Then @echo wrote a notice instead, and only @sage's model was asked
    answers = _answers(admin, said)
    assert answers["@echo:error"] == (
        "failed",
        "echo has used up its daily budget of model tokens and will answer again at 00:00 UTC.",
    )
    assert "@echo:utterance" not in answers
    assert answers["@sage:utterance"][0] == "complete"
    assert [r["body"]["model"] for r in llm.requests] == ["anthropic/claude-3.5-haiku"]
    # And one structured line counts it (the metric's source)
    [event] = [r for r in worker_log if getattr(r, "event", None) == EVENT]
    fields = {k: getattr(event, k) for k in ("bot_id", "space_id", "trigger_id", "scope", "budget")}
    assert fields == {
        "bot_id": "@echo",
        "space_id": "#lounge",
        "trigger_id": said,
        "scope": "bot",
        "budget": 1000,
    }


def test_a_member_past_her_share_of_a_bot_is_told_so_and_others_are_still_answered(
    pipeline: tuple[Handler, Handler],
    queues: Queues,
    admin: psycopg.Connection[Any],
    llm: FakeLlm,
    worker_log: list[logging.LogRecord],
) -> None:
    # Given @guest has spent today's share of @echo (the default row)
    make_world(admin)
    share = admin.execute(
        "select tokens_per_day from private.bot_budgets where (scope, subject) = ('member', '*')"
    ).fetchone()
    assert share is not None
    admin.execute(
        "insert into private.bot_token_usage (scope, subject, member_id, day, tokens)"
        " values ('member', '@echo', '@guest', (now() at time zone 'UTC')::date, %s)",
        share,
    )

    # When she asks the bots, @echo tells her whose share ran out, @sage answers
    said = _ask(admin, pipeline, queues, "hello bots")
    answers = _answers(admin, said)
    assert answers["@echo:error"] == (
        "failed",
        "echo has used up your share of its daily budget of model tokens and will answer you"
        " again at 00:00 UTC.",
    )
    assert answers["@sage:utterance"][0] == "complete"
    [event] = [r for r in worker_log if getattr(r, "event", None) == EVENT]
    assert (event.scope, event.member) == ("member", "@guest")  # type: ignore[attr-defined]

    # And another member's question is answered by @echo as usual
    theirs = say(admin, "@owner", "#lounge", "my turn")
    deliver_webhooks(admin, pipeline[0])
    drain(queues[0], queues[1], pipeline[1])
    assert _answers(admin, theirs)["@echo:utterance"][0] == "complete"


def test_a_long_history_is_trimmed_before_the_model_and_the_budget_see_it(
    pipeline: tuple[Handler, Handler],
    queues: Queues,
    admin: psycopg.Connection[Any],
    llm: FakeLlm,
    sage_alone: None,
) -> None:
    # Given a space whose last lines are all near the 16 KiB content limit
    for i in range(9):
        say(admin, "@guest", "#lounge", f"{i} " + "x" * 15_000)
    discard_webhooks(admin)
    llm.script = [Step(tokens=["ok"], report_usage=False)]

    # When the next question comes
    said = _ask(admin, pipeline, queues, "9 " + "x" * 15_000)

    # Then the model is asked with the newest lines within the prompt's
    # budget (24 KiB), not ten of them (150 KB)
    assert _answers(admin, said)["@sage:utterance"][0] == "complete"
    [request] = llm.requests
    sent = [m["content"] for m in request["body"]["messages"]]
    assert sum(len(c.encode()) for c in sent) <= 24 * 1024
    assert sent[-1].startswith("guest: 9 ")
    # And what the budget held and counted is that prompt's cost (3 bytes a
    # token): the reviewer's nine questions cost 279,576 tokens, one now ~5,100
    tokens, estimated = spent_today(admin, "@sage")
    assert tokens == estimated
    assert tokens < 24 * 1024 // 3 + 100


def test_a_budget_is_overrun_by_at_most_the_reply_that_crossed_it(
    pipeline: tuple[Handler, Handler],
    queues: Queues,
    admin: psycopg.Connection[Any],
    llm: FakeLlm,
    sage_alone: None,
) -> None:
    # Given @sage alone, a budget of 300 tokens, replies the provider counts as 200
    set_bot_budget(admin, "@sage", 300)
    llm.script = [reply("an answer", usage=(120, 80))]

    # When three questions come one after another
    asked = [_ask(admin, pipeline, queues, f"question {i}") for i in range(3)]

    # Then two were answered (the second crossed the budget), the third got the notice
    states = [_answers(admin, said) for said in asked]
    assert [s.get("@sage:utterance", ("-",))[0] for s in states] == ["complete", "complete", "-"]
    assert states[2]["@sage:error"][0] == "failed"
    assert len(llm.requests) == 2
    # And what was spent is the provider's count, read from the stream
    assert spent_today(admin, "@sage") == (400, 0)
    assert spent_today(admin, "#lounge", scope="space") == (400, 0)
    body = llm.requests[0]["body"]
    assert body["stream_options"] == {"include_usage": True}
    assert body["max_tokens"] == 2048


def test_without_the_providers_count_the_spend_is_estimated_from_the_text(
    pipeline: tuple[Handler, Handler],
    queues: Queues,
    admin: psycopg.Connection[Any],
    llm: FakeLlm,
    sage_alone: None,
) -> None:
    llm.script = [Step(tokens=["x" * 300], report_usage=False)]

    said = _ask(admin, pipeline, queues, "tell me")

    assert _answers(admin, said)["@sage:utterance"][0] == "complete"
    tokens, estimated = spent_today(admin, "@sage")
    # The prompt (system line and the question) and 300 bytes of reply, 3 bytes a token
    assert tokens == estimated
    assert 100 <= tokens <= 130
    holds = admin.execute("select count(*) from private.bot_token_holds").fetchone()
    assert holds == (0,)
