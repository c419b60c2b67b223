"""benchmarks/cost.py against a case computed by hand."""

from __future__ import annotations

import copy
from typing import Any

import pytest

from benchmarks.cost import Invocation, costs, snapstart_cache_per_month, table, workloads

pytestmark = pytest.mark.unit

PRICES: dict[str, Any] = {
    "region": "test", "read_on": "2026-12-03",
    "prices": {
        "lambda_requests_per_million": {"usd": 0.20}, "lambda_gb_second": {"usd": 0.0000166667},
        "snapstart_cache_gb_second": {"usd": 0.0000015046},
        "snapstart_restore_per_gb": {"usd": 0.0001397998},
        "http_api_requests_per_million": {"usd": 1.00}, "sqs_requests_per_million": {"usd": 0.40},
        "logs_ingestion_per_gb": {"usd": 0.50}, "edge_function_invocations_per_million": {"usd": 2.00},
    },
    "assumptions": {k: {"value": v} for k, v in {
        "memory_mb": 1024, "full_vcpu_mb": 1024, "database_round_trip_ms": 0,
        "database_calls": {"chat-message": 1, "thread-ensure": 1, "bot-trigger": 2, "worker": 5},
        "sqs_round_trip_ms": 0, "model_seconds_per_reply": 0.0, "cold_start_share": 0.0,
        "cold_init_ms": 0, "restore_billed_ms": 0, "snapstart_versions_cached": 1,
        "lambda_platform_log_bytes": 0, "sqs_requests_per_reply": 3,
    }.items()},
}  # fmt: skip
LOAD: dict[str, Any] = {
    "machine": {"date": "2026-12-03 00:00 UTC"},
    "durations": {"chat-message_ms": 9.2, "thread-ensure_ms": 5.0, "http_app_cpu_ms_per_request": 4.0,
                  "log_bytes_per_http_request": 1073.741824, "bot-trigger_ms": 20.0,
                  "worker_ms_estimate": 180.0},
    "burst": {"app_cpu_seconds": 10.0, "utterances": 1000, "log_bytes_per_utterance": 0.0},
}  # fmt: skip


def test_a_million_messages_at_one_gb_and_a_full_core_is_what_the_prices_say() -> None:
    message = workloads(LOAD, PRICES)[0]
    result = costs(message, PRICES)
    # 9.2 ms billed as 10 ms: 1 GB x 0.010 s x 1e6 x $0.0000166667 = $0.166667;
    # 1 GiB of log lines (1,073.74 bytes each) at $0.50; $1 of HTTP API, $0.20 of requests.
    assert result["aws"]["Lambda duration (GB-s)"] == pytest.approx(0.166667, abs=1e-6)
    assert result["aws"]["CloudWatch Logs ingestion"] == pytest.approx(0.50)
    assert sum(result["aws"].values()) == pytest.approx(1.866667, abs=1e-6)
    assert result["edge"] == {"Edge Function invocations": 2.00}


def test_cpu_is_stretched_below_a_full_vcpu_and_waits_are_not() -> None:
    # 10 ms measured, 4 of them CPU; at half a vCPU the CPU takes 8: 6 + 8 = 14 ms.
    assert Invocation("f", 10.0, 4.0, 0.0).billed_ms(512, 1024) == 14
    # Above a full vCPU nothing gets faster in this model.
    assert Invocation("f", 10.0, 4.0, 2.5).billed_ms(4096, 1024) == 13


def test_cold_starts_cost_init_without_snapstart_and_a_restore_with_it() -> None:
    prices = copy.deepcopy(PRICES)
    prices["assumptions"]["cold_start_share"]["value"] = 0.01
    prices["assumptions"]["cold_init_ms"]["value"] = 500
    result = costs(workloads(LOAD, prices)[0], prices)
    # 10,000 cold starts of 1 GB: 0.5 s each at $0.0000166667, or a restore at $0.0001397998.
    assert result["aws"]["cold starts (INIT billed)"] == pytest.approx(0.0833335, abs=1e-7)
    assert result["aws_snapstart"]["cold starts (SnapStart restores)"] == pytest.approx(1.397998)


def test_a_bot_reply_is_two_invocations_three_queue_requests_and_the_model_wait() -> None:
    prices = copy.deepcopy(PRICES)
    prices["assumptions"]["model_seconds_per_reply"]["value"] = 2.0
    reply = workloads(LOAD, prices)[1]
    result = costs(reply, prices)
    # 20 ms + (180 ms + 2,000 ms) at 1 GB: 2.2 GB-s a reply.
    assert result["aws"]["Lambda duration (GB-s)"] == pytest.approx(2.2 * 1e6 * 0.0000166667)
    assert result["aws"]["SQS requests"] == pytest.approx(1.20)
    assert result["aws"]["Lambda requests"] == pytest.approx(0.40)
    assert result["edge"]["Edge Function invocations"] == pytest.approx(4.00)


def test_the_snapstart_cache_is_a_monthly_charge_per_active_version() -> None:
    prices = copy.deepcopy(PRICES)
    prices["assumptions"]["memory_mb"]["value"] = 512
    prices["assumptions"]["snapstart_versions_cached"]["value"] = 5
    # 5 x 0.5 GB x 2,592,000 s x $0.0000015046
    assert snapstart_cache_per_month(prices) == pytest.approx(9.749808)


def test_the_table_names_both_workloads_and_all_three_deployments() -> None:
    text = table(LOAD, PRICES)
    assert "**1 million chat messages**" in text
    assert "**1 million bot replies**" in text
    assert "| **total** | **$1.87** | **$1.87** | **$2.00** |" in text
