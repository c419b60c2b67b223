"""What a running `make dev` publishes, so the other commands (`make demo`,
`make invoke`, scripts) find it without a second copy of its settings.

Each running `make dev` writes one file, .local/dev-stacks/<PORT>.json, under
the repository whatever its DEV_DATA_DIR, and removes it when it stops. A
file whose process is gone (a crash) is ignored and cleaned up.
"""

from __future__ import annotations

import json
import os
from dataclasses import asdict, dataclass
from pathlib import Path

from infra.dev.sqs import PATH as SQS_PATH
from infra.dev.sqs import QUEUE_PATH

ROOT = Path(__file__).resolve().parents[2]
STACKS = ROOT / ".local" / "dev-stacks"


class NoStack(Exception):
    """No running `make dev` matches; the message says what to do."""


@dataclass(frozen=True)
class Stack:
    pid: int
    port: int
    api_url: str
    supabase_url: str
    database_url: str  # as the postgres superuser
    functions_database_url: str  # as authenticator, what the functions use
    data_dir: str
    postgres_log: str
    page_url: str  # the demo page, on its own origin

    @property
    def path(self) -> Path:
        return STACKS / f"{self.port}.json"

    @property
    def sqs_endpoint(self) -> str:
        """Where its job queue answers SQS's API (AWS_ENDPOINT_URL_SQS for boto3)."""
        return f"{self.supabase_url}{SQS_PATH}"

    @property
    def queue_url(self) -> str:
        """BOT_QUEUE_URL for a bot-trigger run outside make dev (`make invoke`)."""
        return f"{self.sqs_endpoint}{QUEUE_PATH}"

    def publish(self) -> None:
        running()  # drops what crashed runs left
        STACKS.mkdir(parents=True, exist_ok=True)
        partial = self.path.with_suffix(".tmp")
        partial.write_text(json.dumps(asdict(self), indent=2))
        partial.replace(self.path)

    def withdraw(self) -> None:
        self.path.unlink(missing_ok=True)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def running() -> list[Stack]:
    stacks = []
    for path in sorted(STACKS.glob("*.json")) if STACKS.is_dir() else []:
        try:
            stack = Stack(**json.loads(path.read_text()))
        except (OSError, ValueError, TypeError):
            continue
        if _alive(stack.pid):
            stacks.append(stack)
        else:
            path.unlink(missing_ok=True)  # left by a run that crashed
    return stacks


def find(port: int | None = None) -> Stack:
    """The running stack on `port`, or the only one running."""
    stacks = running()
    if port is not None:
        for stack in stacks:
            if stack.port == port:
                return stack
        others = f" (running: PORT={', '.join(str(s.port) for s in stacks)})" if stacks else ""
        raise NoStack(f"no `make dev` is running on port {port}{others}: start one with"
                      f" `make dev PORT={port}` in another terminal")  # fmt: skip
    if not stacks:
        raise NoStack("no `make dev` is running: start it with `make dev` in another terminal")
    if len(stacks) > 1:
        ports = ", ".join(str(s.port) for s in stacks)
        raise NoStack(f"several `make dev` are running (ports {ports}): choose one with PORT=...")
    return stacks[0]


def port_from_env() -> int | None:
    """PORT as the caller set it for `make dev`, if they did."""
    value = os.environ.get("PORT", "").strip()
    if not value:
        return None
    if not value.isdigit():
        raise NoStack(f"PORT={value!r} is not a port number")
    return int(value)
