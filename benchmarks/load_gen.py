"""An open-loop load generator on asyncio: requests leave at their
scheduled times whatever the earlier ones are doing (so a slow server shows
as latency, not as a politely slower client), latency is counted from the
scheduled time, and in-flight requests are capped, so a run is bounded in
time and count. Loopback only (benchmarks/load_client.py refuses any other
origin)."""

from __future__ import annotations

import asyncio
import math
import statistics
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from benchmarks.load_client import Client, ProtocolError, Response


@dataclass(frozen=True)
class Request:
    kind: str  # e.g. "chat-message"
    method: str
    path: str
    headers: dict[str, str]
    body: dict[str, Any] | None = None
    tag: str = ""  # e.g. the client id of a message, for checks afterwards


@dataclass(frozen=True)
class Sample:
    request: Request
    scheduled: float
    latency_ms: float  # from the scheduled time to the whole response read
    status: int  # 0: no response (connection error or timeout)
    function_ms: float | None  # the handler's own time (make dev's Server-Timing)
    retry_after: str | None = None


@dataclass
class Outcome:
    samples: list[Sample] = field(default_factory=list)
    not_sent: int = 0  # dropped by the in-flight cap: the client's limit, said as such
    seconds: float = 0.0


def _function_ms(response: Response) -> float | None:
    timing = response.headers.get("server-timing", "")
    for part in timing.split(","):
        name, _, rest = part.strip().partition(";")
        if name == "lambda" and rest.startswith("dur="):
            return float(rest[4:])
    return None


async def _send(client: Client, request: Request, scheduled: float) -> Sample:
    try:
        response = await client.request(request.method, request.path, request.headers, request.body)
        status, function_ms = response.status, _function_ms(response)
        retry_after = response.headers.get("retry-after")
    except (
        OSError,
        TimeoutError,
        EOFError,
        ValueError,
        ProtocolError,
        asyncio.IncompleteReadError,
    ):
        status, function_ms, retry_after = 0, None, None
    latency = (time.perf_counter() - scheduled) * 1000
    return Sample(request, scheduled, latency, status, function_ms, retry_after)


async def open_loop(
    client: Client,
    rate: float,
    seconds: float,
    next_request: Callable[[int], Request],
    max_in_flight: int = 400,
) -> Outcome:
    """`rate` requests a second, evenly spaced, for `seconds`."""
    count = max(1, int(rate * seconds))
    outcome = Outcome()
    tasks: list[asyncio.Task[Sample]] = []
    in_flight = 0
    start = time.perf_counter()

    async def tracked(request: Request, scheduled: float) -> Sample:
        nonlocal in_flight
        try:
            return await _send(client, request, scheduled)
        finally:
            in_flight -= 1

    for n in range(count):
        scheduled = start + n / rate
        delay = scheduled - time.perf_counter()
        if delay > 0:
            await asyncio.sleep(delay)
        request = next_request(n)
        if in_flight >= max_in_flight:
            outcome.not_sent += 1
            continue
        in_flight += 1
        tasks.append(asyncio.create_task(tracked(request, scheduled)))
    outcome.samples = list(await asyncio.gather(*tasks))
    outcome.seconds = time.perf_counter() - start
    return outcome


def percentile(values: list[float], p: float) -> float:
    """Nearest-rank percentile (p in 0-100); NaN for no values."""
    if not values:
        return math.nan
    ordered = sorted(values)
    return ordered[max(0, math.ceil(p / 100 * len(ordered)) - 1)]


@dataclass(frozen=True)
class Summary:
    sent: int
    ok: int  # 2xx
    limited: int  # 429
    errors: int  # anything else, no response included
    not_sent: int
    throughput: float  # 2xx a second over the step
    p50: float
    p95: float
    p99: float
    function_p50: float  # the handlers' own time
    function_mean: float

    @property
    def error_rate(self) -> float:
        total = self.sent + self.not_sent
        return (self.errors + self.not_sent) / total if total else 0.0


def summarize(outcome: Outcome, samples: list[Sample] | None = None) -> Summary:
    chosen = outcome.samples if samples is None else samples
    latencies = [s.latency_ms for s in chosen]
    functions = [s.function_ms for s in chosen if s.function_ms is not None]
    ok = sum(1 for s in chosen if 200 <= s.status < 300)
    limited = sum(1 for s in chosen if s.status == 429)
    return Summary(
        sent=len(chosen),
        ok=ok,
        limited=limited,
        errors=len(chosen) - ok - limited,
        not_sent=outcome.not_sent if samples is None else 0,
        throughput=ok / outcome.seconds if outcome.seconds else 0.0,
        p50=percentile(latencies, 50),
        p95=percentile(latencies, 95),
        p99=percentile(latencies, 99),
        function_p50=percentile(functions, 50),
        function_mean=statistics.fmean(functions) if functions else math.nan,
    )
