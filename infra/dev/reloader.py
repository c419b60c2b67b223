"""Hot reload for make dev: the functions run in a child process
(infra/dev/function_process.py), replaced by a new one when their code
changes, while PostgreSQL, the seed, the queue and every server stay up.

Why a process and not importlib.reload: shared/container.py caches clients
per process, the worker runs in make dev's threads while code changes, and
pydantic models and exception classes are compared by identity; reloading
modules in place would mix old and new objects. A new interpreter per
version keeps nothing of the old one.

When: every request (and every worker job) first compares the files under
functions/ and shared/ and serverless.yml with those its process loaded (a
stat of each, well under a millisecond), so the next request after a save
always runs the saved code; a watcher does the same every half second, so
the new process is usually ready before that request comes. Calls already
running finish in the old process, which then exits. A spare process, with
the libraries already imported, waits for each reload: a new version costs
only the import of the project's own code (the time is printed).
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, BinaryIO

import yaml

from infra.serverless import routes

logger = logging.getLogger("dev")
ROOT = Path(__file__).resolve().parents[2]
WATCHED_TREES = ("functions", "shared")
WATCHED_FILES = ("serverless.yml",)
CALL_TIMEOUT_SECONDS = 300.0
Handler = Callable[[dict[str, Any], Any], Any]
Fingerprint = dict[str, tuple[int, int]]


def fingerprint(root: Path = ROOT) -> Fingerprint:
    """Path -> (mtime, size) of every file a function's code is made of.

    Run before every request, in make dev's one interpreter: os.scandir and
    plain strings, a third of os.walk's and pathlib's cost (0.3 ms against
    0.9 ms for the ~60 files), which `make load` would count per request."""
    files: Fingerprint = {}
    skip = len(str(root)) + 1

    def add(path: str) -> None:
        try:
            stat = os.stat(path)
        except FileNotFoundError:
            return  # removed while we looked
        files[path[skip:]] = (stat.st_mtime_ns, stat.st_size)

    def walk(folder: str) -> None:
        try:
            entries = os.scandir(folder)
        except (FileNotFoundError, NotADirectoryError):
            return
        with entries:
            for entry in entries:
                if entry.is_dir(follow_symlinks=False):
                    if entry.name != "__pycache__" and not entry.name.startswith("."):
                        walk(entry.path)
                elif not entry.name.endswith((".pyc", "~", ".swp")):
                    add(entry.path)

    for name in WATCHED_FILES:
        add(os.path.join(root, name))
    for tree in WATCHED_TREES:
        walk(os.path.join(root, tree))
    return files


def changed(old: Fingerprint, new: Fingerprint) -> list[str]:
    return sorted(p for p in old.keys() | new.keys() if old.get(p) != new.get(p))


class FunctionFailed(RuntimeError):
    """The function raised, could not be loaded, or its process went away."""


@dataclass
class _Process:
    popen: subprocess.Popen[bytes]
    port: int
    files: Fingerprint = field(default_factory=dict)
    routes: dict[tuple[str, str], str] = field(default_factory=dict)
    calls: int = 0
    lock: threading.Condition = field(default_factory=threading.Condition)
    # Connections kept open between calls, one per call at a time: a new
    # connection (and the process's new thread for it) per request tripled
    # make dev's CPU for a request (benchmarks/README.md, "make dev reload").
    idle: list[tuple[socket.socket, BinaryIO]] = field(default_factory=list)

    def alive(self) -> bool:
        return self.popen.poll() is None

    def request(self, message: Mapping[str, Any], timeout: float) -> dict[str, Any]:
        with self.lock:
            kept = self.idle.pop() if self.idle else None
        conn, answer = kept or self._connect()
        try:
            conn.settimeout(timeout)
            conn.sendall(json.dumps(message).encode() + b"\n")
            line = answer.readline()
        except BaseException:
            conn.close()
            raise
        if not line:
            conn.close()
            raise FunctionFailed(f"the functions' process (pid {self.popen.pid}) exited: see above")
        with self.lock:
            self.idle.append((conn, answer))
        reply: dict[str, Any] = json.loads(line)
        return reply

    def _connect(self) -> tuple[socket.socket, BinaryIO]:
        conn = socket.create_connection(("127.0.0.1", self.port))
        conn.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        return conn, conn.makefile("rb")

    def enter(self) -> None:
        with self.lock:
            self.calls += 1

    def leave(self) -> None:
        with self.lock:
            self.calls -= 1
            self.lock.notify_all()

    def retire(self, grace: float = CALL_TIMEOUT_SECONDS) -> None:
        """Ends the process once its running calls are done."""
        with self.lock:
            self.lock.wait_for(lambda: self.calls == 0, timeout=grace)
        self.stop()

    def stop(self) -> None:
        with self.lock:
            idle, self.idle = self.idle, []
        for conn, _ in idle:
            conn.close()
        if self.popen.stdin is not None and not self.popen.stdin.closed:
            with contextlib.suppress(BrokenPipeError):  # (it may be gone already)
                self.popen.stdin.close()  # a spare that never got "go" ends itself
        if self.alive():
            self.popen.terminate()
        try:
            self.popen.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.popen.kill()
            self.popen.wait()


class FunctionHost:
    """The functions of make dev, always at the code as it is on disk."""

    def __init__(self, environ: Mapping[str, str], say: Callable[[str], None]) -> None:
        self.environ = dict(environ)
        self.say = say
        self._lock = threading.Lock()
        self._current: _Process | None = None
        self._spare: _Process | None = None
        self.reloads: list[float] = []  # seconds each reload took, for the curious and the tests

    def _spawn(self) -> _Process:
        listener = socket.create_server(("127.0.0.1", 0), backlog=128)
        try:
            popen = subprocess.Popen(  # noqa: S603
                [sys.executable, "-m", "infra.dev.function_process", str(listener.fileno())],
                cwd=ROOT, env=self.environ, stdin=subprocess.PIPE, pass_fds=(listener.fileno(),),
            )  # fmt: skip
            return _Process(popen, listener.getsockname()[1])
        finally:
            listener.close()  # the child's copy stays: if it dies, callers see it at once

    def start(self) -> None:
        """The first version, loaded and answering, before make dev says it serves."""
        with self._lock:
            process = self._promote(fingerprint())
        self._ready(process, time.monotonic(), None)

    def _promote(self, files: Fingerprint) -> _Process:
        process = self._spare or self._spawn()
        self._spare = None
        process.files = files
        try:
            process.routes = routes(ROOT / "serverless.yml")
        except yaml.YAMLError as exc:
            process.routes = self._current.routes if self._current is not None else {}
            problem = " ".join(str(exc).split())
            self.say(f"serverless.yml cannot be read ({problem}): its routes stay as they were")
        assert process.popen.stdin is not None
        try:
            process.popen.stdin.write(b"go\n")
            process.popen.stdin.flush()
        except BrokenPipeError:  # the spare died: take a new one
            process.stop()
            return self._promote(files)
        old, self._current = self._current, process
        if old is not None:
            threading.Thread(target=old.retire, name="retire-functions", daemon=True).start()
        return process

    def _ready(self, process: _Process, started: float, why: str | None) -> None:
        """Waits for the new version to answer, says so, and readies the next spare."""
        try:
            reply = process.request({"ping": True}, CALL_TIMEOUT_SECONDS)
        except (OSError, FunctionFailed) as exc:
            self.say(f"the functions' process did not start ({exc}): see above")
            return
        took = time.monotonic() - started
        if why is not None:
            self.reloads.append(took)
            failed = reply.get("failed") or []
            outcome = f"{len(failed)} not loaded ({', '.join(failed)})" if failed else "all loaded"
            self.say(f"{why} changed: functions reloaded in {took:.2f} s ({outcome})")
        with self._lock:
            if self._spare is None:
                self._spare = self._spawn()

    def current(self, *, enter: bool = False) -> _Process:
        """The process for the code as it is now: replaced first if the code changed
        (or its process exited). With `enter`, a call is counted in it before
        anyone can retire it."""
        files = fingerprint()
        with self._lock:
            process = self._current
            assert process is not None, "start() first"
            if files == process.files and process.alive():
                if enter:
                    process.enter()
                return process
            started = time.monotonic()
            if not process.alive():
                why = f"the functions' process exited ({process.popen.returncode}); restarted:"
            else:
                paths = changed(process.files, files)
                why = ", ".join(paths[:3]) + (
                    f" and {len(paths) - 3} more" if len(paths) > 3 else ""
                )
            process = self._promote(files)
            if enter:
                process.enter()
        threading.Thread(target=self._ready, args=(process, started, why), daemon=True).start()
        return process

    def routes(self) -> dict[tuple[str, str], str]:
        """(method, path) -> function, as serverless.yml says now."""
        return self.current().routes

    def call(self, function: str, event: dict[str, Any], context: Any) -> Any:
        return self.timed_call(function, event, context)[0]

    def timed_call(self, function: str, event: dict[str, Any], context: Any) -> tuple[Any, float]:
        """The result and the seconds the handler took in its process."""
        remaining = None if context is None else context.get_remaining_time_in_millis()
        timeout = CALL_TIMEOUT_SECONDS if remaining is None else remaining / 1000 + 30
        process = self.current(enter=True)
        try:
            reply = process.request(
                {"function": function, "event": event, "remaining_ms": remaining}, timeout
            )
        except OSError as exc:
            raise FunctionFailed(f"{function}: the functions' process is gone ({exc})") from None
        finally:
            process.leave()
        if "error" in reply:
            raise FunctionFailed(str(reply["error"]))
        return reply["result"], float(reply.get("seconds", 0.0))

    def handler(self, function: str) -> Handler:
        """A Lambda-shaped entry point that runs `function` at the current code."""
        return lambda event, context: self.call(function, event, context)

    def watch(self, stop: threading.Event, also: Callable[[], None] = lambda: None) -> None:
        """Reloads as soon as a file changes (and runs `also` each round), until `stop`."""
        while not stop.wait(0.5):
            try:
                self.current()
                also()
            except Exception:  # the next round tries again; requests check for themselves
                logger.exception("make dev's reload watcher")

    def stop(self) -> None:
        with self._lock:
            for process in (self._current, self._spare):
                if process is not None:
                    process.stop()
            self._current = self._spare = None
