"""A deploy cannot go out half-configured: `sls deploy` and `make deploy`
stop, naming each missing or malformed required param, before touching AWS
(no credentials here, and no network: they must fail on the params alone);
`sls package` builds with visible placeholders and says so, and a package
built that way is refused at deploy."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import time
import zipfile
from pathlib import Path

import pytest

from infra.serverless import functions

pytestmark = pytest.mark.deploy

ROOT = Path(__file__).resolve().parents[2]
SLS = ROOT / "node_modules" / ".bin" / "sls"
GOOD = ["--param=supabaseUrl=https://abcd.supabase.co",
        "--param=allowedOrigins=https://app.example.com,http://localhost:5173"]  # fmt: skip


def offline_env(home: Path) -> dict[str, str]:
    """No AWS credentials anywhere, and no instance metadata to fall back on."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("AWS_")}
    return {**env, "HOME": str(home), "AWS_EC2_METADATA_DISABLED": "true",
            "npm_config_update_notifier": "false",
            "PATH": f"{ROOT / '.venv' / 'bin'}{os.pathsep}{env['PATH']}"}  # fmt: skip


def run(command: list[str], home: Path, cwd: Path = ROOT) -> subprocess.CompletedProcess[str]:
    return subprocess.run(command, cwd=cwd, env=offline_env(home), capture_output=True,
                          text=True, timeout=300, check=False)  # fmt: skip


def test_sls_deploy_without_params_stops_naming_them(tmp_path: Path) -> None:
    started = time.time()
    done = run([str(SLS), "deploy", "--stage", "ci"], tmp_path)
    output = done.stdout + done.stderr
    assert done.returncode != 0
    assert "missing required param supabaseUrl" in output
    assert "missing required param allowedOrigins" in output
    assert "credentials" not in output.lower()  # it never got as far as AWS
    assert time.time() - started < 60


def test_a_malformed_param_is_named(tmp_path: Path) -> None:
    done = run([str(SLS), "deploy", "--stage", "ci", "--param=supabaseUrl=https://abcd.supabase.co",
                "--param=allowedOrigins=https://app.example.com/"], tmp_path)  # fmt: skip
    output = done.stdout + done.stderr
    assert done.returncode != 0
    assert 'param allowedOrigins="https://app.example.com/" is not' in output
    assert "supabaseUrl" not in output.split("Error:", 1)[-1]


def test_make_deploy_checks_params_before_building(tmp_path: Path) -> None:
    # Given no params
    done = run(["make", "--no-print-directory", "deploy", "STAGE=ci"], tmp_path)
    assert done.returncode != 0
    assert "missing required param supabaseUrl" in done.stdout + done.stderr
    assert "package_functions" not in done.stdout  # stopped before the (slow) build
    # And the params it is given are the ones checked
    bad = run(["make", "--no-print-directory", "deploy", "STAGE=ci",
               "PARAMS=--param=supabaseUrl=http://plain.example --param=allowedOrigins=https://a.example"],
              tmp_path)  # fmt: skip
    assert bad.returncode != 0
    assert 'param supabaseUrl="http://plain.example" is not an https URL' in bad.stdout + bad.stderr


@pytest.fixture
def service(tmp_path: Path) -> Path:
    """The service as it is, with stand-in artifacts: packaging reads only
    the template and the zips, so this stays offline and quick."""
    root = tmp_path / "service"
    (root / "infra").mkdir(parents=True)
    shutil.copy(ROOT / "serverless.yml", root)
    shutil.copytree(ROOT / "infra" / "aws", root / "infra" / "aws")
    build = root / ".local" / "build"
    build.mkdir(parents=True)
    for name in (f.package for f in functions()):
        with zipfile.ZipFile(build / f"{name}.zip", "w") as artifact:
            artifact.writestr(f"functions/{name}/handler.py", "handler = None\n")
    return root


def environment(service: Path) -> dict[str, str]:
    template = json.loads(
        (service / ".serverless" / "cloudformation-template-update-stack.json").read_text()
    )
    variables: dict[str, str] = template["Resources"]["TokenLambdaFunction"]["Properties"][
        "Environment"
    ]["Variables"]
    return variables


def test_package_without_params_uses_placeholders_says_so_and_cannot_be_deployed(
    service: Path, tmp_path: Path
) -> None:
    # When packaging offline without the params
    packaged = run([str(SLS), "package", "--stage", "ci"], tmp_path, cwd=service)

    # Then it builds, with placeholders it warns about
    assert packaged.returncode == 0, packaged.stdout + packaged.stderr
    warnings = packaged.stdout + packaged.stderr
    assert 'param supabaseUrl not given: packaged with the placeholder "<missing --param=supabaseUrl>"' in warnings  # fmt: skip
    assert "param allowedOrigins not given" in warnings
    assert environment(service)["SUPABASE_URL"] == "<missing --param=supabaseUrl>"

    # And deploying that package is refused even with the params
    deploy = run([str(SLS), "deploy", "--stage", "ci", "--package", ".serverless", *GOOD],
                 tmp_path, cwd=service)  # fmt: skip
    assert deploy.returncode != 0
    assert "was packaged without its required params" in deploy.stdout + deploy.stderr


def test_package_with_params_carries_them(service: Path, tmp_path: Path) -> None:
    packaged = run([str(SLS), "package", "--stage", "ci", *GOOD], tmp_path, cwd=service)
    assert packaged.returncode == 0, packaged.stdout + packaged.stderr
    assert "placeholder" not in packaged.stdout + packaged.stderr
    variables = environment(service)
    assert variables["SUPABASE_URL"] == "https://abcd.supabase.co"
    assert variables["ALLOWED_ORIGINS"] == "https://app.example.com,http://localhost:5173"


def test_env_prod_is_never_committed() -> None:
    done = subprocess.run(["git", "check-ignore", "-q", ".env.prod"], cwd=ROOT, check=False)
    assert done.returncode == 0


ENV_FILE_OK = "SUPABASE_ANON_KEY=a\nSUPABASE_SERVICE_ROLE_KEY=b\nWEBHOOK_SECRET=0123456789abcdef0\nOPENROUTER_API_KEY=c\n"


@pytest.mark.parametrize(
    ("command", "says"),
    [
        (["make", "-s", "secrets", "STAGE=prod", "ENV_FILE=.env.nothere"],
         "put_ssm_parameters: no file .env.nothere: create it with OPENROUTER_API_KEY,"),
        (["make", "-s", "secrets", "STAGE=prod"],
         "put_ssm_parameters: the following arguments are required: --env-file (usage:"),
        (["make", "-s", "secrets", "STAGE=prod", "ENV_FILE={env_file}"],
         "put_ssm_parameters: no AWS credentials: run `aws configure`"),
        (["make", "-s", "secrets", "STAGE=prod", "ENV_FILE={partial}"],
         "put_ssm_parameters: missing in {partial}: OPENROUTER_API_KEY"),
        ([".venv/bin/python", "scripts/package_functions.py", "--bogus"],
         "package_functions: unrecognized arguments: --bogus (usage:"),
        ([".venv/bin/python", "scripts/dev_tokens.py", "--bogus"],
         "dev_tokens: unknown argument '--bogus' (usage: make -s tokens"),
    ],
)  # fmt: skip
def test_a_script_s_bad_argument_or_missing_file_is_one_line(
    tmp_path: Path, command: list[str], says: str
) -> None:
    env_file, partial = tmp_path / "env", tmp_path / "partial"
    env_file.write_text(ENV_FILE_OK)
    partial.write_text("SUPABASE_ANON_KEY=a\n")
    command = [part.format(env_file=env_file, partial=partial) for part in command]
    done = run(command, tmp_path)
    # make's own "*** Error" line and bootstrap's progress are not the script's
    lines = [line for line in done.stderr.splitlines()
             if not re.match(r"make(\[\d+\])?: |\x1b", line)]  # fmt: skip
    assert done.returncode != 0
    assert lines == [lines[0]], done.stderr
    assert lines[0].startswith(says.format(partial=partial)), done.stderr
