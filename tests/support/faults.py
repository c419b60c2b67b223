"""The whole bot pipeline on loopback, with switches to break its parts: the
database's webhook (real SQL) sent by pg_net's worker to bot-trigger behind a
played API Gateway that can refuse connections, answer 503 or stall;
the redelivery function on a short schedule; moto's SQS and the played
event source mapping feeding the worker; the model provider on loopback.
Used by tests/integration/test_faults.py and benchmarks/faults.py."""

from __future__ import annotations

import importlib
import io
import json
import os
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator
from contextlib import ExitStack, contextmanager, suppress
from dataclasses import dataclass, field
from http.server import ThreadingHTTPServer
from typing import Any

import psycopg

from infra.dev.platform import EventSourceMapping, LocalSqs, QueueSettings, Redeliverer
from infra.dev.server import InProcess, make_handler
from infra.local import pg_net
from infra.local.cluster import free_port
from shared import container
from tests.support.fake_llm import FakeLlm, running

SECRET = "faults-webhook-secret-0123456789"
MODES = ("up", "refuse", "503", "slow")


@dataclass
class Gateway:
    """API Gateway in front of bot-trigger's Lambda entry point, on a fixed
    loopback port. `mode`: up; refuse (nothing listens); 503 (answers 503
    at once); slow (waits `slow_seconds`, past pg_net's timeout, then hands
    the request on: a cold start with a slow dependency)."""

    handler: Callable[..., Any]
    port: int = field(default_factory=free_port)
    slow_seconds: float = 3.0
    received: Counter[str] = field(default_factory=Counter)  # webhooks per intention id
    _mode: str = "up"
    _server: ThreadingHTTPServer | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/webhooks/bot-trigger"

    @property
    def mode(self) -> str:
        return self._mode

    @mode.setter
    def mode(self, mode: str) -> None:
        assert mode in MODES
        self._mode = mode
        if mode == "refuse":
            self._close()
        elif self._server is None:
            self._open()

    def _open(self) -> None:
        gateway = self
        base = make_handler(InProcess({"bot_trigger": self.handler}))

        class Handler(base):  # type: ignore[valid-type,misc]
            rfile: Any

            def _serve(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length)
                with suppress(ValueError, KeyError, TypeError):
                    gateway.received[json.loads(body)["record"]["id"]] += 1
                if gateway.mode == "503":
                    self._send(503, {"Content-Type": "application/json"}, [],
                               b'{"message":"Service Unavailable"}')  # fmt: skip
                    return
                if gateway.mode == "slow":
                    time.sleep(gateway.slow_seconds)
                self.rfile = io.BytesIO(body)  # read again by the handler it is handed on to
                # pg_net may have given up waiting; bot-trigger still does its work.
                with suppress(BrokenPipeError, ConnectionResetError):
                    super()._serve()

            do_POST = _serve

            def log_message(self, format: str, *args: Any) -> None:  # noqa: ARG002
                return

        server = ThreadingHTTPServer(("127.0.0.1", self.port), Handler)
        server.daemon_threads = True
        threading.Thread(target=server.serve_forever, daemon=True).start()
        self._server = server

    def _close(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None

    @contextmanager
    def serving(self) -> Iterator[Gateway]:
        self._open()
        try:
            yield self
        finally:
            self._close()


@dataclass
class Pipeline:
    admin: psycopg.Connection[Any]
    gateway: Gateway
    llm: FakeLlm
    sqs: LocalSqs
    mapping: EventSourceMapping

    def replies(self, trigger_ids: list[str]) -> dict[str, list[tuple[str, str, str]]]:
        """Per utterance: (bot, type, state) of every row written in reply."""
        rows = self.admin.execute(
            "select content->>'in_reply_to', owner_id, type, state from public.intentions"
            " where content->>'in_reply_to' = any(%s) order by owner_id, type",
            (trigger_ids,),
        ).fetchall()
        found: dict[str, list[tuple[str, str, str]]] = {t: [] for t in trigger_ids}
        for trigger, bot, kind, state in rows:
            found[trigger].append((bot, kind, state))
        return found

    def settled(self, trigger_ids: list[str], bots: int = 2) -> bool:
        """Every utterance has a final reply or notice from each bot."""
        return all(
            len([r for r in rows if r[2] in ("complete", "failed") and r[1] == "utterance"]
                + [r for r in rows if r[1] == "error"]) >= bots
            for rows in self.replies(trigger_ids).values()
        )  # fmt: skip

    def redelivered(self, trigger_ids: list[str], fault: str) -> bool:
        """Each webhook was sent at least twice more (refused: counted by the
        database) or received at least twice (503, slow: by the gateway; a
        slow bot-trigger still acknowledges, late)."""
        if fault == "refuse":
            return self.least_attempts(trigger_ids) >= 3
        return all(self.gateway.received[t] >= 2 for t in trigger_ids)

    def least_attempts(self, trigger_ids: list[str]) -> int:
        """The fewest webhooks sent for any of the utterances still unacknowledged."""
        row = self.admin.execute(
            "select min(attempts) from private.bot_deliveries where intention_id = any(%s)",
            (trigger_ids,),
        ).fetchone()
        return int(row[0]) if row and row[0] is not None else 0

    def pending_deliveries(self) -> int:
        row = self.admin.execute(
            "select count(*) from private.bot_deliveries where state = 'pending'"
        ).fetchone()
        return int(row[0]) if row else 0


def _restore_environment(saved: dict[str, str]) -> None:
    os.environ.clear()
    os.environ.update(saved)


def wait_for(condition: Callable[[], bool], timeout: float, what: str) -> float:
    """Waits for `condition`; returns when it held (time.monotonic())."""
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"not within {timeout} s: {what}")
        time.sleep(0.05)
    return time.monotonic()


@dataclass(frozen=True)
class Scale:
    """The delays of a run: scaled down in the tests, AWS's in benchmarks."""

    retry_delays: str = "1,2,4,8"  # BOT_RETRY_DELAYS
    max_receives: int = 5
    llm_timeout: float = 5.0
    webhook_timeout_ms: int = 500  # pg_net's timeout per request
    redelivery_every: float = 0.2  # the schedule (pg_cron: a minute)
    # bot_delivery_retry_seconds: longer than bot-trigger takes to acknowledge
    # (as hosted's 30 s), so a webhook that went through is not sent again.
    delivery_retry: float = 1.0
    delivery_max_retry: float = 2.0
    delivery_attempts: int = 100


@contextmanager
def pipeline(
    admin: psycopg.Connection[Any], admin_dsn: str, environment: dict[str, str], scale: Scale
) -> Iterator[Pipeline]:
    """The pipeline on the database at `admin_dsn`, with `environment` (the
    functions' database and auth settings) and the delays of `scale`."""
    saved = dict(os.environ)
    stop = threading.Event()
    with ExitStack() as stack:
        # Last of all: moto puts back the environment it found when it stops.
        stack.callback(_restore_environment, saved)
        llm = stack.enter_context(running(FakeLlm()))
        os.environ.update(environment)
        os.environ.update(
            WEBHOOK_SECRET=SECRET, LLM_BASE_URL=llm.url, OPENROUTER_API_KEY="sk-default-test-key",
            LLM_TIMEOUT_SECONDS=str(scale.llm_timeout), BOT_STREAM_WRITE_INTERVAL="0.05",
            BOT_RETRY_DELAYS=scale.retry_delays, BOT_MAX_RECEIVES=str(scale.max_receives),
            AWS_DEFAULT_REGION="eu-west-1", AWS_ACCESS_KEY_ID="testing",
            AWS_SECRET_ACCESS_KEY="testing", LOG_LEVEL="WARNING",
        )  # fmt: skip
        sqs = LocalSqs(
            QueueSettings(visibility_timeout=30, max_receives=scale.max_receives, concurrency=4)
        ).start()
        stack.callback(sqs.stop)
        os.environ["BOT_QUEUE_URL"] = sqs.url
        container.reset()
        stack.callback(container.reset)
        trigger = importlib.import_module("functions.bot_trigger.handler").handler
        worker = importlib.import_module("functions.bot_worker.handler").handler
        gateway = stack.enter_context(Gateway(trigger).serving())
        settings = {
            "bot_trigger_url": gateway.url, "bot_trigger_secret": SECRET,
            "bot_trigger_timeout_ms": str(scale.webhook_timeout_ms),
            "bot_delivery_retry_seconds": str(scale.delivery_retry),
            "bot_delivery_max_retry_seconds": str(scale.delivery_max_retry),
            "bot_delivery_max_attempts": str(scale.delivery_attempts),
        }  # fmt: skip
        for key, value in settings.items():
            admin.execute(
                "insert into private.settings (key, value) values (%s, %s)"
                " on conflict (key) do update set value = excluded.value",
                (key, value),
            )
        stack.enter_context(pg_net.running(admin_dsn, poll_interval=0.1))
        mapping = EventSourceMapping(sqs, worker, stop)
        mapping.start()
        redelivery = Redeliverer(admin_dsn, stop, scale.redelivery_every)
        redelivery.start()

        def halt() -> None:
            stop.set()
            mapping.join(15)
            redelivery.join(5)

        stack.callback(halt)
        yield Pipeline(admin, gateway, llm, sqs, mapping)
