"""Metrics as EMF lines (shared.metrics): what an invocation records is
written when it ends, as lines CloudWatch accepts (tests/support/emf.py),
split where the format's limits say; each invocation (thread, task) writes
its own; init's records join the first invocation; SnapStart's priming
writes nothing; nothing on the path imports an AWS client."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from shared import logs, metrics
from tests.support.emf import problems, totals, valid_emf_lines

pytestmark = pytest.mark.unit

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(autouse=True)
def json_lines(monkeypatch: pytest.MonkeyPatch) -> None:
    logs.configure("metrics-test")
    # What earlier tests recorded outside an invocation is theirs.
    monkeypatch.setattr(metrics, "_outside", metrics.MetricSet())


def test_an_invocation_writes_one_line_with_its_counts_summed_and_durations_kept(
    capsys: pytest.CaptureFixture[str],
) -> None:
    with logs.invocation("thread-ensure", "req-1"), metrics.collecting("thread-ensure"):
        metrics.count("Requests")
        metrics.count("Requests")
        metrics.count("JobsQueued", 3)
        metrics.milliseconds("Latency", 2.5)
        metrics.milliseconds("Latency", 4.25)

    (line,) = valid_emf_lines(capsys.readouterr().out)
    assert line["function"] == "thread-ensure"
    assert line["correlation_id"] == "req-1"
    assert line["stage"] == metrics.STAGE
    (directive,) = line["_aws"]["CloudWatchMetrics"]
    assert directive["Namespace"] == "ChatFunctions"
    assert directive["Dimensions"] == [["function", "stage"]]
    assert {m["Name"]: m["Unit"] for m in directive["Metrics"]} == {
        "Requests": "Count", "JobsQueued": "Count", "Latency": "Milliseconds",
    } | ({"ColdStart": "Count"} if "ColdStart" in line else {})  # fmt: skip
    assert (line["Requests"], line["JobsQueued"], line["Latency"]) == (2, 3, [2.5, 4.25])


def test_more_than_a_line_holds_is_split_within_the_formats_limits(
    capsys: pytest.CaptureFixture[str],
) -> None:
    with metrics.collecting("bot-worker"):
        for index in range(150):
            metrics.count(f"Thing{index}", index)
        for index in range(250):
            metrics.milliseconds("Latency", index)

    lines = valid_emf_lines(capsys.readouterr().out)
    assert len(lines) == 3  # 151+ metrics, and Latency's 250 values in 100s
    for line in lines:
        (directive,) = line["_aws"]["CloudWatchMetrics"]
        assert len(directive["Metrics"]) <= 100
    values = totals(lines)
    assert {name: values[name] for name in ("Thing0", "Thing149")} == {
        "Thing0": [0], "Thing149": [149]
    }  # fmt: skip
    assert sorted(values["Latency"]) == list(range(250))
    assert all(len(line.get("Latency", [])) <= 100 for line in lines)


def test_concurrent_invocations_each_write_their_own(capsys: pytest.CaptureFixture[str]) -> None:
    both = threading.Barrier(2)

    def serve(function: str, name: str) -> None:
        with logs.invocation(function, name), metrics.collecting(function):
            both.wait()  # both invocations open at once
            metrics.count(name)
            both.wait()

    threads = [threading.Thread(target=serve, args=(f, n))
               for f, n in (("token", "TokenRefreshes"), ("chat-message", "Requests"))]  # fmt: skip
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    lines = valid_emf_lines(capsys.readouterr().out)
    assert {(line["function"], "TokenRefreshes" in line, "Requests" in line) for line in lines} == {
        ("token", True, False), ("chat-message", False, True)
    }  # fmt: skip


def test_what_init_records_joins_the_first_invocation(capsys: pytest.CaptureFixture[str]) -> None:
    metrics.count("JwksFetches")  # outside any invocation, as during init
    with metrics.collecting("token"):
        metrics.count("Requests")
    with metrics.collecting("token"):
        metrics.count("Requests")

    first, second = valid_emf_lines(capsys.readouterr().out)
    assert (first["JwksFetches"], first["Requests"]) == (1, 1)
    assert "JwksFetches" not in second


def test_snapstart_priming_writes_nothing_and_leaves_nothing_behind(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(metrics, "_first_invocation", True)
    metrics.count("JwksFetches")  # init's, before the snapshot
    with metrics.suppressed(), metrics.collecting("thread-ensure"):
        metrics.count("Requests4xx")  # the priming request
    assert capsys.readouterr().out == ""
    with metrics.collecting("thread-ensure"):  # the first request after a restore
        metrics.count("Requests2xx")

    (line,) = valid_emf_lines(capsys.readouterr().out)
    assert {k: line.get(k) for k in ("Requests2xx", "Requests4xx", "JwksFetches", "ColdStart")} == {
        "Requests2xx": 1, "Requests4xx": None, "JwksFetches": None, "ColdStart": 1
    }  # fmt: skip


def test_the_first_invocation_of_a_process_counts_a_cold_start(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(metrics, "_first_invocation", True)
    for _ in range(2):
        with metrics.collecting("token"):
            metrics.count("Requests")
    first, second = valid_emf_lines(capsys.readouterr().out)
    assert (first.get("ColdStart"), second.get("ColdStart")) == (1, None)


def test_a_dependency_that_answered_503_is_counted_by_name(
    capsys: pytest.CaptureFixture[str],
) -> None:
    with metrics.collecting("token"):
        metrics.dependency_failed("auth_unavailable")
        metrics.dependency_failed("database_unavailable")
        metrics.dependency_failed("database_unavailable")
        metrics.dependency_failed("internal_error")  # not a dependency's
    (line,) = valid_emf_lines(capsys.readouterr().out)
    names = {m["Name"] for m in line["_aws"]["CloudWatchMetrics"][0]["Metrics"]}
    assert names - {"ColdStart"} == {"AuthUnavailable", "DatabaseUnavailable"}
    assert line["DatabaseUnavailable"] == 2


def test_metrics_are_written_at_any_log_level_and_load_no_aws_client() -> None:
    # Given a process at LOG_LEVEL=WARNING that writes one invocation's metrics
    script = (
        "import sys, json\n"
        "from shared import logs, metrics\n"
        "logs.configure('token')\n"
        "with metrics.collecting('token'):\n"
        "    metrics.count('Requests')\n"
        "print(json.dumps(sorted(m for m in sys.modules if m.split('.')[0] in\n"
        "    {'boto3', 'botocore', 'aws_lambda_powertools', 'httpx', 'urllib3', 'socket'})))\n"
    )
    env = {**os.environ, "LOG_LEVEL": "WARNING", "STAGE": "prod", "PYTHONPATH": str(ROOT)}
    done = subprocess.run([sys.executable, "-c", script], env=env, cwd=ROOT,
                          capture_output=True, text=True, check=True)  # fmt: skip
    *output, loaded = done.stdout.strip().splitlines()
    # Then the line is written, valid, for the stage
    (line,) = valid_emf_lines("\n".join(output))
    assert (line["stage"], line["Requests"]) == ("prod", 1)
    # And nothing that could call AWS (or anything else) was imported for it
    assert json.loads(loaded) == []


@pytest.mark.parametrize("name", ["METRICS_NAMESPACE", "STAGE"])
def test_a_malformed_namespace_or_stage_stops_the_cold_start_naming_it(name: str) -> None:
    env = {**os.environ, name: "prod stage!", "PYTHONPATH": str(ROOT)}
    done = subprocess.run([sys.executable, "-c", "import shared.metrics"], env=env, cwd=ROOT,
                          capture_output=True, text=True, check=False)  # fmt: skip
    assert done.returncode == 1
    assert done.stderr.strip().splitlines()[-1].startswith(f"configuration error: {name}=")


@pytest.mark.parametrize(
    ("breakage", "expected"),
    [
        (lambda d: d.pop("_aws"), "no _aws object"),
        (lambda d: d["_aws"].update(Timestamp="now"), "Timestamp is not an integer"),
        (lambda d: d["_aws"].update(Timestamp=1), "outside what CloudWatch accepts"),
        (lambda d: d["_aws"]["CloudWatchMetrics"][0]["Metrics"][0].update(Unit="ms"), "unit"),
        (lambda d: d.pop("stage"), "dimension 'stage'"),
        (lambda d: d.update(Requests="1"), "no numeric value"),
        (lambda d: d.update(Requests=[1] * 101), "not 1-100 numbers"),
        (
            lambda d: d["_aws"]["CloudWatchMetrics"][0].update(
                Dimensions=[[f"d{i}" for i in range(31)]]
            ),
            "at most 30",
        ),
        (
            lambda d: d["_aws"]["CloudWatchMetrics"][0].update(
                Metrics=[{"Name": f"M{i}", "Unit": "Count"} for i in range(101)]
            ),
            "at most 100",
        ),
        (lambda d: d["_aws"]["CloudWatchMetrics"][0].update(Units=[]), "does not define"),
    ],
)
def test_the_format_check_refuses_what_cloudwatch_would(breakage: object, expected: str) -> None:
    document = metrics.MetricSet()
    document.add("Requests", 1, "Count")
    (line,) = document.documents(int(time.time() * 1000))
    line["function"] = "token"
    assert problems(line) == []
    broken = json.loads(json.dumps(line))
    breakage(broken)  # type: ignore[operator]
    assert any(expected in problem for problem in problems(broken)), problems(broken)
