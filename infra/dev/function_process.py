"""make dev's functions, in a process of their own.

infra/dev/reloader.py starts one of these for every version of the code:
it imports the libraries the functions use, waits for "go" on stdin
(so a spare one waits ready while the current one serves), then imports
every function serverless.yml defines, exactly once, and serves calls on
the listening socket it was handed, on connections make dev keeps open:
per call, one JSON line in (`{"function",
"event", "remaining_ms"}`), one JSON line out (`{"result", "seconds"}`
or `{"error"}`). Each call runs the function's Lambda entry point, in a
thread, as make dev always did in-process.

A function that cannot be imported (a syntax error, a bad setting, a
failing import in shared/) is reported once, on stderr, with its file and
line; its HTTP routes then answer 500 with a JSON body naming them, and
its queue jobs fail, until the code is fixed and a new process replaces
this one. Nothing of an earlier version is kept: each version is a new
interpreter.
"""

from __future__ import annotations

import importlib
import json
import os
import signal
import socket
import socketserver
import sys
import threading
import time
import traceback
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

ROOT = Path(__file__).resolve().parents[2]
# What the functions import at init, loaded before "go": a new version then
# costs only the project's own modules (benchmarks/README.md, "make dev").
PRELOAD = (
    "fastapi",
    "mangum",
    "pydantic",
    "httpx",
    "psycopg",
    "postgrest",
    "yaml",
    "cryptography.hazmat.primitives.asymmetric.ec",
    "aws_lambda_powertools.utilities.batch",
)


@dataclass(frozen=True)
class LoadError:
    function: str
    file: str  # relative to the repository
    line: int | None
    summary: str  # "SyntaxError: invalid syntax"
    details: str  # what the terminal shows: the caret lines or the traceback

    @property
    def where(self) -> str:
        return f"{self.file}, line {self.line}" if self.line else self.file

    def http_response(self) -> dict[str, Any]:
        body = {
            "error": {
                "code": "function_not_loaded",
                "message": f"{self.function} could not be loaded: {self.where}: {self.summary}",
                "file": self.file,
                "line": self.line,
            }
        }
        return {
            "statusCode": 500,
            "headers": {"content-type": "application/json"},
            "body": json.dumps(body),
            "isBase64Encoded": False,
        }


def _relative(filename: str) -> str:
    path = Path(filename).resolve()
    return str(path.relative_to(ROOT)) if path.is_relative_to(ROOT) else filename


def load_error(function: str, exc: BaseException) -> LoadError:
    """Where an import failed: a syntax error's own file and line, else the
    innermost frame in the project's code (not this module)."""
    summary = "".join(traceback.format_exception_only(type(exc), exc)).strip().splitlines()[-1]
    if isinstance(exc, SyntaxError) and exc.filename:
        details = "".join(traceback.format_exception_only(type(exc), exc)).rstrip()
        return LoadError(function, _relative(exc.filename), exc.lineno, summary, details)
    frames = [
        frame
        for frame in traceback.extract_tb(exc.__traceback__)
        if Path(frame.filename).resolve().is_relative_to(ROOT)
        and Path(frame.filename).resolve() != Path(__file__).resolve()
    ]
    file, line = (_relative(frames[-1].filename), frames[-1].lineno) if frames else ("?", None)
    details = "".join(traceback.format_exception(type(exc), exc, exc.__traceback__)).rstrip()
    return LoadError(function, file, line, summary, details)


class Functions:
    """Every function of this version: its Lambda handler, or why it has none."""

    def __init__(self) -> None:
        from infra.serverless import functions

        self.handlers: dict[str, Any] = {}
        self.failed: dict[str, LoadError] = {}
        self.http: set[str] = set()
        self.unreadable: str | None = None
        try:
            listed = functions()
        except (OSError, yaml.YAMLError) as exc:
            self.unreadable = f"serverless.yml cannot be read: {' '.join(str(exc).split())}"
            print(f"make dev: {self.unreadable}", file=sys.stderr, flush=True)
            listed = []
        for function in listed:
            if function.routes:
                self.http.add(function.package)
            try:
                module = importlib.import_module(f"functions.{function.package}.handler")
                self.handlers[function.package] = module.handler
            except (Exception, SystemExit) as exc:  # a SystemExit: configured()'s one line
                self.failed[function.package] = load_error(function.package, exc)
        self._report()

    def _report(self) -> None:
        shown: set[tuple[str, int | None, str]] = set()
        for error in self.failed.values():
            key = (error.file, error.line, error.summary)
            if key not in shown:
                shown.add(key)
                print(f"\033[1;31mmake dev: {error.where}: {error.summary}\033[0m\n{error.details}",
                      file=sys.stderr, flush=True)  # fmt: skip
        if self.failed:
            names = ", ".join(sorted(self.failed))
            print(f"make dev: not loaded: {names} (HTTP routes answer 500 naming the file, queue"
                  " jobs fail) until the code is fixed: save it and make dev reloads",
                  file=sys.stderr, flush=True)  # fmt: skip

    def call(self, request: dict[str, Any]) -> dict[str, Any]:
        from infra.dev.platform import LambdaContext

        name = str(request.get("function"))
        if self.unreadable is not None:
            return {"error": self.unreadable}
        if name in self.failed:
            error = self.failed[name]
            if name in self.http:
                return {"result": error.http_response()}
            return {
                "error": f"{error.function} could not be loaded: {error.where}: {error.summary}"
            }
        handler = self.handlers.get(name)
        if handler is None:
            return {"error": f"serverless.yml has no function {name!r}"}
        remaining = request.get("remaining_ms")
        context = None if remaining is None else LambdaContext(float(remaining) / 1000)
        started = time.perf_counter()
        try:
            result = handler(request["event"], context)
        except Exception as exc:  # a function error, as Lambda reports it
            return {"error": f"{type(exc).__name__}: {exc}"}
        # the handler's own time, without the hop from make dev (Server-Timing)
        return {"result": result, "seconds": time.perf_counter() - started}


def serve(listener: socket.socket, functions: Functions) -> None:
    class Connection(socketserver.StreamRequestHandler):
        disable_nagle_algorithm = True  # an answer leaves at once, as make dev's server's do

        def handle(self) -> None:
            # make dev keeps a connection for call after call (one at a time)
            for line in self.rfile:
                request = json.loads(line)
                if request.get("ping"):
                    answer: dict[str, Any] = {"ready": True, "failed": sorted(functions.failed)}
                else:
                    answer = functions.call(request)
                self.wfile.write(json.dumps(answer, default=str).encode() + b"\n")

    server = socketserver.ThreadingTCPServer(("127.0.0.1", 0), Connection, bind_and_activate=False)
    server.daemon_threads = True
    server.socket.close()
    server.socket = listener
    server.serve_forever()


def _exit_with_parent(parent: int) -> None:
    """make dev killed with SIGKILL leaves no process of ours behind."""
    while os.getppid() == parent:
        time.sleep(1)
    os._exit(0)


def main(argv: list[str]) -> int:
    listener = socket.socket(fileno=int(argv[0]))
    # Ctrl-C reaches the whole process group: make dev itself stops us.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, lambda *_: os._exit(0))
    threading.Thread(target=_exit_with_parent, args=(os.getppid(),), daemon=True).start()
    for module in PRELOAD:
        importlib.import_module(module)
    if sys.stdin.readline().strip() != "go":
        return 0  # a spare that was not needed
    serve(listener, Functions())
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
