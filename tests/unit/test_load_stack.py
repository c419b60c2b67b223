"""`make load`'s accounting of make dev's CPU (benchmarks/load_stack.py):
make dev runs the functions in child processes (infra/dev/reloader.py), so
the cores a throughput took must count them, the one serving now and the
ones a reload retired, not make dev's own process alone."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from collections.abc import Iterator
from pathlib import Path

import pytest

from benchmarks.load_stack import usage
from infra.dev.stack import Stack

pytestmark = pytest.mark.unit

BURN = "import time\nt = time.process_time()\nwhile time.process_time() - t < 0.6: pass\n"
# make dev's stand-in: a version that ran and was retired (reaped), then one
# that serves (alive), each burning 0.6 s of CPU; make dev itself idles.
MAKE_DEV = textwrap.dedent(f"""
    import subprocess, sys
    burn = {BURN!r}
    print("ready", flush=True)
    sys.stdin.readline()
    subprocess.run([sys.executable, "-c", burn], check=True)
    serving = subprocess.Popen([sys.executable, "-c", burn + "print('burnt', flush=True)\\n"
                                "import sys; sys.stdin.readline()"],
                               stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    print(serving.stdout.readline().strip(), flush=True)
    sys.stdin.readline()
    serving.stdin.close()
    serving.wait()
""")


@pytest.fixture
def stack(tmp_path: Path) -> Iterator[tuple[Stack, subprocess.Popen[str]]]:
    postmaster = subprocess.Popen(["sleep", "600"])
    (tmp_path / "pg" / "data").mkdir(parents=True)
    (tmp_path / "pg" / "data" / "postmaster.pid").write_text(f"{postmaster.pid}\n")
    dev = subprocess.Popen([sys.executable, "-c", MAKE_DEV], stdin=subprocess.PIPE,
                           stdout=subprocess.PIPE, text=True)  # fmt: skip
    try:
        assert dev.stdout is not None
        assert dev.stdout.readline().strip() == "ready"
        yield Stack(pid=dev.pid, port=0, api_url="", supabase_url="", database_url="",
                    functions_database_url="", data_dir=str(tmp_path), postgres_log="",
                    page_url=""), dev  # fmt: skip
    finally:
        dev.kill()
        dev.wait()
        postmaster.kill()
        postmaster.wait()


def test_the_functions_processes_cpu_is_make_devs(
    stack: tuple[Stack, subprocess.Popen[str]],
) -> None:
    running, dev = stack
    assert dev.stdin is not None
    assert dev.stdout is not None
    before = usage(running)

    # When a retired version and the serving one have each burnt 0.6 s
    dev.stdin.write("go\n")
    dev.stdin.flush()
    assert dev.stdout.readline().strip() == "burnt"

    # Then make dev's CPU has them both, while its own process only waited
    after = usage(running)
    assert after.app_cpu - before.app_cpu >= 1.1
    assert after.app_rss_kb > before.app_rss_kb  # the serving one's memory too
    dev.stdin.write("done\n")
    dev.stdin.flush()
