"""Each function, in-process through its Lambda entry point against the real
database, writes its metrics as EMF lines CloudWatch accepts
(tests/support/emf.py: the `_aws` block, units, at most 100 metrics and 30
dimensions, every metric named present): HTTP requests by status class and
latency, dependencies down (AuthUnavailable, DatabaseUnavailable, JWKS
fetch failures), token refreshes, the bot pipeline's flow (webhooks, jobs
queued, answered, retried, failed; time to first token; provider errors;
reply-id conflicts), and the backlog of undelivered utterances."""

from __future__ import annotations

import importlib
import json
from collections.abc import Callable
from typing import Any

import psycopg
import pytest

from infra.local.cluster import free_port
from shared import container, metrics
from tests.integration import test_bot_pipeline as bot_pipeline
from tests.integration import test_token
from tests.integration.conftest import Invoke
from tests.support.database import create_user
from tests.support.emf import totals, valid_emf_lines
from tests.support.events import LambdaContext, parse
from tests.support.fake_llm import FakeLlm, Step
from tests.support.fake_supabase import FakeSupabase
from tests.support.gotrue import RefreshGrant
from tests.support.limits import set_bot_budget
from tests.support.pipeline import deliver_webhooks, discard_webhooks, drain, webhook_event
from tests.support.spaces import bot_reply_id, make_world, say, squat
from tests.support.tokens import SigningKeys

pytestmark = pytest.mark.integration

llm, queues, pipeline, grant, token = (
    bot_pipeline.llm,
    bot_pipeline.queues,
    bot_pipeline.pipeline,
    test_token.grant,
    test_token.token,
)
Handler = bot_pipeline.Handler
SECRET = bot_pipeline.SECRET
Queues = tuple[Any, str, str]


@pytest.fixture(params=["direct"])
def adapter(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture(autouse=True)
def nothing_left_over(monkeypatch: pytest.MonkeyPatch) -> None:
    """What earlier tests recorded outside an invocation is theirs."""
    monkeypatch.setattr(metrics, "_outside", metrics.MetricSet())


def _metrics(capsys: pytest.CaptureFixture[str]) -> list[dict[str, Any]]:
    """The EMF lines written since the last call, each checked against the format."""
    return valid_emf_lines(capsys.readouterr().out)


def _counted(lines: list[dict[str, Any]]) -> dict[str, float]:
    """Each count's sum over the lines (durations, ages and ColdStart, once
    per process, left out)."""
    durations = {"Latency", "TimeToFirstToken", "ReplyDuration", "OldestUndeliveredAge"}
    return {
        name: sum(values)
        for name, values in totals(lines).items()
        if name not in durations | {"ColdStart"}
    }


def test_http_functions_count_requests_by_status_class_with_their_latency(
    thread_ensure: Invoke,
    chat_message: Invoke,
    admin: psycopg.Connection[Any],
    bearer: Callable[..., dict[str, str]],
    capsys: pytest.CaptureFixture[str],
) -> None:
    amy = create_user(admin, "amy")
    create_user(admin, "bob")
    _metrics(capsys)
    # When a thread is opened, a message posted, and a request comes without a token
    opened = thread_ensure(
        "POST", "/chat/threads/ensure", body={"other_mongo_id": "bob"}, headers=bearer(amy)
    )
    posted = chat_message(
        "POST", "/chat/messages", body={"thread_id": "amy__bob", "body": "hi"},
        headers=bearer(amy),
    )  # fmt: skip
    refused = chat_message("POST", "/chat/messages", body={"thread_id": "amy__bob", "body": "x"})
    assert (opened.status, posted.status, refused.status) == (200, 201, 401)

    # Then each request wrote one metrics line, named for its function and request
    lines = _metrics(capsys)
    assert [(line["function"], line["correlation_id"]) for line in lines] == [
        ("thread-ensure", opened.headers["x-request-id"]),
        ("chat-message", posted.headers["x-request-id"]),
        ("chat-message", refused.headers["x-request-id"]),
    ]
    assert [
        {k: v for k, v in _counted([line]).items() if not k.startswith("Jwks")} for line in lines
    ] == [
        {"Requests": 1, "Requests2xx": 1},
        {"Requests": 1, "Requests2xx": 1},
        {"Requests": 1, "Requests4xx": 1},
    ]
    for line in lines:
        assert line["stage"] == "local"
        assert 0 < line["Latency"] < 10_000
        units = {m["Name"]: m["Unit"] for m in line["_aws"]["CloudWatchMetrics"][0]["Metrics"]}
        assert units["Latency"] == "Milliseconds"


def test_a_dependency_down_is_counted_by_name(
    thread_ensure: Invoke,
    admin: psycopg.Connection[Any],
    bearer: Callable[..., dict[str, str]],
    supabase: FakeSupabase,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    amy = create_user(admin, "amy")
    create_user(admin, "bob")
    nothing_there = f"127.0.0.1:{free_port()}"

    def ensure() -> int:
        return thread_ensure(
            "POST", "/chat/threads/ensure", body={"other_mongo_id": "bob"}, headers=bearer(amy)
        ).status

    # Given Supabase Auth's JWKS cannot be fetched, and no key was ever cached
    monkeypatch.setenv("SUPABASE_URL", f"http://{nothing_there}")
    container.reset()
    _metrics(capsys)
    assert ensure() == 503
    # Then the 5xx is counted as AuthUnavailable, after a failed JWKS fetch
    assert _counted(_metrics(capsys)) == {
        "Requests": 1, "Requests5xx": 1, "AuthUnavailable": 1, "JwksFetchFailures": 1
    }  # fmt: skip

    # Given the keys can be fetched again but the database cannot be reached
    monkeypatch.setenv("SUPABASE_URL", supabase.url)
    monkeypatch.setenv("DATABASE_URL", f"postgresql://authenticator@{nothing_there}/postgres")
    container.reset()
    assert ensure() == 503
    # Then it is counted as DatabaseUnavailable (the keys' fetch as a success)
    assert _counted(_metrics(capsys)) == {
        "Requests": 1, "Requests5xx": 1, "DatabaseUnavailable": 1, "JwksFetches": 1
    }  # fmt: skip


def test_token_refreshes_and_their_failures_are_counted(
    token: Any,
    supabase: FakeSupabase,
    keys: SigningKeys,
    grant: RefreshGrant,
    capsys: pytest.CaptureFixture[str],
) -> None:
    from shared.session.cookies import encode

    def due_cookie() -> str:
        session = test_token._session(keys, grant, ttl=30)
        return f"sb-127-auth-token={encode(session, 'base64url')}"

    _metrics(capsys)
    # When a session due is refreshed, GoTrue then fails, then refuses a token
    assert token(due_cookie()).status == 200
    supabase.token_endpoint = lambda _: (500, {"error": "server_error"})
    assert token(due_cookie()).status == 503
    supabase.token_endpoint = lambda _: (400, {"error": "invalid_grant"})
    assert token(due_cookie()).status == 401
    supabase.token_endpoint = lambda _: (429, {"error_code": "over_request_rate_limit"})
    assert token(due_cookie()).status == 429

    # Then each is counted, the failure also as AuthUnavailable, GoTrue's
    # rate limit as a failure (it is not the member's session that ended)
    lines = _metrics(capsys)
    assert {line["function"] for line in lines} == {"token"}
    assert [
        {k: v for k, v in _counted([line]).items() if k.startswith(("Token", "Auth", "Requests"))}
        for line in lines
    ] == [
        {"Requests": 1, "Requests2xx": 1, "TokenRefreshes": 1},
        {"Requests": 1, "Requests5xx": 1, "TokenRefreshFailures": 1, "AuthUnavailable": 1},
        {"Requests": 1, "Requests4xx": 1, "TokenRefreshesRefused": 1},
        {"Requests": 1, "Requests4xx": 1, "TokenRefreshFailures": 1},
    ]


def _worker_lines(lines: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [line for line in lines if line["function"] == "bot-worker"]


def _one_bot_asked(
    admin: psycopg.Connection[Any], trigger: Handler, bot: str, speaker: str = "@guest"
) -> str:
    """#lounge with `bot` as its only bot; an utterance delivered to bot-trigger."""
    make_world(admin)
    admin.execute("delete from public.beings where bot_model is not null and id <> %s", (bot,))
    said = say(admin, speaker, "#lounge", "are you there?")
    deliver_webhooks(admin, trigger)
    return said


def test_the_bot_pipeline_counts_its_flow_from_webhook_to_answer(
    pipeline: tuple[Handler, Handler],
    queues: Queues,
    admin: psycopg.Connection[Any],
    capsys: pytest.CaptureFixture[str],
) -> None:
    make_world(admin)
    trigger, worker = pipeline
    _metrics(capsys)
    # When an utterance reaches bot-trigger
    said = say(admin, "@guest", "#lounge", "hello bots")
    delivered = deliver_webhooks(admin, trigger)
    # Then the webhook and its two jobs (one per bot) were counted
    assert [d.status for d in delivered] == [202]
    assert _counted(_metrics(capsys)) == {
        "Requests": 1, "Requests2xx": 1, "WebhooksReceived": 1, "JobsQueued": 2
    }  # fmt: skip
    # And a webhook naming a row that is not there is received and skipped
    gone = {"type": "INSERT", "table": "intentions", "schema": "public", "record": {"id": "/gone"}}
    skipped = parse(trigger(webhook_event(gone, {"x-webhook-secret": SECRET}), LambdaContext()))
    assert (skipped.status, skipped.body) == (200, {"ignored": "intention not found"})
    assert _counted(_metrics(capsys)) == {
        "Requests": 1, "Requests2xx": 1, "WebhooksReceived": 1, "RecordsSkipped": 1
    }  # fmt: skip

    # When the worker answers both jobs
    assert drain(queues[0], queues[1], worker) == [{"batchItemFailures": []}]
    # Then each job's line counts its answer, the model's first token and reply time
    lines = _worker_lines(_metrics(capsys))
    assert len(lines) == 1  # one invocation: both jobs in one batch here
    assert _counted(lines) == {"JobsAnswered": 2}
    values = totals(lines)
    assert len(values["TimeToFirstToken"]) == len(values["ReplyDuration"]) == 2
    assert all(0 < t <= r for t, r in zip(values["TimeToFirstToken"], values["ReplyDuration"],
                                         strict=True))  # fmt: skip
    assert admin.execute(
        "select count(*) from public.intentions where content->>'in_reply_to' = %s", (said,)
    ).fetchone() == (2,)


def test_provider_errors_retries_and_final_failures_are_counted(
    pipeline: tuple[Handler, Handler],
    queues: Queues,
    llm: FakeLlm,
    admin: psycopg.Connection[Any],
    capsys: pytest.CaptureFixture[str],
) -> None:
    llm.script = [Step(status=429), Step(status=503), Step(stall_seconds=1.5)]
    _one_bot_asked(admin, pipeline[0], "@sage")
    _metrics(capsys)

    # When the provider rate-limits, fails, then says nothing before the deadline
    # (three receives: BOT_MAX_RECEIVES=3, the last one writes the notice)
    drain(queues[0], queues[1], pipeline[1])

    # Then the attempts are counted by kind, two retried and the last failed
    assert _counted(_worker_lines(_metrics(capsys))) == {
        "ProviderErrors": 3, "ProviderRateLimited": 1, "ProviderErrors5xx": 1,
        "ProviderTimeouts": 1, "JobsRetried": 2, "JobsFailed": 1,
    }  # fmt: skip


def test_a_taken_reply_id_is_counted_as_a_conflict(
    pipeline: tuple[Handler, Handler],
    queues: Queues,
    admin: psycopg.Connection[Any],
    capsys: pytest.CaptureFixture[str],
) -> None:
    # Given a person's row at @echo's reply id for the next message
    said = _one_bot_asked(admin, pipeline[0], "@echo", speaker="@owner")
    squat(admin, bot_reply_id("@echo", said), "@guest", "#lounge")
    discard_webhooks(admin)
    _metrics(capsys)
    # When the bot tries to answer
    drain(queues[0], queues[1], pipeline[1])
    # Then its job failed, counted as a reply-id conflict
    assert _counted(_worker_lines(_metrics(capsys))) == {"JobsFailed": 1, "ReplyIdConflicts": 1}


def test_a_bot_over_its_budget_is_counted_as_a_refusal(
    pipeline: tuple[Handler, Handler],
    queues: Queues,
    admin: psycopg.Connection[Any],
    capsys: pytest.CaptureFixture[str],
) -> None:
    # Given @echo, alone in the space, may spend nothing today
    set_bot_budget(admin, "@echo", 0)
    _one_bot_asked(admin, pipeline[0], "@echo")
    _metrics(capsys)
    # When its job runs, it answers with a notice, counted as a budget refusal
    drain(queues[0], queues[1], pipeline[1])
    assert _counted(_worker_lines(_metrics(capsys))) == {"BudgetRefusals": 1}


def test_the_schedule_reports_the_backlog_of_undelivered_utterances(
    pipeline: tuple[Handler, Handler],
    admin: psycopg.Connection[Any],
    capsys: pytest.CaptureFixture[str],
) -> None:
    make_world(admin)
    trigger = pipeline[0]
    scheduled = json.loads(_SCHEDULED_EVENT)

    # Given nothing is waiting, then two utterances whose webhooks were lost
    _metrics(capsys)
    assert trigger(scheduled, LambdaContext()) == {
        "pending": 0, "oldest_pending_seconds": 0, "failed_last_hour": 0,
        "unreadable_last_hour": 0,
    }  # fmt: skip
    quiet = _metrics(capsys)
    say(admin, "@guest", "#lounge", "first")
    say(admin, "@guest", "#lounge", "second")
    discard_webhooks(admin)
    admin.execute(
        "update private.bot_deliveries set created_at = now() - interval '4 minutes'"
        " where intention_id = (select min(intention_id) from private.bot_deliveries)"
    )
    assert trigger(scheduled, LambdaContext())["pending"] == 2
    waiting = _metrics(capsys)

    # Then each minute's line has the backlog and its oldest age, in seconds
    assert [(line["function"], line["correlation_id"]) for line in quiet + waiting] == [
        ("bot-trigger", "0f4e7e3a-sched-test")
    ] * 2
    assert [line["UndeliveredUtterances"] for line in quiet + waiting] == [0, 2]
    assert quiet[0]["OldestUndeliveredAge"] == 0
    assert 240 <= waiting[0]["OldestUndeliveredAge"] < 300
    units = {m["Name"]: m["Unit"] for m in waiting[0]["_aws"]["CloudWatchMetrics"][0]["Metrics"]}
    assert units["OldestUndeliveredAge"] == "Seconds"
    assert "Requests" not in waiting[0]  # not an HTTP request


def test_the_schedule_without_a_database_writes_no_backlog(
    pipeline: tuple[Handler, Handler],
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    # Given the database cannot be reached
    monkeypatch.setenv("DATABASE_URL", f"postgresql://authenticator@127.0.0.1:{free_port()}/x")
    container.reset()
    handler = importlib.import_module("functions.bot_trigger.handler").handler
    _metrics(capsys)
    # When the schedule fires
    answer = handler(json.loads(_SCHEDULED_EVENT), LambdaContext())
    # Then it says why, counts the database as unavailable, and writes no backlog
    # figure (its alarm treats a missing minute as breaching)
    assert answer == {"error": "database_unavailable"}
    assert _counted(_metrics(capsys)) == {"DatabaseUnavailable": 1}


# EventBridge's scheduled event, as a rule's `schedule` delivers it.
_SCHEDULED_EVENT = json.dumps(
    {
        "version": "0",
        "id": "0f4e7e3a-sched-test",
        "detail-type": "Scheduled Event",
        "source": "aws.events",
        "account": "123456789012",
        "time": "2026-12-03T12:00:00Z",
        "region": "eu-west-1",
        "resources": ["arn:aws:events:eu-west-1:123456789012:rule/bot-backlog"],
        "detail": {},
    }
)
