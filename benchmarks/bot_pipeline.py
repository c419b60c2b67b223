"""The bot pipeline's costs: round trips per webhook and per job, and the
time between the model's first token and that token being readable in the
database (loopback streaming server, real PostgreSQL, direct adapter)."""

from __future__ import annotations

import os
import shutil
import statistics
import tempfile
import threading
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import psycopg

from benchmarks.report import Row
from infra.dev.platform import sqs_event
from infra.local.cluster import PgCluster, free_port
from infra.local.schema import apply_schema
from shared import container
from shared.auth.principal import Caller
from shared.bots.models import WebhookPayload
from shared.bots.trigger import trigger
from shared.db.port import Database
from shared.queue import SqsQueue
from tests.support.fake_llm import FakeLlm, reply, running
from tests.support.spaces import add_being, make_world, say

SAMPLES = 25


class Counting:
    """Wraps the database port and a queue, counting round trips."""

    def __init__(self, db: Database) -> None:
        self.db = db
        self.calls = 0
        self.sends = 0

    def call(self, function: str, args: Mapping[str, Any], caller: Caller) -> Any:
        self.calls += 1
        return self.db.call(function, args, caller)

    def close(self) -> None:
        self.db.close()

    def send_message_batch(self, QueueUrl: str, Entries: Sequence[Any]) -> dict[str, Any]:  # noqa: ARG002
        """What boto3's SQS client would be called with, counted."""
        self.sends += 1
        assert len(Entries) <= 10
        return {"Successful": [{"Id": e["Id"]} for e in Entries], "Failed": []}


def run() -> list[Row]:
    root = Path(tempfile.mkdtemp(prefix="chat-bench-bots-"))
    cluster = PgCluster(root / "cluster", free_port())
    cluster.start()
    saved = dict(os.environ)
    try:
        apply_schema(cluster.dsn())
        with psycopg.connect(cluster.dsn(), autocommit=True) as admin, running(FakeLlm()) as llm:
            make_world(admin)
            for n in range(23):  # 25 bots in the lounge in all
                add_being(
                    admin,
                    f"@extra{n}",
                    type_="bot",
                    location="#lounge",
                    bot_model="m",
                    bot_prompt="p",
                )
            os.environ.update(
                SUPABASE_URL="http://127.0.0.1:9", SUPABASE_ANON_KEY="anon", LOG_LEVEL="WARNING",
                DATABASE_URL=cluster.dsn(user="authenticator"), LLM_BASE_URL=llm.url,
                OPENROUTER_API_KEY="sk-bench", BOT_STREAM_WRITE_INTERVAL="0.25",
            )  # fmt: skip
            container.reset()
            from functions.bot_worker.handler import handler as worker

            counting = Counting(container.database())
            said = say(admin, "@guest", "#lounge", "hello")
            payload = WebhookPayload.model_validate(
                {"type": "INSERT", "table": "intentions", "schema": "public", "record":
                 {"id": said, "type": "utterance", "owner_id": "@guest", "location_id": "#lounge"}}
            )  # fmt: skip
            queued = trigger(payload, counting, SqsQueue(counting, "bench-queue")).queued
            webhook_calls, queue_calls = counting.calls, counting.sends

            counting.calls = 0
            container.use_database(counting)
            job_event = sqs_event([{"MessageId": "m1", "ReceiptHandle": "r", "MD5OfBody": "x",
                                    "Body": f'{{"bot_id": "@extra0", "space_id": "#lounge", "trigger_id": "{said}"}}'}],
                                  "arn:aws:sqs:eu-west-1:1:q")  # fmt: skip
            worker(job_event, None)
            job_calls = counting.calls

            latencies = []
            for i in range(SAMPLES):
                gate = threading.Event()
                llm.script = [reply(f"first-token-{i} and the rest", gate=gate)]
                trigger_id = say(admin, "@guest", "#lounge", f"question {i}")
                event = sqs_event([{"MessageId": f"m{i}", "ReceiptHandle": "r", "MD5OfBody": "x",
                                    "Body": f'{{"bot_id": "@sage", "space_id": "#lounge", "trigger_id": "{trigger_id}"}}'}],
                                  "arn:aws:sqs:eu-west-1:1:q")  # fmt: skip
                thread = threading.Thread(target=worker, args=(event, None))
                thread.start()
                seen = None
                deadline = time.perf_counter() + 5
                while seen is None and time.perf_counter() < deadline:
                    row = admin.execute(
                        "select 1 from public.intentions where content->>'in_reply_to' = %s"
                        " and content->>'text' like 'first-token-%%'", (trigger_id,)).fetchone()  # fmt: skip
                    if row:
                        seen = time.perf_counter()
                gate.set()
                thread.join(10)
                assert seen is not None, "the first token never became readable"
                latencies.append((seen - llm.first_token_sent_at[-1]) * 1000)
            median = statistics.median(latencies)
        return [
            Row("bot pipeline", f"webhook with {queued} bots: DB round trips", str(webhook_calls),
                "2 (read, acknowledge)", webhook_calls == 2),
            Row("bot pipeline", f"webhook with {queued} bots: queue calls", str(queue_calls), "ceil(n/10) = 3",
                queue_calls == 3),
            Row("bot pipeline", "job: DB calls (context + writes)", str(job_calls)),
            Row("bot pipeline", "first token -> readable in DB, median", f"{median:.1f} ms", "< 50 ms",
                median < 50),
        ]  # fmt: skip
    finally:
        container.reset()
        os.environ.clear()
        os.environ.update(saved)
        cluster.stop()
        shutil.rmtree(root, ignore_errors=True)
