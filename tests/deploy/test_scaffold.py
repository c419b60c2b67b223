"""`make function` as a team runs it on day one, in a copy of the project:
the new function's generated tests pass against the real database, the
project stays lint-, format- and type-clean, its artifact builds and
imports, `sls package` gives it its own route and role (and SnapStart's
alias), a taken or bad name is refused in one line, and `make
function-remove` leaves the copy exactly as it was."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import tempfile
import zipfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from infra.serverless import read
from tests.support.project_copy import copy_project, snapshot

pytestmark = pytest.mark.deploy

NAME, SNAKE, CAMEL = "hello-there", "hello_there", "helloThere"
DUMMY_AWS = {"AWS_ACCESS_KEY_ID": "dummy", "AWS_SECRET_ACCESS_KEY": "dummy",
             "AWS_DEFAULT_REGION": "eu-west-1"}  # fmt: skip


@dataclass
class Scaffolded:
    root: Path
    before: dict[str, bytes]
    made: subprocess.CompletedProcess[str]

    def run(self, *command: str, timeout: float = 600) -> subprocess.CompletedProcess[str]:
        path = f"{self.root / '.venv' / 'bin'}{os.pathsep}{os.environ['PATH']}"
        return subprocess.run(command, cwd=self.root, capture_output=True, text=True,
                              timeout=timeout, check=False,
                              env={**os.environ, **DUMMY_AWS, "PATH": path})  # fmt: skip

    def start(self, *command: str) -> subprocess.Popen[str]:
        path = f"{self.root / '.venv' / 'bin'}{os.pathsep}{os.environ['PATH']}"
        return subprocess.Popen(command, cwd=self.root, text=True, stdout=subprocess.PIPE,
                                stderr=subprocess.STDOUT,
                                env={**os.environ, **DUMMY_AWS, "PATH": path})  # fmt: skip


@pytest.fixture(scope="module")
def scaffolded() -> Iterator[Scaffolded]:
    # Not under pytest's basetemp: a concurrent pytest run resets that folder
    # to 0700, and the tests' PostgreSQL (the postgres user) needs its way in.
    root = Path(tempfile.mkdtemp(prefix="chat-scaffold-"))
    try:
        copy_project(root)
        before = snapshot(root)
        project = Scaffolded(root, before, subprocess.CompletedProcess([], 0))
        project.made = project.run("make", "--no-print-directory", "function", f"NAME={NAME}")
        yield project
    finally:
        shutil.rmtree(root, ignore_errors=True)


def _template(project: Scaffolded, folder: str) -> dict[str, Any]:
    text = (project.root / folder / "cloudformation-template-update-stack.json").read_text()
    loaded: dict[str, Any] = json.loads(text)
    return loaded


def _imports_on_python_312(artifact: Path, target: Path) -> None:
    """Unzipped as Lambda does, the handler imports with nothing but the artifact."""
    from scripts.package_functions import python312

    interpreter = python312()
    if interpreter is None:
        return  # test_serverless says so for the project's own artifacts
    zipfile.ZipFile(artifact).extractall(target)
    env = {"PATH": "/usr/bin:/bin", "SUPABASE_URL": "https://x.supabase.co",
           "SUPABASE_ANON_KEY": "anon", "SECRETS_SOURCE": "env", "PYTHONDONTWRITEBYTECODE": "1"}  # fmt: skip
    code = f"import sys; sys.path.insert(0, {str(target)!r}); import functions.{SNAKE}.handler as h"
    done = subprocess.run([interpreter, "-I", "-c", f"{code}; print(callable(h.handler))"],
                          cwd=target, env=env, capture_output=True, text=True, check=False)  # fmt: skip
    assert (done.returncode, done.stdout.strip()) == (0, "True"), done.stderr


def test_the_function_is_made_tested_packaged_and_taken_back(scaffolded: Scaffolded) -> None:
    project = scaffolded
    # Given `make function NAME=hello-there` in a copy of the project
    assert project.made.returncode == 0, project.made.stdout + project.made.stderr
    assert f"made {NAME}: POST /{NAME}" in project.made.stdout
    [migration] = (project.root / "infra/supabase/migrations").glob(f"*_{SNAKE}.sql")
    versions = sorted(p.name for p in (project.root / "infra/supabase/migrations").glob("*.sql"))
    assert versions[-1] == migration.name  # after every existing migration

    # When its tests, and the test of every function's grants, run in the copy
    # (beside its artifact being built, which takes as long)
    tests = project.start(
        "python", "-m", "pytest", "-q", "-p", "no:cacheprovider",
        f"tests/unit/test_{SNAKE}.py", f"tests/integration/test_{SNAKE}.py",
        "tests/db/test_function_grants.py", "tests/unit/test_serverless_registry.py",
    )  # fmt: skip
    built = project.run("python", "scripts/package_functions.py", "--function", NAME)
    tested, _ = tests.communicate(timeout=600)

    # Then they pass, and the project is as clean as make test wants it
    assert tests.returncode == 0, tested
    assert re.search(r"\b\d+ passed\b", tested), tested
    assert "failed" not in tested, tested
    for check in (
        ["ruff", "check", "."],
        ["ruff", "format", "--check", "."],
        ["mypy", f"functions/{SNAKE}", f"tests/unit/test_{SNAKE}.py",
         f"tests/integration/test_{SNAKE}.py", "tests/db/test_function_grants.py"],
    ):  # fmt: skip
        done = project.run(*check)
        assert done.returncode == 0, f"{check}: {done.stdout}{done.stderr}"

    # And its artifact holds its own handler and no other function's
    assert built.returncode == 0, built.stdout + built.stderr
    build = project.root / ".local" / "build"
    files = zipfile.ZipFile(build / f"{SNAKE}.zip").namelist()
    assert f"functions/{SNAKE}/handler.py" in files
    assert "shared/http/app.py" in files
    assert not [f for f in files if f.startswith("functions/") and not f.startswith(
        (f"functions/{SNAKE}/", "functions/__init__.py", "functions/__pycache__/__init__."))]  # fmt: skip
    _imports_on_python_312(build / f"{SNAKE}.zip", project.root / ".local" / "unpacked")
    for other in ("bot_trigger", "bot_worker", "token", "thread_ensure", "chat_message"):
        with zipfile.ZipFile(build / f"{other}.zip", "w") as stand_in:  # sls needs them all
            stand_in.writestr(f"functions/{other}/handler.py", "handler = None\n")

    # And sls package (offline) gives it its route, its own role and its settings
    packaged = project.run("npx", "--no-install", "sls", "package", "--stage", "ci")
    assert packaged.returncode == 0, packaged.stdout + packaged.stderr
    resources = _template(project, ".serverless")["Resources"]
    function = resources["HelloThereLambdaFunction"]["Properties"]
    assert function["Role"] == {"Fn::GetAtt": ["HelloThereRole", "Arn"]}
    assert function["Handler"] == f"functions/{SNAKE}/handler.handler"
    assert function["Environment"]["Variables"]["SECRETS_SOURCE"] == "extension"
    role_users = [k for k, v in resources.items() if v["Type"] == "AWS::Lambda::Function"
                  and v["Properties"]["Role"] == {"Fn::GetAtt": ["HelloThereRole", "Arn"]}]  # fmt: skip
    assert role_users == ["HelloThereLambdaFunction"]
    [policy] = resources["HelloThereRole"]["Properties"]["Policies"]
    [statement] = policy["PolicyDocument"]["Statement"]
    assert statement["Action"] == ["ssm:GetParameter", "ssm:GetParameters"]
    readable = json.dumps(statement["Resource"])
    assert "supabase-anon-key" in readable
    assert "service-role-key" not in readable
    assert "webhook-secret" not in readable
    routes = {v["Properties"]["RouteKey"] for v in resources.values()
              if v["Type"] == "AWS::ApiGatewayV2::Route"}  # fmt: skip
    assert {f"POST /{NAME}", f"OPTIONS /{NAME}"} <= routes

    # And it has the shape of the project's own HTTP functions: whatever they
    # are given (settings, layers, logging, tracing, metrics) it is given too
    shape = {k: sorted(v["Properties"]) for k, v in resources.items()
             if k in ("HelloThereLambdaFunction", "ChatMessageLambdaFunction")}  # fmt: skip
    assert shape["HelloThereLambdaFunction"] == shape["ChatMessageLambdaFunction"]
    declared = read(project.root / "serverless.yml")["functions"]
    assert sorted(declared[CAMEL]) == sorted(declared["chatMessage"])
    assert sorted(function["Environment"]["Variables"]) == sorted(
        resources["ChatMessageLambdaFunction"]["Properties"]["Environment"]["Variables"]
    )

    # And with SnapStart, its events call the published version's alias, as the others'
    snap = project.run("npx", "--no-install", "sls", "package", "--stage", "ci",
                       "--param=snapStart=true", "--package", ".serverless-snapstart")  # fmt: skip
    assert snap.returncode == 0, snap.stdout + snap.stderr
    snap_resources = _template(project, ".serverless-snapstart")["Resources"]
    assert snap_resources["HelloThereLambdaFunction"]["Properties"]["SnapStart"] == {
        "ApplyOn": "PublishedVersions"
    }
    aliases = [v["Properties"]["FunctionName"] for v in snap_resources.values()
               if v["Type"] == "AWS::Lambda::Alias"]  # fmt: skip
    assert {"Ref": "HelloThereLambdaFunction"} in aliases

    # When the name is asked for again, or a bad one
    for name, says in ((NAME, f"make function: {NAME!r} is taken: serverless.yml has"),
                       ("Hello_There", "make function: 'Hello_There' is not a name")):  # fmt: skip
        refused = project.run("make", "--no-print-directory", "function", f"NAME={name}")
        lines = [line for line in refused.stderr.splitlines()
                 if not re.match(r"make(\[\d+\])?: |\x1b", line)]  # fmt: skip
        # Then it is refused in one line, and nothing changes
        assert refused.returncode != 0
        assert lines == [lines[0]], refused.stderr
        assert lines[0].startswith(says), refused.stderr

    # When it is removed
    removed = project.run("make", "--no-print-directory", "function-remove", f"NAME={NAME}")

    # Then the copy is exactly as it was before make function
    assert removed.returncode == 0, removed.stdout + removed.stderr
    after = snapshot(project.root)
    assert sorted(after.keys() ^ project.before.keys()) == []
    assert [p for p in after if after[p] != project.before[p]] == []
