"""Hot reload under a running `make dev` (in a copy of the project, whose
files the tests edit): the next request after a save runs the saved handler
or shared module, a syntax error answers 500 naming its file and line (and
the terminal shows them), a new migration is applied when saved and an
applied one that changes is named with `make dev-reset`, and a function
made with `make function` is served at once; PostgreSQL, the seed and make
dev itself never restart."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import psycopg
import pytest

from tests.integration.test_dev_server import DevServer, start_dev
from tests.support.project_copy import copy_project

pytestmark = pytest.mark.integration

PREFLIGHT = {"origin": "http://localhost:5173", "access-control-request-method": "POST"}


@dataclass
class Running:
    server: DevServer
    project: Path
    postmaster: int

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server.port}"

    @property
    def stack(self) -> dict[str, Any]:
        path = self.project / ".local" / "dev-stacks" / f"{self.server.port}.json"
        loaded: dict[str, Any] = json.loads(path.read_text())
        return loaded

    def postmaster_pid(self) -> int:
        return int((self.server.data / "pg" / "data" / "postmaster.pid").read_text().split()[0])

    def assert_nothing_restarted(self) -> None:
        assert self.server.process.poll() is None
        assert self.postmaster_pid() == self.postmaster
        assert self.server.output.count("Ctrl-C stops everything.") == 1


@pytest.fixture(scope="module")
def dev() -> Iterator[Running]:
    root = Path(tempfile.mkdtemp(prefix="chat-reload-"))
    try:
        project = copy_project(root / "project")
        server = start_dev(root / "data", root=project)
        running = Running(server, project, 0)
        running.postmaster = running.postmaster_pid()
        try:
            yield running
        finally:
            assert server.stop() == 0, server.output
    finally:
        shutil.rmtree(root, ignore_errors=True)


def edit(path: Path, old: str, new: str) -> str:
    text = path.read_text()
    assert old in text, f"{path} no longer has {old!r}: choose another line to edit"
    path.write_text(text.replace(old, new))
    return text


def no_session(dev: Running) -> dict[str, Any]:
    response = httpx.get(f"{dev.url}/auth/token", timeout=60)
    assert response.status_code == 401, response.text
    body: dict[str, Any] = response.json()
    return body


def test_the_next_request_runs_the_saved_handler_and_shared_code(dev: Running) -> None:
    assert no_session(dev)["error"]["message"] == "no session: sign in first"
    handler = dev.project / "functions" / "token" / "handler.py"
    errors = dev.project / "shared" / "http" / "errors.py"

    # When the handler is saved with another message: the very next request has it
    original = edit(handler, "no session: sign in first", "no session: sign in, edited")
    try:
        assert no_session(dev)["error"]["message"] == "no session: sign in, edited"
    finally:
        handler.write_text(original)

    # And so does a change under shared/ (the error body every function builds)
    original = edit(errors, '{"code": code, "message": message, **extra}',
                    '{"code": code, "message": message, "reloaded": True, **extra}')  # fmt: skip
    try:
        assert no_session(dev)["error"] == {
            "code": "no_session", "message": "no session: sign in first", "reloaded": True
        }  # fmt: skip
    finally:
        errors.write_text(original)
    assert "reloaded" not in no_session(dev)["error"]

    # Without a restart of make dev or PostgreSQL; make dev says what it reloaded
    dev.assert_nothing_restarted()
    dev.server.wait_for("functions/token/handler.py changed: functions reloaded in")
    dev.server.wait_for("shared/http/errors.py changed: functions reloaded in")


def test_a_syntax_error_answers_500_naming_the_file_and_line(dev: Running) -> None:
    handler = dev.project / "functions" / "token" / "handler.py"
    original = handler.read_text()
    line = original.count("\n") + 2

    # When the handler is saved with a syntax error
    handler.write_text(original + "\ndef broken(:\n")
    try:
        response = httpx.get(f"{dev.url}/auth/token", timeout=60)

        # Then its route answers 500 with a JSON body naming the file and line,
        # not the previous version
        assert response.status_code == 500, response.text
        error = response.json()["error"]
        assert (error["code"], error["file"], error["line"]) == (
            "function_not_loaded", "functions/token/handler.py", line
        )  # fmt: skip
        assert f"functions/token/handler.py, line {line}: SyntaxError" in error["message"]
        # and the terminal shows it too; the other functions still answer
        dev.server.wait_for(f"functions/token/handler.py, line {line}: SyntaxError")
        assert httpx.options(f"{dev.url}/chat/messages", headers=PREFLIGHT).status_code == 200
    finally:
        handler.write_text(original)

    # When it is fixed, the next request is served again
    assert no_session(dev)["error"]["code"] == "no_session"
    dev.assert_nothing_restarted()


def test_a_broken_serverless_yml_is_said_and_answered_not_hidden(dev: Running) -> None:
    template = dev.project / "serverless.yml"
    original = template.read_text()
    template.write_text(original + "\nfunctions: [unclosed\n")
    try:
        response = httpx.get(f"{dev.url}/auth/token", timeout=60)
        assert response.status_code == 500, response.text
        assert "serverless.yml cannot be read" in response.json()["error"]["message"]
        dev.server.wait_for("serverless.yml cannot be read")
    finally:
        template.write_text(original)
    assert no_session(dev)["error"]["code"] == "no_session"
    dev.assert_nothing_restarted()


def test_a_new_migration_is_applied_and_an_applied_one_is_never_rerun(dev: Running) -> None:
    migration = dev.project / "infra" / "supabase" / "migrations" / "29991231000000_probe.sql"

    # When a new migration is saved
    migration.write_text("create function public.reload_probe() returns int"
                         " language sql as 'select 41';\n")  # fmt: skip

    # Then make dev applies it and says so
    dev.server.wait_for("applied 1 new migration(s): 29991231000000_probe.sql", timeout=30)
    with psycopg.connect(dev.stack["database_url"], autocommit=True) as db:
        assert db.execute("select public.reload_probe()").fetchone() == (41,)

        # When the applied migration is edited
        migration.write_text(migration.read_text().replace("41", "42"))

        # Then it is not run again, and make dev says how to rebuild
        dev.server.wait_for("29991231000000_probe.sql changed after it was applied", timeout=30)
        assert "`make dev-reset`" in dev.server.output.split("29991231000000_probe.sql changed")[1]
        assert db.execute("select public.reload_probe()").fetchone() == (41,)
    dev.assert_nothing_restarted()


def test_a_function_made_while_make_dev_runs_is_served(
    dev: Running, monkeypatch: pytest.MonkeyPatch
) -> None:
    from scripts.dev_tokens import access_token

    # When a new function is made in the running project
    made = subprocess.run([sys.executable, "scripts/new_function.py", "add", "hello-there"],
                          cwd=dev.project, capture_output=True, text=True, check=False)  # fmt: skip
    assert made.returncode == 0, made.stdout + made.stderr

    # Then its migration is applied and its route is served, as Ada
    dev.server.wait_for("_hello_there.sql", timeout=30)
    monkeypatch.setenv("SUPABASE_URL", dev.stack["supabase_url"])
    response = httpx.post(f"{dev.url}/hello-there", json={"name": "Ada"}, timeout=60,
                          headers={"authorization": f"Bearer {access_token('ada')}"})  # fmt: skip
    assert response.status_code == 200, response.text
    assert response.json()["message"] == "Hello Ada!"
    assert response.json()["mongo_user_id"] == "ada"
    assert "POST /hello-there" in httpx.get(f"{dev.url}/", timeout=10).json()["routes"]
    dev.assert_nothing_restarted()
