"""One warm container's memory over many requests: chat-message's Lambda
handler in-process (the direct adapter, a private PostgreSQL), as a Lambda
container lives through thousands of invocations. After a warm-up and then
every 4,000 requests: the objects the collector tracks, the bytes Python
allocated since the warm-up and still holds (tracemalloc: strings and bytes
too), and the process's RSS. A leak of even one object a request shows as a
steady climb.

The chat_message limit is raised for the run (the bucket is still taken at
every message) and the log level is WARNING (one JSON line per request to
stdout would only be noise here).

    uv run python -m benchmarks.handler_memory
"""

from __future__ import annotations

import gc
import os
import shutil
import tempfile
import tracemalloc
import uuid
from itertools import pairwise
from pathlib import Path
from typing import Any

import psycopg

from benchmarks.load_stack import proc_status
from benchmarks.load_users import open_threads, seed_users
from benchmarks.report import Row
from infra.local.cluster import PgCluster, free_port
from infra.local.schema import apply_schema
from scripts.dev_tokens import SECRET
from shared import container
from tests.support.events import LambdaContext, http_event

WARM_UP = 2_000
STEP = 4_000
STEPS = 8
SUPABASE_URL = "http://127.0.0.1:9"


def _checkpoint() -> tuple[int, int, float]:
    gc.collect()
    held = tracemalloc.get_traced_memory()[0]
    return len(gc.get_objects()), held, proc_status(os.getpid(), "VmRSS") / 1024


def run() -> list[Row]:
    root = Path(tempfile.mkdtemp(prefix="chat-bench-memory-"))
    cluster = PgCluster(root / "cluster", free_port(), durable=False)
    cluster.start()
    saved = dict(os.environ)
    try:
        apply_schema(cluster.dsn())
        issuer = f"{SUPABASE_URL}/auth/v1"
        with psycopg.connect(cluster.dsn(), autocommit=True) as admin:
            admin.execute("update private.rate_limits set burst = 1000000, rate = 1000000,"
                          " per = '1 second' where action = 'chat_message'")  # fmt: skip
            users = seed_users(admin, "mem", 20, issuer)
        threads = open_threads(cluster.dsn(), users, 1, issuer)
        os.environ.update(
            SUPABASE_URL=SUPABASE_URL, SUPABASE_ANON_KEY="anon", SUPABASE_JWT_SECRET=SECRET,
            DATABASE_URL=cluster.dsn(user="authenticator"), ALLOWED_ORIGINS="https://app.example.test",
            LOG_LEVEL="WARNING", SECRETS_SOURCE="env",
        )  # fmt: skip
        container.reset()
        from functions.chat_message.handler import handler

        context = LambdaContext()

        def send(n: int) -> None:
            user, _, thread = threads[n % len(threads)]
            event = http_event(
                "POST", "/chat/messages",
                body={"thread_id": thread, "body": f"m{n}", "client_id": str(uuid.uuid4())},
                headers={"authorization": f"Bearer {user.token}"},
            )  # fmt: skip
            response: dict[str, Any] = handler(event, context)
            assert response["statusCode"] == 201, response

        for n in range(WARM_UP):
            send(n)
        tracemalloc.start()
        points = [_checkpoint()]
        for step in range(STEPS):
            for n in range(STEP):
                send(WARM_UP + step * STEP + n)
            points.append(_checkpoint())
    finally:
        tracemalloc.stop()
        container.reset()
        os.environ.clear()
        os.environ.update(saved)
        cluster.stop()
        shutil.rmtree(root, ignore_errors=True)
    objects = " / ".join(f"{o:,}" for o, _, _ in points)
    held = " / ".join(f"{h / 1024:,.0f}" for _, h, _ in points)
    rss = " / ".join(f"{r:.1f}" for _, _, r in points)
    grown = points[-1][0] - points[1][0]
    steps = [b[1] - a[1] for a, b in pairwise(points)]
    total = STEP * (STEPS - 1)
    return [
        Row("handler memory", f"chat-message: objects after {WARM_UP:,} then every {STEP:,} requests", objects),
        Row("handler memory", "KiB allocated since the warm-up and still held", held),
        Row("handler memory", "RSS (MB) at the same points", rss),
        Row("handler memory", f"objects gained over the last {total:,} requests", f"{grown:+,}",
            "< 1 per 100 requests", grown < total / 100),
        Row("handler memory", f"bytes held per request, each {STEP:,}",
            " / ".join(f"{g / STEP:.0f}" for g in steps),
            "bounded: the last < 1/5 of the first", steps[-1] < steps[0] / 5),
    ]  # fmt: skip


if __name__ == "__main__":
    from benchmarks.report import print_table

    print_table(run())
