"""The front end's whole path: supabase-js in Node, then the page in headless
Chromium, both against one `make dev` (see conftest.py)."""

from __future__ import annotations

import os
import re
from pathlib import Path

import pytest

from tests.browser.conftest import ROOT, DevStack, run_node

pytestmark = pytest.mark.integration


def _passed(report: str) -> int:
    found = re.search(r"^\S* ?pass (\d+)$", report, re.MULTILINE)
    assert found, report
    return int(found.group(1))


def test_supabase_js_joins_is_refused_and_receives(dev_stack: DevStack) -> None:
    report = run_node(dev_stack, "tests/node/realtime.test.mjs")
    assert _passed(report) == 10, report


def test_typing_receipts_unread_counts_and_paging_with_supabase_js(
    dev_stack: DevStack, seeded_thread: dict[str, str]
) -> None:
    report = run_node(dev_stack, "tests/node/chat.test.mjs", timeout=300, extra_env=seeded_thread)
    assert _passed(report) == 6, report


def test_the_page_in_a_real_browser(
    dev_stack: DevStack, seeded_thread: dict[str, str], tmp_path: Path
) -> None:
    # UPDATE_SCREENSHOT=1 refreshes the one the README shows.
    shot = (
        ROOT / "docs" / "front-end.png"
        if os.environ.get("UPDATE_SCREENSHOT")
        else tmp_path / "page.png"
    )
    report = run_node(
        dev_stack, "tests/browser/page.test.mjs", screenshot=shot, extra_env=seeded_thread
    )
    assert _passed(report) == 9, report
    assert shot.stat().st_size > 10_000, "no screenshot of the conversation"
