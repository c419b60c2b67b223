"""What a million chat messages and a million bot replies cost on AWS (with
and without SnapStart) and as Supabase Edge Functions, the model's own price
left out: from a load run's report (the measured durations, CPU and log
bytes) and a prices file (each price with its source and date).

    uv run python -m benchmarks.cost                       # .local/bench/load.json
    uv run python -m benchmarks.cost --load report.json --prices benchmarks/prices.json

Prints a Markdown table; re-run it when the figures or the prices change.
"""

from __future__ import annotations

import argparse
import json
import math
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
MONTH_SECONDS = 30 * 24 * 3600
GB = 1024**3


@dataclass(frozen=True)
class Invocation:
    """One function's invocation as Lambda would bill it."""

    name: str
    local_ms: float  # measured: the handler's own time under make dev, loopback database
    cpu_ms: float  # the CPU part of it (a full core here)
    extra_wait_ms: float  # what loopback hides: network round trips, the model

    def lambda_ms(self, memory_mb: int, full_vcpu_mb: int) -> float:
        cpu = min(self.cpu_ms, self.local_ms)
        stretch = max(full_vcpu_mb / memory_mb, 1.0)
        return (self.local_ms - cpu) + cpu * stretch + self.extra_wait_ms

    def billed_ms(self, memory_mb: int, full_vcpu_mb: int) -> int:
        return math.ceil(self.lambda_ms(memory_mb, full_vcpu_mb))  # billed by the millisecond


@dataclass(frozen=True)
class Work:
    """A unit of work: what it invokes and sends, per occurrence."""

    name: str
    invocations: list[Invocation]
    http_requests: int  # through API Gateway's HTTP API
    sqs_requests: int
    log_bytes: float  # our JSON lines, Lambda's own lines added by the model
    edge_invocations: int  # the same work as Edge Functions


def _a(assumptions: dict[str, Any], key: str) -> Any:
    return assumptions[key]["value"]


def costs(work: Work, prices: dict[str, Any], count: float = 1e6) -> dict[str, dict[str, float]]:
    """USD for `count` occurrences, by component, for three deployments."""
    p = {k: v["usd"] for k, v in prices["prices"].items()}
    a = prices["assumptions"]
    memory, full = _a(a, "memory_mb"), _a(a, "full_vcpu_mb")
    gb = memory / 1024
    invocations = len(work.invocations)
    gb_seconds = sum(gb * i.billed_ms(memory, full) / 1000 for i in work.invocations)
    cold = _a(a, "cold_start_share") * invocations * count
    logs = (work.log_bytes + invocations * _a(a, "lambda_platform_log_bytes")) * count / GB
    common = {
        "HTTP API requests": work.http_requests * count / 1e6 * p["http_api_requests_per_million"],
        "Lambda requests": invocations * count / 1e6 * p["lambda_requests_per_million"],
        "Lambda duration (GB-s)": gb_seconds * count * p["lambda_gb_second"],
        "SQS requests": work.sqs_requests * count / 1e6 * p["sqs_requests_per_million"],
        "CloudWatch Logs ingestion": logs * p["logs_ingestion_per_gb"],
    }
    plain = {**common, "cold starts (INIT billed)":
             cold * gb * _a(a, "cold_init_ms") / 1000 * p["lambda_gb_second"]}  # fmt: skip
    snap = {**common, "cold starts (SnapStart restores)":
            cold * gb * (p["snapstart_restore_per_gb"]
                         + _a(a, "restore_billed_ms") / 1000 * p["lambda_gb_second"])}  # fmt: skip
    edge = {"Edge Function invocations":
            work.edge_invocations * count / 1e6 * p["edge_function_invocations_per_million"]}  # fmt: skip
    return {"aws": plain, "aws_snapstart": snap, "edge": edge}


def snapstart_cache_per_month(prices: dict[str, Any]) -> float:
    """The fixed part of SnapStart: each active version's snapshot, all month."""
    a = prices["assumptions"]
    gb = _a(a, "memory_mb") / 1024
    rate = prices["prices"]["snapstart_cache_gb_second"]["usd"]
    return float(_a(a, "snapstart_versions_cached") * gb * MONTH_SECONDS * rate)


def workloads(load: dict[str, Any], prices: dict[str, Any]) -> list[Work]:
    """A chat message and a bot reply (one bot in the space), from the report."""
    d, b = load["durations"], load["burst"]
    a = prices["assumptions"]
    db_ms, calls = _a(a, "database_round_trip_ms"), _a(a, "database_calls")
    http_cpu = d["http_app_cpu_ms_per_request"]
    message = Invocation("chat-message", d["chat-message_ms"], http_cpu,
                         calls["chat-message"] * db_ms)  # fmt: skip
    # The burst's CPU per utterance covers bot-trigger and the worker (and
    # make dev's own loops): shared in proportion to their times.
    pipeline_cpu = b["app_cpu_seconds"] * 1000 / b["utterances"]
    trigger_ms, worker_ms = d["bot-trigger_ms"], d["worker_ms_estimate"]
    share = trigger_ms / (trigger_ms + worker_ms)
    trigger = Invocation("bot-trigger", trigger_ms, pipeline_cpu * share,
                         calls["bot-trigger"] * db_ms + _a(a, "sqs_round_trip_ms"))  # fmt: skip
    worker = Invocation("bot worker", worker_ms, pipeline_cpu * (1 - share),
                        calls["worker"] * db_ms + _a(a, "model_seconds_per_reply") * 1000)  # fmt: skip
    http_logs = d["log_bytes_per_http_request"] or 0.0
    bot_logs = b.get("log_bytes_per_utterance") or 0.0
    return [
        Work("1 million chat messages", [message], 1, 0, http_logs, 1),
        Work("1 million bot replies", [trigger, worker], 1, _a(a, "sqs_requests_per_reply"),
             bot_logs, 2),
    ]  # fmt: skip


def _money(value: float) -> str:
    return f"${value:,.2f}" if value >= 0.01 or value == 0 else f"${value:.4f}"


def table(load: dict[str, Any], prices: dict[str, Any]) -> str:
    a = prices["assumptions"]
    memory, full = _a(a, "memory_mb"), _a(a, "full_vcpu_mb")
    lines = [f"Prices: {prices['region']}, read {prices['read_on']}; load report of "
             f"{load['machine']['date']}.", ""]  # fmt: skip
    for work in workloads(load, prices):
        lines.append(f"**{work.name}** (" + "; ".join(
            f"{i.name}: {i.local_ms:.1f} ms measured, {i.billed_ms(memory, full)} ms billed at {memory} MB"
            for i in work.invocations) + ")")  # fmt: skip
        lines.append("")
        lines.append("| component | AWS | AWS with SnapStart | Supabase Edge Functions |")
        lines.append("| --- | --- | --- | --- |")
        result = costs(work, prices)
        keys = list(dict.fromkeys([*result["aws"], *result["aws_snapstart"], *result["edge"]]))
        for key in keys:
            cells = [result[side].get(key) for side in ("aws", "aws_snapstart", "edge")]
            if all(not c for c in cells):
                continue  # e.g. no queue requests for a chat message
            lines.append(
                f"| {key} | " + " | ".join("" if c is None else _money(c) for c in cells) + " |"
            )
        totals = [sum(result[side].values()) for side in ("aws", "aws_snapstart", "edge")]
        lines.append("| **total** | " + " | ".join(f"**{_money(t)}**" for t in totals) + " |")
        lines.append("")
    model = _a(a, "model_seconds_per_reply")
    per_second = memory / 1024 * 1e6 * prices["prices"]["lambda_gb_second"]["usd"]
    lines.append(f"The worker waits {model:g} s per reply while the model streams (an assumption):"
                 f" each second of it costs {_money(per_second)} per million replies at {memory} MB.")  # fmt: skip
    lines.append(f"SnapStart's cache is a fixed {_money(snapstart_cache_per_month(prices))} a month"
                 f" ({_a(a, 'snapstart_versions_cached')} active versions of {memory} MB), whatever the traffic.")  # fmt: skip
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--load", type=Path, default=ROOT / ".local" / "bench" / "load.json")
    parser.add_argument("--prices", type=Path, default=ROOT / "benchmarks" / "prices.json")
    args = parser.parse_args(argv)
    if not args.load.exists():
        print(f"cost: no load report at {args.load}: run `make load` first", file=sys.stderr)
        return 1
    print(table(json.loads(args.load.read_text()), json.loads(args.prices.read_text())))
    return 0


if __name__ == "__main__":
    sys.exit(main())
