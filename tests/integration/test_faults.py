"""The bot always answers, or tells you why (issue 23): the whole pipeline
on loopback (tests/support/faults.py) with its parts broken on purpose,
delays scaled down (retries after 1, 2, 4, 8 s; webhook redelivery checked
every 0.2 s, 1 s after the first delivery, then every 2 s at most).
Every wait is on a condition; the bounds stated are generous."""

from __future__ import annotations

import importlib
import json
import time
import tracemalloc
from collections.abc import Iterator
from typing import Any

import psycopg
import pytest

from infra.dev.platform import sqs_event
from tests.support.events import LambdaContext
from tests.support.fake_llm import Step, reply
from tests.support.faults import Pipeline, Scale, pipeline, wait_for
from tests.support.spaces import bot_reply_id, make_world, say

pytestmark = pytest.mark.integration

UTTERANCES = 3
# After bot-trigger or the provider is back, every utterance is answered within:
ANSWERED_WITHIN = 30.0


@pytest.fixture(params=["direct"])
def adapter(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture
def stack(environment: None, admin: psycopg.Connection[Any], admin_dsn: str) -> Iterator[Pipeline]:
    make_world(admin)
    with pipeline(admin, admin_dsn, {}, Scale()) as running:
        yield running


def _answered_once(stack: Pipeline, said: list[str]) -> None:
    """Each bot answered each utterance: one complete reply, no notice."""
    assert stack.replies(said) == {
        s: [("@echo", "utterance", "complete"), ("@sage", "utterance", "complete")] for s in said
    }


@pytest.mark.parametrize("fault", ["refuse", "503", "slow"])
def test_bot_trigger_down_while_people_speak_then_back_every_utterance_answered_once(
    stack: Pipeline, fault: str
) -> None:
    # Given bot-trigger refusing connections, answering 503, or slower than
    # pg_net's timeout, while three utterances arrive
    stack.gateway.mode = fault
    said = [say(stack.admin, "@guest", "#lounge", f"question {i}") for i in range(UTTERANCES)]
    # and each webhook is sent again while it lasts
    wait_for(lambda: stack.redelivered(said, fault), 20, "redeliveries during the outage")

    # When it is back
    stack.gateway.mode = "up"
    recovered = time.monotonic()

    # Then every utterance is answered by each bot, exactly once, soon
    answered = wait_for(lambda: stack.settled(said), ANSWERED_WITHIN, "every utterance answered")
    _answered_once(stack, said)
    wait_for(lambda: stack.pending_deliveries() == 0, 10, "every delivery acknowledged")
    assert answered - recovered < ANSWERED_WITHIN


def test_utterances_before_the_webhook_is_configured_are_answered_once_it_is(
    stack: Pipeline,
) -> None:
    # Given a project whose webhook URL is not set yet, while people speak
    url = stack.admin.execute(
        "delete from private.settings where key = 'bot_trigger_url' returning value"
    ).fetchone()
    assert url is not None
    said = [say(stack.admin, "@guest", "#lounge", f"early {i}") for i in range(UTTERANCES)]
    # and the redelivery keeps trying (nothing reaches bot-trigger)
    wait_for(lambda: stack.least_attempts(said) >= 2, 20, "attempts while unconfigured")
    assert sum(stack.gateway.received[s] for s in said) == 0

    # When the operator sets it
    stack.admin.execute(
        "insert into private.settings (key, value) values ('bot_trigger_url', %s)", (url[0],)
    )
    configured = time.monotonic()

    # Then every utterance is answered by each bot, exactly once
    answered = wait_for(lambda: stack.settled(said), ANSWERED_WITHIN, "every utterance answered")
    _answered_once(stack, said)
    wait_for(lambda: stack.pending_deliveries() == 0, 10, "every delivery acknowledged")
    assert answered - configured < ANSWERED_WITHIN


def test_a_provider_failing_for_a_while_is_ridden_out(stack: Pipeline) -> None:
    # Given the provider answering 500 for 4 s (retries come after 1, 2, 4 s)
    outage = 4.0
    stack.llm.outage_until = time.monotonic() + outage
    said = [say(stack.admin, "@guest", "#lounge", f"question {i}") for i in range(UTTERANCES)]

    # Then every utterance is answered after it, with no error notice
    answered = wait_for(lambda: stack.settled(said), outage + ANSWERED_WITHIN, "every answer")
    _answered_once(stack, said)
    assert stack.llm.outage_answers >= 2 * UTTERANCES  # each job failed at least once
    assert answered > stack.llm.outage_until


def test_a_job_delivered_twice_gives_one_reply(stack: Pipeline) -> None:
    # Given a reply that takes a while, and the same job queued twice (both in flight at once)
    stack.llm.script = [reply("one two three four five six", delay_between=0.1)]
    stack.gateway.mode = "503"  # no webhook gets through: the test queues the jobs itself
    said = say(stack.admin, "@guest", "#lounge", "hello")
    job = json.dumps({"bot_id": "@echo", "space_id": "#lounge", "trigger_id": said})
    stack.sqs.client.send_message(QueueUrl=stack.sqs.url, MessageBody=job)
    stack.sqs.client.send_message(QueueUrl=stack.sqs.url, MessageBody=job)

    # Then there is one complete reply with the whole text, and nothing else
    wait_for(lambda: stack.mapping.invocations >= 2, 10, "both deliveries handled")
    wait_for(
        lambda: stack.admin.execute(
            "select state from public.intentions where id = %s", (bot_reply_id("@echo", said),)
        ).fetchone() == ("complete",),
        20, "the reply",
    )  # fmt: skip
    rows = stack.admin.execute(
        "select id, state, content->>'text' from public.intentions"
        " where content->>'in_reply_to' = %s",
        (said,),
    ).fetchall()
    assert rows == [(bot_reply_id("@echo", said), "complete", "one two three four five six")]


@pytest.fixture
def worker(environment: None, admin: psycopg.Connection[Any], admin_dsn: str) -> Iterator[Pipeline]:
    """The pipeline with a 1 s reply deadline and two receives."""
    make_world(admin)
    with pipeline(admin, admin_dsn, {}, Scale(llm_timeout=1.0, max_receives=2)) as running:
        yield running


ENDLESS = {
    "comments only": Step(endless=b": OPENROUTER PROCESSING\n\n", pause=0.01),
    "data lines never closed": Step(endless=b'data: {"choices": []}\n' * 100),
    "bytes without a newline": Step(endless=b"x" * 4096),
    "a slow drip": Step(endless=b":", pause=0.05),
}


@pytest.mark.parametrize("stream", list(ENDLESS))
def test_a_stream_that_never_ends_ends_in_a_notice_within_the_deadline(
    worker: Pipeline, stream: str
) -> None:
    # Given a provider whose stream never completes an answer
    worker.llm.script = [ENDLESS[stream]]
    worker.gateway.mode = "503"  # the test hands the jobs to the worker itself
    said = say(worker.admin, "@guest", "#lounge", "hello")
    handler = importlib.import_module("functions.bot_worker.handler").handler
    job = json.dumps({"bot_id": "@echo", "space_id": "#lounge", "trigger_id": said})

    def deliver(receives: int) -> tuple[dict[str, Any], float, int]:
        message = {"MessageId": f"m{receives}", "ReceiptHandle": "r", "MD5OfBody": "", "Body": job,
                   "Attributes": {"ApproximateReceiveCount": receives}}  # fmt: skip
        tracemalloc.start()
        started = time.monotonic()
        try:
            response = handler(sqs_event([message], worker.sqs.arn), LambdaContext())
            return response, time.monotonic() - started, tracemalloc.get_traced_memory()[1]
        finally:
            tracemalloc.stop()

    # When the worker answers: the first attempt fails in time and is retried
    first, took, peak = deliver(1)
    assert first == {"batchItemFailures": [{"itemIdentifier": "m1"}]}
    assert took < 1.0 + 2.0, took
    assert peak < 24 * 1024 * 1024, peak
    assert worker.replies([said])[said] == []

    # and the last one, as fast, posts the error notice
    last, took, peak = deliver(2)
    assert last == {"batchItemFailures": []}
    assert took < 1.0 + 2.0, took
    assert peak < 24 * 1024 * 1024, peak
    [(text,)] = worker.admin.execute(
        "select content->>'text' from public.intentions where id = %s",
        (bot_reply_id("@echo", said, "error"),),
    ).fetchall()
    assert text.startswith("echo could not answer: the model provider failed (")
