"""At-least-once delivery of utterances to bot-trigger (issue 23): the record
written with the utterance, redelivery with back-off, the acknowledgement,
giving up with visible notices, and records that cannot be read."""

from __future__ import annotations

import json
import time
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import psycopg
import pytest

from tests.support.database import SERVICE_CLAIMS as SERVICE
from tests.support.database import rpc, warnings_of
from tests.support.spaces import add_being, bot_reply_id, make_world, say, speak

pytestmark = pytest.mark.db

URL = "http://127.0.0.1:9/webhooks/bot-trigger"


def _configure(admin: psycopg.Connection[Any], **settings: str) -> None:
    values = {"bot_trigger_url": URL, "bot_trigger_secret": "s3cret", **settings}
    for key, value in values.items():
        admin.execute(
            "insert into private.settings (key, value) values (%s, %s)"
            " on conflict (key) do update set value = excluded.value",
            (key, value),
        )


def _record(admin: psycopg.Connection[Any], intention_id: str) -> dict[str, Any] | None:
    row = admin.execute(
        "select attempts, state, last_error, next_attempt_at > now() as waiting"
        " from private.bot_deliveries where intention_id = %s",
        (intention_id,),
    ).fetchone()
    if row is None:
        return None
    return dict(zip(("attempts", "state", "last_error", "waiting"), row, strict=True))


def _queued_for(admin: psycopg.Connection[Any], intention_id: str) -> list[int]:
    """pg_net requests naming the utterance, oldest first."""
    rows = admin.execute(
        "select id, convert_from(body, 'UTF8')::jsonb from net.http_request_queue order by id"
    ).fetchall()
    return [rid for rid, body in rows if body["record"] == {"id": intention_id}]


def _redeliver(admin: psycopg.Connection[Any]) -> dict[str, int]:
    done: dict[str, int] = admin.execute("select private.redeliver_bot_webhooks()").fetchone()[0]  # type: ignore[index]
    return done


def _due_now(admin: psycopg.Connection[Any]) -> None:
    admin.execute("update private.bot_deliveries set next_attempt_at = now() - interval '1 second'")


def test_the_record_is_written_with_the_utterance_and_only_with_it(
    admin: psycopg.Connection[Any],
) -> None:
    make_world(admin)
    _configure(admin)

    # An utterance that commits has its record and its first webhook
    said = say(admin, "@guest", "#lounge", "hello bots")
    assert _record(admin, said) == {
        "attempts": 1,
        "state": "pending",
        "last_error": None,
        "waiting": True,
    }
    assert len(_queued_for(admin, said)) == 1

    # One rolled back leaves neither
    with admin.transaction(force_rollback=True):
        rolled_back = say(admin, "@guest", "#lounge", "never mind")
    assert _record(admin, rolled_back) is None
    assert _queued_for(admin, rolled_back) == []

    # Nobody answers a bot, and a space without bots has nobody to answer
    add_being(admin, "#empty", type_="space")
    add_being(admin, "@loner", type_="user", location="#empty")
    by_bot = say(admin, "@echo", "#lounge", "a bot speaks")
    alone = say(admin, "@loner", "#empty", "anyone?")
    assert _record(admin, by_bot) is None
    assert _queued_for(admin, by_bot) == []
    assert _record(admin, alone) is None
    assert _queued_for(admin, alone) == []


def test_an_unacknowledged_delivery_is_sent_again_after_its_back_off(
    admin: psycopg.Connection[Any],
) -> None:
    make_world(admin)
    _configure(admin, bot_delivery_retry_seconds="30")
    said = say(admin, "@guest", "#lounge", "hello")

    # Before its back-off has passed, nothing is sent again
    assert _redeliver(admin)["sent"] == 0
    assert len(_queued_for(admin, said)) == 1

    # Once due, the same webhook goes out again, and the next wait doubles
    _due_now(admin)
    assert _redeliver(admin) == {"sent": 1, "gave_up": 0, "set_aside": 0, "failed": 0}
    first, second = _queued_for(admin, said)
    bodies = admin.execute(
        "select convert_from(body, 'UTF8')::jsonb, headers from net.http_request_queue"
        " where id in (%s, %s) order by id",
        (first, second),
    ).fetchall()
    assert bodies[0] == bodies[1]
    assert bodies[1][0] == {
        "type": "INSERT", "table": "intentions", "schema": "public",
        "record": {"id": said}, "old_record": None,
    }  # fmt: skip
    assert bodies[1][1]["x-webhook-secret"] == "s3cret"
    wait = admin.execute(
        "select extract(epoch from next_attempt_at - now()) from private.bot_deliveries"
    ).fetchone()
    assert wait is not None
    assert 55 < wait[0] <= 60
    assert _record(admin, said)["attempts"] == 2  # type: ignore[index]


def test_one_scheduled_run_drains_the_backlog_batch_after_batch(
    admin: psycopg.Connection[Any],
) -> None:
    # Given five utterances unacknowledged after an outage, due again at once
    make_world(admin)
    _configure(admin, bot_delivery_retry_seconds="0")
    said = [say(admin, "@guest", "#lounge", f"question {i}") for i in range(5)]
    _due_now(admin)

    # When one run goes through them two at a time
    done = admin.execute("call private.redeliver_all_bot_webhooks(2)").fetchone()

    # Then every one was sent again, once (a record sent in this run is not
    # due again within it, even with no back-off), in three committed batches
    assert done == ({"sent": 5, "gave_up": 0, "set_aside": 0, "failed": 0, "batches": 3},)
    assert [len(_queued_for(admin, s)) for s in said] == [2] * 5
    # And a run out of time stops after its batch; the next one carries on
    _due_now(admin)
    stopped = admin.execute("call private.redeliver_all_bot_webhooks(2, 0)").fetchone()
    assert stopped == ({"sent": 2, "gave_up": 0, "set_aside": 0, "failed": 0, "batches": 1},)
    # And an operator's hand-typed call with nulls or a zero batch still
    # drains, one at a time (the sixth batch finds nothing and ends the run)
    _due_now(admin)
    odd = admin.execute("call private.redeliver_all_bot_webhooks(0, null)").fetchone()
    assert odd == ({"sent": 5, "gave_up": 0, "set_aside": 0, "failed": 0, "batches": 6},)


def test_bot_trigger_acknowledges_and_only_the_service_may(
    admin: psycopg.Connection[Any], api: psycopg.Connection[Any]
) -> None:
    world = make_world(admin)
    _configure(admin)
    said = say(admin, "@guest", "#lounge", "hello")

    for claims in (None, world.guest.claims()):
        with pytest.raises(psycopg.errors.InsufficientPrivilege):
            rpc(api, claims, "ack_bot_delivery", _intention_id=said)
    assert _record(admin, said) is not None

    assert rpc(api, SERVICE, "ack_bot_delivery", _intention_id=said) is True
    assert _record(admin, said) is None
    assert rpc(api, SERVICE, "ack_bot_delivery", _intention_id=said) is False
    _due_now(admin)
    assert _redeliver(admin)["sent"] == 0


def test_after_the_last_attempt_each_bot_posts_an_error_notice_and_the_record_stays(
    admin: psycopg.Connection[Any],
) -> None:
    # Given three deliveries at most, and bot-trigger answering 503 to each
    make_world(admin)
    _configure(admin, bot_delivery_max_attempts="3")
    said = say(admin, "@guest", "#lounge", "is anyone there?")
    warnings = warnings_of(admin)
    for _ in range(2):
        _due_now(admin)
        assert _redeliver(admin)["sent"] == 1
    [*_, last] = _queued_for(admin, said)
    admin.execute(
        "insert into net._http_response (id, status_code, content) values (%s, 503, '{}')", (last,)
    )
    # and @sage answered anyway (a delivery reached it, its acknowledgement did not)
    admin.execute("select public.write_bot_reply('@sage', %s, 'Here I am', 'complete')", (said,))

    # When the last one goes unacknowledged
    _due_now(admin)
    assert _redeliver(admin) == {"sent": 0, "gave_up": 1, "set_aside": 0, "failed": 0}

    # Then @echo posts its error notice at its deterministic id, @sage does not,
    notices = admin.execute(
        "select id, owner_id, type, state, content->>'text' from public.intentions"
        " where content->>'in_reply_to' = %s and type = 'error'",
        (said,),
    ).fetchall()
    assert notices == [(
        bot_reply_id("@echo", said, "error"), "@echo", "error", "failed",
        "echo could not answer: your message did not reach the bot service after 3 attempts"
        " (it answered 503).",
    )]  # fmt: skip
    # the record stays for an operator, with the reason, and nothing is sent again
    assert _record(admin, said) == {
        "attempts": 3,
        "state": "failed",
        "last_error": "bot-trigger answered 503",
        "waiting": False,
    }
    assert any(f"intention {said} not acknowledged after 3 deliveries" in w for w in warnings)
    _due_now(admin)
    assert _redeliver(admin)["gave_up"] == 0
    assert len(_queued_for(admin, said)) == 3


def test_an_acknowledgement_that_loses_the_race_to_giving_up_leaves_the_answer_alone(
    admin: psycopg.Connection[Any], admin_dsn: str, api: psycopg.Connection[Any]
) -> None:
    # Given an utterance on its last delivery
    make_world(admin)
    _configure(admin, bot_delivery_max_attempts="1")
    said = say(admin, "@guest", "#lounge", "just in time?")
    _due_now(admin)

    # When a run gives up on it while bot-trigger's acknowledgement waits on the record
    with psycopg.connect(admin_dsn) as run, ThreadPoolExecutor(max_workers=1) as pool:
        assert _redeliver(run)["gave_up"] == 1  # its transaction still open
        ack = pool.submit(rpc, api, SERVICE, "ack_bot_delivery", _intention_id=said)
        _wait_until_blocked(admin)
        run.commit()
        # the acknowledgement finds the record given up
        assert ack.result(timeout=30) is False
    notices = admin.execute(
        "select owner_id from public.intentions where type = 'error' order by owner_id"
    ).fetchall()
    assert notices == [("@echo",), ("@sage",)]

    # Then the jobs it queued still answer, and each answer withdraws its
    # bot's "could not answer" notice
    for state in ("active", "complete"):
        rpc(api, SERVICE, "write_bot_reply",
            _bot_id="@echo", _trigger_id=said, _text="Here I am", _state=state)  # fmt: skip
    rows = admin.execute(
        "select owner_id, type, state from public.intentions"
        " where content->>'in_reply_to' = %s order by owner_id, type",
        (said,),
    ).fetchall()
    assert rows == [("@echo", "utterance", "complete"), ("@sage", "error", "failed")]
    # And the record stays for the operator
    assert _record(admin, said)["state"] == "failed"  # type: ignore[index]


def _wait_until_blocked(admin: psycopg.Connection[Any], timeout: float = 30) -> None:
    """Until some session waits on a lock (pg_locks: visible to every role)."""
    deadline = time.monotonic() + timeout
    while admin.execute("select count(*) from pg_locks where not granted").fetchone() == (0,):
        assert time.monotonic() < deadline, "nothing waited on a lock"
        time.sleep(0.02)


def test_a_broken_configuration_counts_attempts_and_ends_in_a_notice(
    admin: psycopg.Connection[Any],
) -> None:
    make_world(admin)
    _configure(admin, bot_trigger_url="not a url", bot_delivery_max_attempts="2")
    warnings = warnings_of(admin)
    said = say(admin, "@guest", "#lounge", "hello")
    assert any("invalid URL" in w for w in warnings)
    assert _record(admin, said)["attempts"] == 1  # type: ignore[index]
    for _ in range(2):
        _due_now(admin)
        _redeliver(admin)
    record = _record(admin, said)
    assert record is not None
    assert record["state"] == "failed"
    assert "invalid URL" in record["last_error"]
    texts = admin.execute(
        "select content->>'text' from public.intentions where type = 'error'"
    ).fetchall()
    assert {t for (t,) in texts} == {
        f"{name} could not answer: your message did not reach the bot service after 2 attempts"
        " (it could not be reached)."
        for name in ("echo", "sage")
    }
    assert "s3cret" not in json.dumps(warnings)


def test_an_utterance_before_the_webhook_is_configured_is_delivered_once_it_is(
    admin: psycopg.Connection[Any],
) -> None:
    # Given a project whose webhook settings are not in yet
    make_world(admin)
    warnings = warnings_of(admin)

    # When a member speaks, the utterance is kept with its record: a failed
    # first attempt, said in a WARNING, nothing queued
    said = say(admin, "@guest", "#lounge", "anyone?")
    record = _record(admin, said)
    assert record is not None
    assert (record["attempts"], record["state"]) == (1, "pending")
    assert record["last_error"].startswith("bot webhook not configured")
    assert any("not configured" in w for w in warnings)
    assert _queued_for(admin, said) == []

    # Then once the operator sets the webhook, the redelivery sends it
    _configure(admin)
    _due_now(admin)
    assert _redeliver(admin) == {"sent": 1, "gave_up": 0, "set_aside": 0, "failed": 0}
    assert len(_queued_for(admin, said)) == 1


def test_a_webhook_never_configured_ends_in_notices_saying_so(
    admin: psycopg.Connection[Any],
) -> None:
    make_world(admin)
    admin.execute(
        "insert into private.settings (key, value) values ('bot_delivery_max_attempts', '2')"
    )
    said = say(admin, "@guest", "#lounge", "hello?")
    for _ in range(2):
        _due_now(admin)
        _redeliver(admin)
    assert _record(admin, said)["state"] == "failed"  # type: ignore[index]
    texts = admin.execute(
        "select content->>'text' from public.intentions where type = 'error'"
    ).fetchall()
    assert {t for (t,) in texts} == {
        f"{name} could not answer: your message did not reach the bot service after 2 attempts"
        " (the webhook is not configured)."
        for name in ("echo", "sage")
    }


@pytest.mark.parametrize(
    ("key", "value", "expected"),
    [
        ("bot_delivery_retry_seconds", "10000000000000", 86400),
        ("bot_delivery_retry_seconds", "0.5", 0.5),
        ("bot_delivery_retry_seconds", "-5", 30),  # does not parse: the default
        ("bot_delivery_retry_seconds", "1" + "0" * 40, 30),
        ("bot_delivery_max_retry_seconds", "99999999999999999999", 86400),
        ("bot_delivery_max_attempts", "3000000000", 100),
        ("bot_delivery_max_attempts", "0", 1),
        ("bot_delivery_max_attempts", "many", 6),
        ("bot_trigger_timeout_ms", "99999999999", 60000),
        ("bot_trigger_timeout_ms", "1", 100),
    ],
)
def test_each_setting_is_clamped_to_a_sane_range(
    admin: psycopg.Connection[Any], key: str, value: str, expected: float
) -> None:
    _configure(admin, **{key: value})
    row = admin.execute("select private.bot_delivery_setting(%s)::float", (key,)).fetchone()
    assert row == (expected,)


def test_overflowing_settings_never_fail_a_members_utterance_or_the_schedule(
    admin: psycopg.Connection[Any], api: psycopg.Connection[Any]
) -> None:
    # Given an operator's values that parse but overflow what they feed
    world = make_world(admin)
    _configure(
        admin,
        bot_delivery_retry_seconds="10000000000000",
        bot_delivery_max_retry_seconds="10000000000000",
        bot_delivery_max_attempts="3000000000",
        bot_trigger_timeout_ms="99999999999",
    )

    # When a member speaks through the API, her utterance is stored and its
    # first webhook queued, with the timeout and the wait at their bounds
    said = speak(api, world.guest, "@guest", "#lounge", "still fine?")
    [request] = _queued_for(admin, said)
    timeout = admin.execute(
        "select timeout_milliseconds from net.http_request_queue where id = %s", (request,)
    ).fetchone()
    assert timeout == (60000,)
    wait = admin.execute(
        "select extract(epoch from next_attempt_at - now()) from private.bot_deliveries"
    ).fetchone()
    assert wait is not None
    assert 86000 < wait[0] <= 86400

    # And the scheduled job runs, delivers, and gives up after 100 deliveries at most
    _due_now(admin)
    assert _redeliver(admin) == {"sent": 1, "gave_up": 0, "set_aside": 0, "failed": 0}
    admin.execute("update private.bot_deliveries set attempts = 100")
    _due_now(admin)
    assert _redeliver(admin) == {"sent": 0, "gave_up": 1, "set_aside": 0, "failed": 0}


def test_bookkeeping_that_fails_never_fails_the_members_insert(
    admin: psycopg.Connection[Any], api: psycopg.Connection[Any]
) -> None:
    # Given counting a delivery fails (whatever the cause)
    world = make_world(admin)
    _configure(admin)
    admin.execute(
        """
        create function private.fail_counting() returns trigger language plpgsql as $$
        begin
          if new.attempts > old.attempts then raise exception 'disk on fire'; end if;
          return new;
        end $$;
        create trigger fail_counting before update on private.bot_deliveries
          for each row execute function private.fail_counting();
        """
    )
    warnings = warnings_of(api)

    # When a member speaks, her utterance is stored, with a WARNING
    said = speak(api, world.guest, "@guest", "#lounge", "hello")
    assert admin.execute(
        "select count(*) from public.intentions where id = %s", (said,)
    ).fetchone() == (1,)
    assert any(said in w and "disk on fire" in w for w in warnings)
    # and its record waits, due, for the redelivery (nothing was queued uncounted)
    assert _record(admin, said) == {
        "attempts": 0, "state": "pending", "last_error": None, "waiting": False,
    }  # fmt: skip
    assert _queued_for(admin, said) == []
    admin.execute("drop trigger fail_counting on private.bot_deliveries")
    assert _redeliver(admin)["sent"] == 1


def test_records_it_cannot_read_are_set_aside_and_the_others_still_go_out(
    admin: psycopg.Connection[Any],
) -> None:
    # Given a due record naming no utterance, one naming a notice, one whose
    # processing fails, and a good one
    make_world(admin)
    _configure(admin)
    good = say(admin, "@guest", "#lounge", "hello")
    failing = say(admin, "@guest", "#lounge", "this one breaks")
    notice = say(admin, "@guest", "#lounge", "not an utterance", type_="error")
    admin.execute(
        "insert into private.bot_deliveries (intention_id, attempts) values ('/msg-gone', 1), (%s, 1)",
        (notice,),
    )
    admin.execute(
        f"""
        create function private.fail_once() returns trigger language plpgsql as $$
        begin
          if new.intention_id = '{failing}' and new.attempts > old.attempts then
            raise exception 'disk on fire';
          end if;
          return new;
        end $$;
        create trigger fail_once before update on private.bot_deliveries
          for each row execute function private.fail_once();
        """
    )
    warnings = warnings_of(admin)

    # When the schedule runs
    _due_now(admin)
    done = _redeliver(admin)

    # Then the good one went out, the unreadable ones are set aside with their
    # reason and a warning naming them, and the run finished
    assert done == {"sent": 1, "gave_up": 0, "set_aside": 2, "failed": 1}
    assert _record(admin, good)["attempts"] == 2  # type: ignore[index]
    states = dict(
        admin.execute(
            "select intention_id, state || ': ' || last_error from private.bot_deliveries"
            " where intention_id <> %s",
            (good,),
        ).fetchall()
    )
    assert states == {
        "/msg-gone": "unreadable: intention not found",
        notice: "unreadable: not an utterance",
        failing: "unreadable: disk on fire",
    }
    for name in ("/msg-gone", notice, failing):
        assert any(name in w for w in warnings)
    # and they are never retried
    _due_now(admin)
    assert _redeliver(admin) == {"sent": 1, "gave_up": 0, "set_aside": 0, "failed": 0}
