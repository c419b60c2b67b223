"""Command-line parsing for the project's scripts: a bad argument is one
line on stderr, naming the problem and the usage (argparse's own error is
two, usage first)."""

from __future__ import annotations

import argparse
from typing import NoReturn


class Parser(argparse.ArgumentParser):
    def error(self, message: str) -> NoReturn:
        usage = " ".join(self.format_usage().split()).removeprefix("usage: ")
        self.exit(2, f"{self.prog}: {message} (usage: {usage})\n")


def fail(prog: str, message: str) -> NoReturn:
    """One line naming what went wrong and what to do, exit status 1."""
    raise SystemExit(f"{prog}: {message}")
