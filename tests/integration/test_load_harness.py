"""`make load` end to end on a tiny plan: it starts its own make dev, its
report parses, what it says holds (the flooder limited, the others not, every
burst utterance answered once), and the cost table is made from it."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]

pytestmark = pytest.mark.integration


def test_a_quick_load_run_reports_what_the_cost_table_needs(tmp_path: Path) -> None:
    report = tmp_path / "load.json"
    done = subprocess.run(
        [sys.executable, "-m", "benchmarks.load", "--quick", "--report", str(report)],
        cwd=ROOT, capture_output=True, text=True, timeout=600, check=False,
    )  # fmt: skip
    assert done.returncode == 0, done.stdout + done.stderr
    result = json.loads(report.read_text())

    assert result["stack_started_here"] is True
    for step in result["steps"]:
        assert step["ok"] > 0, step
        assert step["errors"] == 0, step
        assert step["p50"] <= step["p95"] <= step["p99"]
        assert step["function_p50"] is not None  # make dev's Server-Timing was read
    flood = result["flood"]
    assert flood["flooder"]["limited"] > 0
    assert flood["flooder"]["retry_after_seen"]
    assert flood["others_during_flood"]["limited"] == 0
    assert flood["others_during_flood"]["errors"] == 0
    burst = result["burst"]
    assert burst["replies_per_utterance"] == {"1": burst["utterances"]}
    assert burst["error_notices"] == 0
    assert burst["webhooks_202"] >= burst["utterances"]
    assert all(v is not None for v in result["durations"].values()), result["durations"]

    table = subprocess.run(
        [sys.executable, "-m", "benchmarks.cost", "--load", str(report)],
        cwd=ROOT, capture_output=True, text=True, timeout=60, check=False,
    )  # fmt: skip
    assert table.returncode == 0, table.stderr
    assert "**1 million chat messages**" in table.stdout
    assert "| **total** |" in table.stdout
