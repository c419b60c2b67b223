"""The README shows make dev's printed commands as make dev prints them for
the default ports, so what a newcomer copies from either runs the same."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from infra.dev.server import try_it

pytestmark = pytest.mark.unit

ROOT = Path(__file__).resolve().parents[2]


def test_the_readme_shows_the_commands_make_dev_prints(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("WEBHOOK_SECRET", "local-dev-webhook-secret-0123456789")
    readme = (ROOT / "README.md").read_text()
    block = readme.split("It also prints them", 1)[1].split("```sh\n", 1)[1].split("```", 1)[0]
    shown = [line for line in block.splitlines() if line and not line.startswith("#")]
    printed = try_it("http://127.0.0.1:8000", 8000)
    assert shown
    for line in shown:
        assert line in printed, line
    assert not re.search(r"^\s*uv ", readme, re.MULTILINE), "a README command needs uv on PATH"
