"""Faults: how long the bot pipeline takes to answer once a broken part is
back, and what it cost in attempts (tests/support/faults.py: the whole
pipeline on loopback, a private PostgreSQL, moto's SQS, a loopback model).

- bot-trigger refusing connections, answering 503, or slower than pg_net's
  timeout while 3 utterances arrive (2 bots each), then back: webhook
  redelivery scaled down (checked every 0.2 s, back-off 1 s up to 2 s;
  on hosted pg_cron runs it every minute and the back-off is 30 s to 5 min).
- the provider answering 500 for 20 s, with the worker's retry delays as
  deployed (5, 20, 60, 180 s).
- a stream that never ends (comments only, data lines never closed), with
  a 5 s deadline: how soon the error notice, and the traced memory peak.
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
import time
import tracemalloc
from pathlib import Path

import psycopg

from benchmarks.report import Row
from infra.dev.platform import sqs_event
from infra.local.cluster import PgCluster, free_port
from infra.local.schema import apply_schema
from tests.support.events import LambdaContext
from tests.support.fake_llm import Step
from tests.support.faults import Pipeline, Scale, pipeline, wait_for
from tests.support.spaces import make_world, say

UTTERANCES = 3


def _outage(stack: Pipeline, fault: str) -> list[Row]:
    stack.gateway.mode = fault
    said = [say(stack.admin, "@guest", "#lounge", f"{fault} {i}") for i in range(UTTERANCES)]
    wait_for(lambda: stack.redelivered(said, fault), 30, "redeliveries")
    sent = stack.admin.execute(
        "select max(attempts) from private.bot_deliveries where intention_id = any(%s)", (said,)
    ).fetchone()
    stack.gateway.mode = "up"
    recovered = time.monotonic()
    answered = wait_for(lambda: stack.settled(said), 60, "answers")
    once = all(
        rows == [("@echo", "utterance", "complete"), ("@sage", "utterance", "complete")]
        for rows in stack.replies(said).values()
    )
    took = answered - recovered
    return [
        Row("faults", f"bot-trigger {fault}: recovery -> last answer", f"{took:.2f} s",
            "every utterance, once, < 30 s", once and took < 30),
        Row("faults", f"bot-trigger {fault}: webhooks sent per utterance at recovery (most)",
            str(sent[0]) if sent and sent[0] is not None else "acknowledged late"),
    ]  # fmt: skip


def _provider_blip(stack: Pipeline, seconds: float) -> list[Row]:
    stack.llm.outage_answers = 0
    stack.llm.outage_until = time.monotonic() + seconds
    said = [say(stack.admin, "@guest", "#lounge", f"blip {i}") for i in range(UTTERANCES)]
    answered = wait_for(lambda: stack.settled(said), seconds + 240, "answers")
    notices = sum(1 for rows in stack.replies(said).values() for r in rows if r[1] == "error")
    took = answered - stack.llm.outage_until
    jobs = 2 * UTTERANCES
    return [
        Row("faults", f"provider 500 for {seconds:.0f} s: recovery -> last answer", f"{took:.2f} s",
            "all answered, no notice", notices == 0),
        Row("faults", f"provider 500 for {seconds:.0f} s: attempts per job",
            f"{(stack.llm.outage_answers + jobs) / jobs:.1f} (of 5)"),
    ]  # fmt: skip


def _endless(stack: Pipeline, name: str, step: Step, deadline: float) -> list[Row]:
    from functions.bot_worker.handler import handler

    stack.llm.script = [step]
    said = say(stack.admin, "@guest", "#lounge", name)
    body = json.dumps({"bot_id": "@echo", "space_id": "#lounge", "trigger_id": said})
    message = {"MessageId": "m", "ReceiptHandle": "r", "MD5OfBody": "", "Body": body,
               "Attributes": {"ApproximateReceiveCount": 1}}  # fmt: skip
    tracemalloc.start()
    started = time.monotonic()
    handler(sqs_event([message], stack.sqs.arn), LambdaContext())
    took = time.monotonic() - started
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    noticed = stack.admin.execute(
        "select count(*) from public.intentions where type = 'error'"
        " and content->>'in_reply_to' = %s",
        (said,),
    ).fetchone() == (1,)
    return [
        Row("faults", f"stream of {name}: error notice after", f"{took:.2f} s",
            f"< deadline ({deadline:.0f} s) + 2 s", noticed and took < deadline + 2),
        Row("faults", f"stream of {name}: traced memory peak", f"{peak / 1e6:.1f} MB", "< 24 MB",
            peak < 24e6),
    ]  # fmt: skip


def run() -> list[Row]:
    root = Path(tempfile.mkdtemp(prefix="chat-bench-faults-"))
    cluster = PgCluster(root / "cluster", free_port(), durable=False)
    cluster.start()
    rows: list[Row] = []
    try:
        dsn = cluster.dsn()
        apply_schema(dsn)
        environment = {
            "SUPABASE_URL": "http://127.0.0.1:9", "SUPABASE_ANON_KEY": "anon",
            "SUPABASE_SERVICE_ROLE_KEY": "service",
            "DATABASE_URL": cluster.dsn(user="authenticator"),
        }  # fmt: skip
        with psycopg.connect(dsn, autocommit=True) as admin:
            make_world(admin)
            with pipeline(admin, dsn, environment, Scale()) as stack:
                for fault in ("refuse", "503", "slow"):
                    rows += _outage(stack, fault)
            deployed = Scale(retry_delays="5,20,60,180")
            with pipeline(admin, dsn, environment, deployed) as stack:
                rows += _provider_blip(stack, float(os.environ.get("FAULTS_BLIP_SECONDS", "20")))
            with pipeline(admin, dsn, environment, Scale(llm_timeout=5, max_receives=1)) as stack:
                stack.gateway.mode = "503"
                rows += _endless(
                    stack,
                    "comments only",
                    Step(endless=b": OPENROUTER PROCESSING\n\n", pause=0.01),
                    5,
                )
                rows += _endless(
                    stack, "data lines never closed", Step(endless=b"data: x\n", pause=0.001), 5
                )
    finally:
        cluster.stop()
        shutil.rmtree(root, ignore_errors=True)
    return rows


if __name__ == "__main__":
    from benchmarks.report import print_table

    print_table(run())
