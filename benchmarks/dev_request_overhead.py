"""Two running `make dev`s side by side (e.g. main's and a branch's, each
from its own checkout): the same request alternately to each, on kept
connections, for the client's latency, the handler's own time
(Server-Timing) and make dev's CPU per request, its child processes
included. Not part of `make bench`: it needs the two stacks running.

    uv run python -m benchmarks.dev_request_overhead \\
        <checkout A>/.local/dev-stacks/<port A>.json <checkout B>/.local/dev-stacks/<port B>.json
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
from pathlib import Path

import httpx

from benchmarks.load_stack import usage
from infra.dev.stack import Stack

PATH = "/auth/token"  # no cookie: a 401 from the handler, no database round trip


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("stacks", nargs=2, type=Path, help="each make dev's published stack file")
    parser.add_argument("--rounds", type=int, default=1000)
    args = parser.parse_args()
    stacks = [Stack(**json.loads(p.read_text())) for p in args.stacks]
    names = [str(p) for p in args.stacks]
    clients = [httpx.Client(base_url=s.api_url, timeout=30) for s in stacks]
    for client in clients:
        for _ in range(20):
            client.get(PATH)  # warm: imports, connections
    latency: list[list[float]] = [[], []]
    handler: list[list[float]] = [[], []]
    before = [usage(s) for s in stacks]
    for i in range(args.rounds):
        for side in (0, 1) if i % 2 == 0 else (1, 0):
            started = time.perf_counter()
            response = clients[side].get(PATH)
            latency[side].append((time.perf_counter() - started) * 1000)
            assert response.status_code == 401, response.text
            took = response.headers.get("server-timing", "").partition(";dur=")[2]
            handler[side].append(float(took) if took else float("nan"))
    after = [usage(s) for s in stacks]
    for side in (0, 1):
        cpu = (after[side].app_cpu - before[side].app_cpu) / args.rounds * 1000
        p95 = statistics.quantiles(latency[side], n=20)[18]
        print(f"{names[side]}: client p50 {statistics.median(latency[side]):.2f} ms,"
              f" p95 {p95:.2f} ms; handler p50 {statistics.median(handler[side]):.2f} ms;"
              f" make dev CPU {cpu:.2f} ms a request")  # fmt: skip
    ratio = statistics.median(latency[1]) / statistics.median(latency[0])
    print(f"client p50, second / first: {ratio:.2f}x")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
