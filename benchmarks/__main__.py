"""`make bench`: runs every benchmark and prints one table."""

from __future__ import annotations

import sys

from benchmarks import (
    bot_pipeline,
    chat_db,
    chat_unread,
    cold_start,
    faults,
    handler_memory,
    hot_rows,
    warm_overhead,
)
from benchmarks.report import Row, print_table

BENCHMARKS = [
    chat_db.run,
    chat_unread.run,
    cold_start.run,
    warm_overhead.run,
    bot_pipeline.run,
    faults.run,
    hot_rows.run,
    handler_memory.run,
]


def main() -> int:
    rows: list[Row] = []
    for bench in BENCHMARKS:
        rows.extend(bench())
    print_table(rows)
    return 0 if all(r.met is not False for r in rows) else 1


if __name__ == "__main__":
    sys.exit(main())
