"""One row per measured figure, printed as one table by `make bench`."""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable
from dataclasses import dataclass


@dataclass(frozen=True)
class Row:
    benchmark: str
    figure: str
    value: str
    goal: str = ""
    met: bool | None = None


def median_ms(run: Callable[[], object], repeat: int) -> float:
    samples = []
    for _ in range(repeat):
        start = time.perf_counter()
        run()
        samples.append((time.perf_counter() - start) * 1000)
    return statistics.median(samples)


def print_table(rows: list[Row]) -> None:
    header = ("benchmark", "figure", "value", "goal", "met")
    cells = [header] + [
        (
            r.benchmark,
            r.figure,
            r.value,
            r.goal,
            "" if r.met is None else ("yes" if r.met else "NO"),
        )
        for r in rows
    ]
    widths = [max(len(row[i]) for row in cells) for i in range(len(header))]
    for n, row in enumerate(cells):
        print(" | ".join(cell.ljust(widths[i]) for i, cell in enumerate(row)))
        if n == 0:
            print("-+-".join("-" * w for w in widths))
