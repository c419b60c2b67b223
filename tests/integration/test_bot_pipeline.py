"""The bot pipeline end to end: an utterance queues a webhook (real SQL),
bot-trigger enqueues jobs (moto SQS), the worker answers through a loopback
OpenAI-compatible server and writes the reply (real database)."""

from __future__ import annotations

import importlib
import json
import threading
import time
from collections.abc import Callable, Iterator
from typing import Any

import boto3
import psycopg
import pytest
from moto import mock_aws

from shared import container
from shared.bots.settings import SPARE_RECEIVES
from tests.support.database import acting_as
from tests.support.events import LambdaContext, parse
from tests.support.fake_llm import FakeLlm, Step, reply, running
from tests.support.pipeline import Sent, deliver_webhooks, discard_webhooks, drain, webhook_event
from tests.support.spaces import World, bot_reply_id, make_world, say, squat

pytestmark = pytest.mark.integration

SECRET = "test-webhook-secret-0123456789"
Handler = Callable[..., dict[str, Any]]


@pytest.fixture(params=["direct"])
def adapter(request: pytest.FixtureRequest) -> str:
    """Direct only here; the main test runs on both adapters."""
    return str(request.param)


@pytest.fixture
def llm() -> Iterator[FakeLlm]:
    with running(FakeLlm()) as fake:
        yield fake


@pytest.fixture
def queues(aws_credentials: None) -> Iterator[tuple[Any, str, str]]:
    with mock_aws():
        sqs = boto3.client("sqs", region_name="eu-west-1")
        dlq = sqs.create_queue(QueueName="bot-jobs-dlq")["QueueUrl"]
        dlq_arn = sqs.get_queue_attributes(QueueUrl=dlq, AttributeNames=["QueueArn"])["Attributes"][
            "QueueArn"
        ]
        queue = sqs.create_queue(
            QueueName="bot-jobs",
            Attributes={
                "RedrivePolicy": json.dumps(
                    # BOT_MAX_RECEIVES (3, below) and the receives to spare
                    {"deadLetterTargetArn": dlq_arn, "maxReceiveCount": str(3 + SPARE_RECEIVES)}
                )
            },
        )["QueueUrl"]
        yield sqs, queue, dlq


@pytest.fixture
def pipeline(
    environment: None,
    monkeypatch: pytest.MonkeyPatch,
    llm: FakeLlm,
    queues: tuple[Any, str, str],
    admin: psycopg.Connection[Any],
) -> tuple[Handler, Handler]:
    monkeypatch.setenv("WEBHOOK_SECRET", SECRET)
    monkeypatch.setenv("BOT_QUEUE_URL", queues[1])
    monkeypatch.setenv("LLM_BASE_URL", llm.url)
    monkeypatch.setenv("OPENROUTER_API_KEY", "sk-default-test-key")
    monkeypatch.setenv("LLM_TIMEOUT_SECONDS", "1")
    monkeypatch.setenv("BOT_STREAM_WRITE_INTERVAL", "0.05")
    # Retries at once, three receives: these tests drain the queue themselves
    # (tests/integration/test_faults.py has the real delays).
    monkeypatch.setenv("BOT_RETRY_DELAYS", "0")
    monkeypatch.setenv("BOT_MAX_RECEIVES", "3")
    container.reset()
    admin.execute(
        "insert into private.settings (key, value) values ('bot_trigger_url', 'http://bot-trigger.invalid/webhooks/bot-trigger'), ('bot_trigger_secret', %s)",
        (SECRET,),
    )
    trigger = importlib.import_module("functions.bot_trigger.handler").handler
    worker = importlib.import_module("functions.bot_worker.handler").handler
    return trigger, worker


def _replies(admin: psycopg.Connection[Any], trigger_id: str) -> dict[str, tuple[str, str, str]]:
    rows = admin.execute(
        "select owner_id, type, state, content->>'text' from public.intentions"
        " where content->>'in_reply_to' = %s",
        (trigger_id,),
    ).fetchall()
    return {f"{r[0]}:{r[1]}": (r[2], r[3], r[1]) for r in rows}


def _converse(
    admin: psycopg.Connection[Any],
    pipeline: tuple[Handler, Handler],
    queues: tuple[Any, str, str],
    text: str = "hello bots",
) -> tuple[World, str, list[dict[str, Any]]]:
    world = make_world(admin)
    trigger, worker = pipeline
    said = say(admin, "@guest", "#lounge", text)
    delivered = deliver_webhooks(admin, trigger)
    assert [(d.status, d.body) for d in delivered] == [(202, {"queued": 2})]
    return world, said, drain(queues[0], queues[1], worker)


@pytest.mark.parametrize("adapter", ["direct", "postgrest"], indirect=True)
def test_two_bots_in_the_space_both_answer(
    pipeline: tuple[Handler, Handler],
    queues: tuple[Any, str, str],
    admin: psycopg.Connection[Any],
    llm: FakeLlm,
    api: psycopg.Connection[Any],
) -> None:
    world, said, responses = _converse(admin, pipeline, queues)

    # Then each bot wrote one complete reply with the model's text
    assert responses == [{"batchItemFailures": []}]
    assert _replies(admin, said) == {
        "@echo:utterance": ("complete", "Hello from the model", "utterance"),
        "@sage:utterance": ("complete", "Hello from the model", "utterance"),
    }
    # And each bot asked with its own model, prompt, key and the conversation
    asked = {r["body"]["model"]: r for r in llm.requests}
    assert set(asked) == {"openai/gpt-4o-mini", "anthropic/claude-3.5-haiku"}
    sage = asked["anthropic/claude-3.5-haiku"]
    assert sage["path"] == "/api/v1/chat/completions"
    assert sage["authorization"] == "Bearer sk-sage-secret"
    assert asked["openai/gpt-4o-mini"]["authorization"] == "Bearer sk-default-test-key"
    assert sage["body"]["stream"] is True
    assert sage["body"]["messages"] == [
        {"role": "system", "content": "You are wise."},
        {"role": "user", "content": "guest: hello bots"},
    ]
    # And the space's members read the replies through RLS, but never a key
    with acting_as(api, world.guest.claims()) as cur:
        seen = cur.execute(
            "select owner_id from public.intentions where content->>'in_reply_to' = %s", (said,)
        ).fetchall()
    assert sorted(r["owner_id"] for r in seen) == ["@echo", "@sage"]


def test_the_bots_own_earlier_lines_are_assistant_turns(
    pipeline: tuple[Handler, Handler],
    queues: tuple[Any, str, str],
    admin: psycopg.Connection[Any],
    llm: FakeLlm,
) -> None:
    make_world(admin)
    say(admin, "@guest", "#lounge", "first")
    say(admin, "@sage", "#lounge", "an earlier answer")
    discard_webhooks(admin)
    said = say(admin, "@guest", "#lounge", "second")
    deliver_webhooks(admin, pipeline[0])
    drain(queues[0], queues[1], pipeline[1])
    sage = next(r for r in llm.requests if r["body"]["model"] == "anthropic/claude-3.5-haiku")
    assert sage["body"]["messages"][1:] == [
        {"role": "user", "content": "guest: first"},
        {"role": "assistant", "content": "an earlier answer"},
        {"role": "user", "content": "guest: second"},
    ]
    assert _replies(admin, said)["@sage:utterance"][0] == "complete"


def test_the_same_webhook_three_times_leaves_one_reply_per_bot(
    pipeline: tuple[Handler, Handler], queues: tuple[Any, str, str], admin: psycopg.Connection[Any]
) -> None:
    make_world(admin)
    trigger, worker = pipeline
    said = say(admin, "@guest", "#lounge", "hello")
    sent: list[Sent] = []
    [first] = deliver_webhooks(admin, trigger, sent)
    assert first.status == 202
    for _ in range(2):
        result = parse(trigger(webhook_event(sent[0].body, sent[0].headers), LambdaContext()))
        assert result.status == 202
    drain(queues[0], queues[1], worker)
    replies = admin.execute(
        "select owner_id, state from public.intentions where content->>'in_reply_to' = %s order by owner_id",
        (said,),
    ).fetchall()
    assert replies == [("@echo", "complete"), ("@sage", "complete")]


def test_bots_and_non_utterances_are_ignored(
    pipeline: tuple[Handler, Handler], admin: psycopg.Connection[Any], queues: tuple[Any, str, str]
) -> None:
    make_world(admin)
    trigger, _ = pipeline
    by_bot = say(admin, "@echo", "#lounge", "a bot speaks")
    assert deliver_webhooks(admin, trigger) == []

    def post(record: dict[str, Any], **overrides: Any) -> Any:
        body = {
            "type": "INSERT",
            "table": "intentions",
            "schema": "public",
            "record": record,
            "old_record": None,
            **overrides,
        }
        return parse(trigger(webhook_event(body, {"x-webhook-secret": SECRET}), LambdaContext()))

    notice = say(admin, "@guest", "#lounge", "not an utterance", type_="error")

    # The trigger sends the row's identity only; the row is read back
    record = {"id": by_bot}
    assert post(record).body == {"ignored": "spoken by a bot"}
    assert post({"id": notice}).body == {"ignored": "not an utterance"}
    assert post(record, type="UPDATE").body == {"ignored": "not an insert into public.intentions"}
    assert post({"id": "/msg-gone"}).body == {"ignored": "intention not found"}
    # A full row (Supabase's generic webhook) is accepted; its other fields are not trusted
    full = {"id": by_bot, "type": "utterance", "owner_id": "@guest", "location_id": "#lounge"}
    assert post(full).body == {"ignored": "spoken by a bot"}
    assert queues[0].receive_message(QueueUrl=queues[1]).get("Messages") is None


def test_wrong_secret_is_401_and_malformed_payload_400(
    pipeline: tuple[Handler, Handler], admin: psycopg.Connection[Any]
) -> None:
    trigger, _ = pipeline
    body = {
        "type": "INSERT",
        "table": "intentions",
        "schema": "public",
        "record": None,
        "old_record": None,
    }
    for headers in ({}, {"x-webhook-secret": "wrong"}, {"x-webhook-secret": SECRET[:-1]}):
        result = parse(trigger(webhook_event(body, headers), LambdaContext()))
        assert (result.status, result.error_code) == (401, "invalid_webhook_secret")
    for bad in (
        "{not json",
        json.dumps({"type": "INSERT"}),
        json.dumps({**body, "record": {"id": 5}}),
    ):
        result = parse(trigger(webhook_event(bad, {"x-webhook-secret": SECRET}), LambdaContext()))
        assert (result.status, result.error_code) == (400, "invalid_payload")


def test_the_queue_refusing_is_503(
    pipeline: tuple[Handler, Handler], admin: psycopg.Connection[Any], queues: tuple[Any, str, str]
) -> None:
    make_world(admin)
    queues[0].delete_queue(QueueUrl=queues[1])
    say(admin, "@guest", "#lounge", "hello")
    [result] = deliver_webhooks(admin, pipeline[0])
    assert (result.status, result.error_code) == (503, "queue_unavailable")
    assert admin.execute("select status_code from net._http_response").fetchall() == [(503,)]


def test_429_then_success_is_retried_through_the_queue(
    pipeline: tuple[Handler, Handler],
    queues: tuple[Any, str, str],
    admin: psycopg.Connection[Any],
    llm: FakeLlm,
) -> None:
    llm.script = [Step(status=429), Step(status=429), reply("Sorry for the wait")]
    _, said, responses = _converse(admin, pipeline, queues)
    assert len(responses[0]["batchItemFailures"]) == 2
    assert responses[-1] == {"batchItemFailures": []}
    replies = _replies(admin, said)
    assert {k: v[0] for k, v in replies.items()} == {
        "@echo:utterance": "complete",
        "@sage:utterance": "complete",
    }


@pytest.mark.parametrize("fault", ["500", "timeout"])
def test_a_provider_that_keeps_failing_ends_in_an_error_notice(
    pipeline: tuple[Handler, Handler],
    queues: tuple[Any, str, str],
    admin: psycopg.Connection[Any],
    llm: FakeLlm,
    fault: str,
) -> None:
    llm.script = [Step(status=500)] if fault == "500" else [Step(stall_seconds=1.5)]
    _, said, responses = _converse(admin, pipeline, queues)
    # Each job was tried BOT_MAX_RECEIVES (3) times; the last try wrote the notice
    assert [len(r["batchItemFailures"]) for r in responses] == [2, 2, 0]
    replies = _replies(admin, said)
    assert set(replies) == {"@echo:error", "@sage:error"}
    for state, text, _ in replies.values():
        assert state == "failed"
        assert "could not answer" in text
        assert "sk-" not in text
        assert "Traceback" not in text


def test_a_bad_key_fails_at_once_with_a_notice(
    pipeline: tuple[Handler, Handler],
    queues: tuple[Any, str, str],
    admin: psycopg.Connection[Any],
    llm: FakeLlm,
) -> None:
    llm.script = [Step(status=401)]
    _, said, responses = _converse(admin, pipeline, queues)
    assert responses == [{"batchItemFailures": []}]
    assert {k: v[0] for k, v in _replies(admin, said).items()} == {
        "@echo:error": "failed",
        "@sage:error": "failed",
    }
    assert len(llm.requests) == 2


def test_a_stream_cut_midway_closes_the_reply_as_failed(
    pipeline: tuple[Handler, Handler],
    queues: tuple[Any, str, str],
    admin: psycopg.Connection[Any],
    llm: FakeLlm,
) -> None:
    llm.script = [reply("half of an answer", finish=False)]
    _, said, _ = _converse(admin, pipeline, queues)
    replies = _replies(admin, said)
    assert replies["@sage:utterance"][:2] == ("failed", "half of an answer")
    assert replies["@sage:error"][0] == "failed"
    assert not any(state == "active" for state, _, _ in replies.values())


def test_malformed_events_and_keepalives_do_not_break_the_stream(
    pipeline: tuple[Handler, Handler],
    queues: tuple[Any, str, str],
    admin: psycopg.Connection[Any],
    llm: FakeLlm,
) -> None:
    llm.script = [reply("still a fine answer", malformed_at=2)]
    _, said, _ = _converse(admin, pipeline, queues)
    assert _replies(admin, said)["@echo:utterance"][:2] == ("complete", "still a fine answer")


def test_the_reply_is_readable_while_it_streams(
    pipeline: tuple[Handler, Handler],
    queues: tuple[Any, str, str],
    admin: psycopg.Connection[Any],
    llm: FakeLlm,
) -> None:
    gate = threading.Event()
    llm.script = [reply("streaming words arrive", gate=gate)]
    make_world(admin)
    admin.execute("delete from public.beings where id = '@echo'")
    said = say(admin, "@guest", "#lounge", "hello")
    deliver_webhooks(admin, pipeline[0])
    worker = threading.Thread(target=drain, args=(queues[0], queues[1], pipeline[1]))
    worker.start()
    try:
        partial = None
        for _ in range(100):
            partial = _replies(admin, said).get("@sage:utterance")
            if partial:
                break
            time.sleep(0.05)
        assert partial == ("active", "streaming", "utterance")
    finally:
        gate.set()
        worker.join(10)
    assert _replies(admin, said)["@sage:utterance"][:2] == ("complete", "streaming words arrive")


def test_without_any_key_the_echo_model_answers(
    pipeline: tuple[Handler, Handler],
    queues: tuple[Any, str, str],
    admin: psycopg.Connection[Any],
    llm: FakeLlm,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.delenv("OPENROUTER_API_KEY")
    monkeypatch.setenv("ECHO_WORD_DELAY_SECONDS", "0")  # the 1 s deadline holds for it too
    container.reset()
    make_world(admin)
    admin.execute("select public.set_bot_llm_api_key('@sage', '')")
    discard_webhooks(admin)
    said = say(admin, "@guest", "#lounge", "is anyone there?")
    deliver_webhooks(admin, pipeline[0])
    drain(queues[0], queues[1], pipeline[1])
    state, text, _ = _replies(admin, said)["@echo:utterance"]
    assert state == "complete"
    assert text.startswith("[echo model: no LLM key configured]")
    assert "is anyone there?" in text
    assert llm.requests == []


def test_a_taken_reply_id_is_reported_not_taken_for_an_answer(
    pipeline: tuple[Handler, Handler],
    queues: tuple[Any, str, str],
    admin: psycopg.Connection[Any],
    caplog: pytest.LogCaptureFixture,
) -> None:
    # Given a person's row at @echo's reply id for the next message
    make_world(admin)
    trigger, worker = pipeline
    said = say(admin, "@owner", "#lounge", "hello bots")
    assert [d.status for d in deliver_webhooks(admin, trigger)] == [202]
    squat(admin, bot_reply_id("@echo", said), "@guest", "#lounge")
    discard_webhooks(admin)  # the squat's own webhook

    # When the bots answer
    responses = drain(queues[0], queues[1], worker)

    # Then @sage answered; @echo's job ended (no retry can help) with an error
    # notice in the space and an error in the log, not as "already answered"
    assert responses == [{"batchItemFailures": []}]
    replies = _replies(admin, said)
    assert replies["@sage:utterance"][0] == "complete"
    assert "@echo:utterance" not in replies
    assert replies["@echo:error"][:2] == ("failed", "echo could not answer: its reply id is taken.")
    assert any(r.levelname == "ERROR" and "cannot reply" in r.getMessage() for r in caplog.records)


def _content(text: str) -> str:
    return json.dumps({"choices": [{"index": 0, "delta": {"content": text}}]})


def test_chunks_of_the_wrong_shape_are_skipped_and_the_reply_completes(
    pipeline: tuple[Handler, Handler],
    queues: tuple[Any, str, str],
    admin: psycopg.Connection[Any],
    llm: FakeLlm,
    caplog: pytest.LogCaptureFixture,
) -> None:
    # Given a provider whose stream has chunks of shapes no OpenAI client expects
    odd = ['{"choices": ["x"]}', '{"choices": [{"delta": "text"}]}', '{"choices": "abc"}',
           '{"choices": [null, {"delta": {"content": 5}}]}', "[1, 2]"]  # fmt: skip
    llm.script = [reply("an answer", events=[*odd, _content(" after all")])]

    # When the bots answer
    _, said, _ = _converse(admin, pipeline, queues)

    # Then the odd chunks were skipped (and said so), the rest is the reply
    assert _replies(admin, said)["@echo:utterance"][:2] == ("complete", "an answer after all")
    assert any(r.levelname == "WARNING" and "skipping" in r.getMessage() for r in caplog.records)


def test_an_event_nested_past_the_parser_is_a_provider_failure_then_a_notice(
    pipeline: tuple[Handler, Handler],
    queues: tuple[Any, str, str],
    admin: psycopg.Connection[Any],
    llm: FakeLlm,
) -> None:
    # Given a provider that sends an event nested 5,000 deep
    llm.script = [reply("so deep", events=["[" * 5000 + "]" * 5000], finish=False)]

    # When the bots answer
    _, said, responses = _converse(admin, pipeline, queues)

    # Then each attempt failed as the provider's fault, and the last one told the space
    assert [len(r["batchItemFailures"]) for r in responses] == [2, 2, 0]
    replies = _replies(admin, said)
    assert replies["@echo:error"][:2] == (
        "failed", "echo could not answer: the model provider failed (provider sent a malformed stream)."
    )  # fmt: skip
    assert not any(state == "active" for state, _, _ in replies.values())
    assert len(llm.requests) == 6


@pytest.mark.parametrize("adapter", ["direct", "postgrest"], indirect=True)
def test_a_character_split_across_two_chunks_is_stored_whole(
    pipeline: tuple[Handler, Handler],
    queues: tuple[Any, str, str],
    admin: psycopg.Connection[Any],
    llm: FakeLlm,
) -> None:
    # Given a provider that escapes an emoji as a surrogate pair and sends its
    # halves in two chunks, and a lone half elsewhere
    llm.script = [Step(tokens=["Hi ", "\ud83d", "\ude00", " and \udc00", " bye \ud83d"])]

    # When the bots answer
    _, said, _ = _converse(admin, pipeline, queues)

    # Then the reply is stored, the pair as one character, lone halves replaced
    state, text, _ = _replies(admin, said)["@echo:utterance"]
    assert (state, text) == ("complete", "Hi \U0001f600 and \ufffd bye \ufffd")


def test_a_reply_the_database_refuses_is_retried_then_closed_with_a_notice(
    pipeline: tuple[Handler, Handler],
    queues: tuple[Any, str, str],
    admin: psycopg.Connection[Any],
    llm: FakeLlm,
    caplog: pytest.LogCaptureFixture,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("LLM_TIMEOUT_SECONDS", "10")  # every attempt fails, but never late
    container.reset()
    # Given a model whose reply ends in a NUL, which PostgreSQL's text refuses
    llm.script = [Step(tokens=["Hello", " world\u0000"])]

    # When the bots answer
    _, said, responses = _converse(admin, pipeline, queues)

    # Then each attempt failed and was retried, the last one told the space,
    # and nothing was left `active`
    assert [len(r["batchItemFailures"]) for r in responses] == [2, 2, 0]
    replies = _replies(admin, said)
    assert replies["@echo:utterance"][:2] == ("failed", "Hello")
    assert replies["@echo:error"][:2] == (
        "failed", "echo could not answer: an internal error stopped it."
    )  # fmt: skip
    assert not any(state == "active" for state, _, _ in replies.values())
    # and every failure was logged at ERROR, with its traceback and the job's ids
    failures = [r for r in caplog.records if r.levelname == "ERROR" and r.exc_info]
    assert len(failures) == 2 * 3
    assert all(getattr(r, "bot_id", None) in ("@echo", "@sage") for r in failures)
    assert all(getattr(r, "trigger_id", None) == said for r in failures)


def test_an_empty_reply_is_retried_not_stored(
    pipeline: tuple[Handler, Handler],
    queues: tuple[Any, str, str],
    admin: psycopg.Connection[Any],
    llm: FakeLlm,
) -> None:
    # Given a model that finishes without a word, then with blanks, then answers
    llm.script = [Step(tokens=[]), Step(tokens=["  ", "\n"]), reply("Here I am")]
    make_world(admin)
    admin.execute("delete from public.beings where id = '@sage'")
    said = say(admin, "@guest", "#lounge", "hello?")
    deliver_webhooks(admin, pipeline[0])

    # When the bot answers
    responses = drain(queues[0], queues[1], pipeline[1])

    # Then the empty replies were failures, retried; the answer is the reply
    assert [len(r["batchItemFailures"]) for r in responses[:2]] == [1, 1]
    assert len(llm.requests) >= 3
    assert _replies(admin, said) == {"@echo:utterance": ("complete", "Here I am", "utterance")}


def test_a_model_that_only_ever_answers_nothing_ends_in_a_notice(
    pipeline: tuple[Handler, Handler],
    queues: tuple[Any, str, str],
    admin: psycopg.Connection[Any],
    llm: FakeLlm,
) -> None:
    llm.script = [Step(tokens=[])]
    _, said, responses = _converse(admin, pipeline, queues)
    assert [len(r["batchItemFailures"]) for r in responses] == [2, 2, 0]
    replies = _replies(admin, said)
    assert set(replies) == {"@echo:error", "@sage:error"}
    assert replies["@echo:error"][1] == (
        "echo could not answer: the model provider failed (the model's reply was empty)."
    )


def test_a_receive_lost_to_throttling_does_not_cost_the_notice(
    pipeline: tuple[Handler, Handler],
    queues: tuple[Any, str, str],
    admin: psycopg.Connection[Any],
    llm: FakeLlm,
) -> None:
    # Given a provider that keeps failing, and a bot whose job fails twice
    llm.script = [Step(status=500)]
    sqs, url, dead_letters = queues
    make_world(admin)
    admin.execute("delete from public.beings where id = '@sage'")
    said = say(admin, "@guest", "#lounge", "hello")
    deliver_webhooks(admin, pipeline[0])
    for _ in range(2):
        [response] = drain(sqs, url, pipeline[1], rounds=1)
        assert len(response["batchItemFailures"]) == 1
    # When its third receive is lost (Lambda throttled, or the invocation timed out)
    lost = sqs.receive_message(QueueUrl=url, VisibilityTimeout=0)["Messages"]
    assert len(lost) == 1

    # Then the next receive is still the worker's: its last attempt writes the notice
    assert drain(sqs, url, pipeline[1]) == [{"batchItemFailures": []}]
    assert _replies(admin, said)["@echo:error"][0] == "failed"
    assert sqs.receive_message(QueueUrl=dead_letters).get("Messages") is None


def test_a_webhook_that_is_not_the_insert_leaves_the_delivery_pending(
    pipeline: tuple[Handler, Handler], admin: psycopg.Connection[Any], queues: tuple[Any, str, str]
) -> None:
    # Given an utterance whose delivery bot-trigger has not acknowledged yet
    make_world(admin)
    trigger, worker = pipeline
    said = say(admin, "@guest", "#lounge", "hello bots")

    def pending() -> list[tuple[str]]:
        return admin.execute(
            "select state from private.bot_deliveries where intention_id = %s", (said,)
        ).fetchall()

    assert pending() == [("pending",)]

    # When a webhook set to all events (a dashboard's) sends its UPDATE, DELETE,
    # or an insert into another table, naming the same id
    for kind, table in (("UPDATE", "intentions"), ("DELETE", "intentions"),
                        ("INSERT", "beings")):  # fmt: skip
        body = {"type": kind, "table": table, "schema": "public", "record": {"id": said},
                "old_record": None}  # fmt: skip
        result = parse(trigger(webhook_event(body, {"x-webhook-secret": SECRET}), LambdaContext()))
        assert result.body == {"ignored": "not an insert into public.intentions"}

    # Then the delivery is still due: the database sends the INSERT again, and the bots answer
    assert pending() == [("pending",)]
    assert [r.body for r in deliver_webhooks(admin, trigger)] == [{"queued": 2}]
    assert pending() == []
    drain(queues[0], queues[1], worker)
    assert {k: v[0] for k, v in _replies(admin, said).items()} == {
        "@echo:utterance": "complete",
        "@sage:utterance": "complete",
    }
