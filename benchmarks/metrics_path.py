"""The metrics path's own cost, in-process, on the packaged artifact under
Python 3.12 (issue 25): in fresh processes, the time to import the metrics
module once what every HTTP function imports anyway is imported (FastAPI,
Mangum, pydantic, httpx, the JSON logger), and
to record what an HTTP function's first request records and write its line
(Requests, Requests2xx, Latency, ColdStart; the EMF line on stdout), for
ours (shared/metrics.py) and for Powertools' Metrics in its place
(benchmarks/variants/powertools_metrics.py, the copy cold_start builds).
The cold-start benchmark measures the same side by side as whole cold
starts; this isolates the few milliseconds that noise hides there.

    METRICS_PATH_RUNS=40 uv run python -m benchmarks.metrics_path
"""

from __future__ import annotations

import json
import os
import statistics
import subprocess
from pathlib import Path

from benchmarks.cold_start import BENCH, build_ours, build_variant, interpreter
from benchmarks.report import Row

RUNS = int(os.environ.get("METRICS_PATH_RUNS", "40"))
MODULE = "thread_ensure"

SCRIPT = """
import json, sys, time
# What every HTTP function imports anyway, before its metrics: what the
# metrics module adds is then what it adds to a cold start.
import fastapi, mangum, pydantic, httpx
from shared import logs
logs.configure("thread-ensure")
start = time.perf_counter()
from shared import metrics
imported = time.perf_counter()
with metrics.collecting("thread-ensure"):
    metrics.count("Requests")
    metrics.count("Requests2xx")
    metrics.milliseconds("Latency", 12.345)
first = time.perf_counter()
with metrics.collecting("thread-ensure"):
    metrics.count("Requests")
    metrics.count("Requests2xx")
    metrics.milliseconds("Latency", 12.345)
second = time.perf_counter()
sys.stderr.write(metrics.__file__ + "\\n")
sys.stderr.write("BENCH " + json.dumps({"import": (imported - start) * 1000,
    "first": (first - imported) * 1000, "second": (second - first) * 1000}) + "\\n")
"""


def _sample(python: str, artifact: Path) -> dict[str, float]:
    env = {"PATH": "/usr/bin:/bin", "PYTHONPATH": str(artifact), "LOG_LEVEL": "WARNING",
           "STAGE": "bench", "AWS_LAMBDA_FUNCTION_NAME": "bench"}  # fmt: skip
    # In the artifact's folder: `-c` puts the working directory first on the
    # path, and the checkout's own `shared` must not stand in for it.
    done = subprocess.run([python, "-c", SCRIPT], env=env, cwd=artifact, capture_output=True,
                          text=True, check=True)  # fmt: skip
    assert f"{artifact}/shared/metrics.py" in done.stderr, done.stderr
    assert '"_aws"' in done.stdout, done.stdout  # the line was written
    (line,) = [x for x in done.stderr.splitlines() if x.startswith("BENCH ")]
    result: dict[str, float] = json.loads(line.removeprefix("BENCH "))
    return result


def run() -> list[Row]:
    python, version = interpreter()
    ours = BENCH / "ours"
    if not ours.exists():
        ours = build_ours()
    variants = {"ours (shared/metrics.py)": ours / MODULE}
    powertools = BENCH / "powertools-metrics"
    if not powertools.exists():
        powertools = build_variant(python, ours, "powertools_metrics")
    variants["Powertools' Metrics instead"] = powertools / MODULE
    samples: dict[str, list[dict[str, float]]] = {label: [] for label in variants}
    for artifact in variants.values():  # warm the page cache
        _sample(python, artifact)
    for _ in range(RUNS):
        for label, artifact in variants.items():
            samples[label].append(_sample(python, artifact))
    rows = [Row("metrics path", "interpreter", version)]
    for label, taken in samples.items():
        median = {
            key: statistics.median(s[key] for s in taken) for key in ("import", "first", "second")
        }
        rows.append(
            Row("metrics path", label,
                f"import {median['import']:.2f} ms + first invocation's record and line "
                f"{median['first']:.2f} ms = {median['import'] + median['first']:.2f} ms"
                f" (a warm invocation's: {median['second']:.2f} ms); medians of {RUNS} processes")
        )  # fmt: skip
    return rows


if __name__ == "__main__":
    from benchmarks.report import print_table

    print_table(run())
