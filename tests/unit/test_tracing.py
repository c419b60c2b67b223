"""The X-Ray SDK is imported only when tracing is enabled (it costs cold start)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.unit

ROOT = Path(__file__).resolve().parents[2]
PROBE = (
    "import sys; import functions.chat_message.handler, functions.bot_worker.handler;"
    "print('aws_xray_sdk' in sys.modules, 'aws_xray_sdk.core' in sys.modules)"
)


@pytest.mark.parametrize(("flag", "loaded"), [("false", "False False"), ("true", "True True")])
def test_the_tracer_is_loaded_only_when_enabled(flag: str, loaded: str) -> None:
    env = {
        "PATH": "/usr/bin:/bin",
        "SUPABASE_URL": "http://127.0.0.1:9",
        "SUPABASE_ANON_KEY": "x",
        "TRACING_ENABLED": flag,
        "POWERTOOLS_TRACE_DISABLED": "true",
        "AWS_DEFAULT_REGION": "eu-west-1",
    }
    done = subprocess.run(
        [sys.executable, "-c", PROBE],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == loaded
