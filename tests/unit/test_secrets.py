"""Secrets come from SSM by name on AWS, from the environment locally."""

from __future__ import annotations

import json
import subprocess
import sys
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler
from pathlib import Path
from typing import Any, ClassVar
from urllib.parse import parse_qs, urlsplit

import boto3
import pytest
from moto import mock_aws

from shared import secrets
from shared.errors import ConfigurationError
from shared.secrets import load_ssm_parameters
from tests.support.loopback import serve

ROOT = Path(__file__).resolve().parents[2]

pytestmark = pytest.mark.unit


@pytest.fixture
def ssm(aws_credentials: None) -> Iterator[Any]:
    with mock_aws():
        client = boto3.client("ssm", region_name="eu-west-1")
        client.put_parameter(
            Name="/chat/prod/service-key", Value="the-service-key", Type="SecureString"
        )
        client.put_parameter(
            Name="/chat/prod/webhook-secret", Value="the-webhook-secret", Type="SecureString"
        )
        yield client


def test_parameters_named_in_the_environment_are_loaded_decrypted(ssm: Any) -> None:
    env = {
        "SUPABASE_SERVICE_ROLE_KEY_SSM": "/chat/prod/service-key",
        "WEBHOOK_SECRET_SSM": "/chat/prod/webhook-secret",
    }
    assert load_ssm_parameters(env) == ["SUPABASE_SERVICE_ROLE_KEY", "WEBHOOK_SECRET"]
    assert env["SUPABASE_SERVICE_ROLE_KEY"] == "the-service-key"
    assert env["WEBHOOK_SECRET"] == "the-webhook-secret"


def test_a_value_already_in_the_environment_wins_and_nothing_is_fetched(ssm: Any) -> None:
    env = {"WEBHOOK_SECRET_SSM": "/chat/prod/does-not-exist", "WEBHOOK_SECRET": "from-dotenv"}
    assert load_ssm_parameters(env) == []
    assert env["WEBHOOK_SECRET"] == "from-dotenv"


def test_a_missing_parameter_fails_at_cold_start_naming_it(ssm: Any) -> None:
    with pytest.raises(ConfigurationError) as failed:
        load_ssm_parameters({"OPENROUTER_API_KEY_SSM": "/chat/prod/missing"})
    assert "/chat/prod/missing" in str(failed.value)


def test_the_sdks_own_ssm_endpoint_variable_is_not_a_parameter(ssm: Any) -> None:
    env = {
        "AWS_ENDPOINT_URL_SSM": "http://127.0.0.1:1",
        "WEBHOOK_SECRET_SSM": "/chat/prod/webhook-secret",
    }
    with mock_aws():
        assert load_ssm_parameters(env) == ["WEBHOOK_SECRET"]
    assert "AWS_ENDPOINT_URL" not in env


def test_locally_nothing_is_fetched_even_for_unset_settings() -> None:
    env = {"SECRETS_SOURCE": "env", "OPENROUTER_API_KEY_SSM": "/chat/prod/openrouter"}
    assert load_ssm_parameters(env) == []
    assert "OPENROUTER_API_KEY" not in env


class Extension(BaseHTTPRequestHandler):
    """AWS's Parameters and Secrets Lambda Extension, as documented: GET
    /systemsmanager/parameters/get?name=...&withDecryption=true with the
    X-Aws-Parameters-Secrets-Token header, answering GetParameter's JSON."""

    protocol_version = "HTTP/1.1"
    store: ClassVar[dict[str, str]] = {"/chat/prod/service-key": "the-service-key"}
    seen: ClassVar[list[tuple[str, str | None]]] = []

    def log_message(self, format: str, *args: Any) -> None:
        pass

    def do_GET(self) -> None:
        url = urlsplit(self.path)
        query = parse_qs(url.query)
        name = query.get("name", [""])[0]
        self.seen.append((name, query.get("withDecryption", [""])[0]))
        body: dict[str, Any]
        if self.headers.get("X-Aws-Parameters-Secrets-Token") != "session-token":
            status, body = 401, {"message": "not authorized"}
        elif url.path != "/systemsmanager/parameters/get":
            status, body = 404, {"message": "no such route"}
        elif name not in self.store:
            status, body = 400, {"__type": "ParameterNotFound", "message": name}
        else:
            status, body = 200, {"Parameter": {"Name": name, "Value": self.store[name]}}
        data = json.dumps(body).encode()
        self.send_response(status)
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)


@pytest.fixture
def extension() -> Iterator[dict[str, str]]:
    Extension.seen.clear()
    with serve(Extension) as url:
        yield {
            "SECRETS_SOURCE": "extension",
            "AWS_SESSION_TOKEN": "session-token",
            "PARAMETERS_SECRETS_EXTENSION_HTTP_PORT": url.rsplit(":", 1)[1],
        }


def test_the_extension_answers_without_boto3(extension: dict[str, str]) -> None:
    env = {**extension, "SUPABASE_SERVICE_ROLE_KEY_SSM": "/chat/prod/service-key"}
    assert load_ssm_parameters(env) == ["SUPABASE_SERVICE_ROLE_KEY"]
    assert env["SUPABASE_SERVICE_ROLE_KEY"] == "the-service-key"
    assert Extension.seen == [("/chat/prod/service-key", "true")]


def test_a_parameter_the_extension_cannot_find_is_named(extension: dict[str, str]) -> None:
    with pytest.raises(ConfigurationError) as failed:
        load_ssm_parameters({**extension, "WEBHOOK_SECRET_SSM": "/chat/prod/missing"})
    assert "/chat/prod/missing does not exist" in str(failed.value)
    assert "put_ssm_parameters.py" in str(failed.value)


def test_a_refused_token_says_what_to_check(extension: dict[str, str]) -> None:
    env = {**extension, "AWS_SESSION_TOKEN": "wrong", "X_SSM": "/chat/prod/service-key"}
    with pytest.raises(ConfigurationError) as failed:
        load_ssm_parameters(env)
    assert "/chat/prod/service-key" in str(failed.value)
    assert "answered 401" in str(failed.value)


def test_no_extension_running_is_named(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(secrets, "EXTENSION_WAIT_SECONDS", 0.1)
    env = {
        "SECRETS_SOURCE": "extension",
        "AWS_SESSION_TOKEN": "t",
        "PARAMETERS_SECRETS_EXTENSION_HTTP_PORT": "9",
        "X_SSM": "/chat/prod/x",
    }
    with pytest.raises(ConfigurationError) as failed:
        load_ssm_parameters(env)
    assert "/chat/prod/x" in str(failed.value)
    assert "localhost:9" in str(failed.value)


def test_outside_lambda_the_extension_mode_says_so() -> None:
    with pytest.raises(ConfigurationError) as failed:
        load_ssm_parameters({"SECRETS_SOURCE": "extension", "X_SSM": "/chat/prod/x"})
    assert "AWS_SESSION_TOKEN" in str(failed.value)


def _cold_start(env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-c", "import functions.thread_ensure.handler"],
        cwd=ROOT,
        env={"PATH": "/usr/bin:/bin", "PYTHONPATH": str(ROOT), **env},
        capture_output=True,
        text=True,
        check=False,
    )


def test_a_missing_setting_is_one_line_at_cold_start() -> None:
    done = _cold_start({"SUPABASE_ANON_KEY": "anon", "SECRETS_SOURCE": "env"})
    assert done.returncode == 1
    assert done.stderr.startswith("configuration error: invalid settings: SUPABASE_URL is not set")
    assert len(done.stderr.strip().splitlines()) == 1
    assert "Traceback" not in done.stderr


def test_ssm_without_aws_credentials_is_one_line_naming_the_parameter(tmp_path: Path) -> None:
    done = _cold_start(
        {
            "SUPABASE_URL": "https://abc.supabase.co",
            "SUPABASE_ANON_KEY_SSM": "/chat-functions/prod/supabase-anon-key",
            "AWS_DEFAULT_REGION": "eu-west-1",
            "AWS_CONFIG_FILE": str(tmp_path / "none"),
            "AWS_SHARED_CREDENTIALS_FILE": str(tmp_path / "none"),
            "AWS_EC2_METADATA_DISABLED": "true",
        }
    )
    assert done.returncode == 1
    assert len(done.stderr.strip().splitlines()) == 1, done.stderr
    assert "/chat-functions/prod/supabase-anon-key" in done.stderr
    assert "no AWS credentials" in done.stderr
    assert "Traceback" not in done.stderr


def test_the_extension_is_asked_for_every_parameter_at_once(extension: dict[str, str]) -> None:
    # Given an extension that answers nobody until three requests are waiting,
    # as SSM round trips overlap only when the requests do
    waiting = threading.Barrier(3, timeout=2)
    store = {f"/chat/prod/{n}": f"value-{n}" for n in ("a", "b", "c")}

    class Slow(Extension):
        def do_GET(self) -> None:
            waiting.wait()
            super().do_GET()

    Slow.store = store
    with serve(Slow) as url:
        env = {**extension, "PARAMETERS_SECRETS_EXTENSION_HTTP_PORT": url.rsplit(":", 1)[1]}
        env |= {"A_SSM": "/chat/prod/a", "B_SSM": "/chat/prod/b", "C_SSM": "/chat/prod/c"}
        # When a cold start loads them
        loaded = load_ssm_parameters(env)
    # Then all three were in flight together, and each landed in its setting
    assert loaded == ["A", "B", "C"]
    assert (env["A"], env["B"], env["C"]) == ("value-a", "value-b", "value-c")


def test_of_several_failing_parameters_the_first_by_name_is_reported(
    extension: dict[str, str],
) -> None:
    # Given two missing parameters, the one first by name answered last
    last_answered = threading.Event()

    class LateForAaa(Extension):
        def do_GET(self) -> None:
            if "aaa" in self.path:
                last_answered.wait(timeout=2)
            super().do_GET()
            if "zzz" in self.path:
                last_answered.set()

    with serve(LateForAaa) as url:
        env = {**extension, "PARAMETERS_SECRETS_EXTENSION_HTTP_PORT": url.rsplit(":", 1)[1]}
        env |= {"Z_SSM": "/chat/prod/zzz-missing", "A_SSM": "/chat/prod/aaa-missing"}
        # When a cold start loads them
        with pytest.raises(ConfigurationError) as failed:
            load_ssm_parameters(env)
    # Then the error names the first by name, whichever failed first
    assert "/chat/prod/aaa-missing does not exist" in str(failed.value)


def test_an_answer_cut_short_is_one_line_naming_the_parameter(
    extension: dict[str, str],
) -> None:
    # Given an extension that promises a body and hangs up five bytes into it
    class CutShort(Extension):
        def do_GET(self) -> None:
            self.send_response(200)
            self.send_header("Content-Length", "100")
            self.end_headers()
            self.wfile.write(b'{"Par')
            self.close_connection = True

    with serve(CutShort) as url:
        env = {**extension, "PARAMETERS_SECRETS_EXTENSION_HTTP_PORT": url.rsplit(":", 1)[1]}
        env["WEBHOOK_SECRET_SSM"] = "/chat/prod/webhook-secret"
        # When a cold start loads it
        with pytest.raises(ConfigurationError) as failed:
            load_ssm_parameters(env)
    # Then the configuration error names it (not http.client's IncompleteRead)
    assert "/chat/prod/webhook-secret" in str(failed.value)
    assert "secrets extension" in str(failed.value)


_AWKWARD = {
    "/chat/prod/unicode": "clé ✓ 🔑",
    "/chat/prod/json": '{"a": [1, 2], "b": "c"}',
    "/chat/prod/spaces": "  padded  ",
    "/chat/prod/lines": "line one\nline two",
    "/chat/prod/long": "x" * 4096,
}


def test_the_extension_and_boto3_read_the_same_values(ssm: Any) -> None:
    # Given awkward values in SSM, and the extension answering GetParameter
    # from that same store (as the real one does)
    for name, value in _AWKWARD.items():
        ssm.put_parameter(Name=name, Value=value, Type="SecureString")

    class ExtensionOverSsm(Extension):
        def do_GET(self) -> None:
            name = parse_qs(urlsplit(self.path).query)["name"][0]
            answer = ssm.get_parameter(Name=name, WithDecryption=True)
            data = json.dumps(answer, default=str).encode()
            self.send_response(200)
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

    names = {f"SETTING_{n}_SSM": name for n, name in enumerate(_AWKWARD)}
    # When the same settings are loaded through boto3 (Powertools) and through the extension
    through_boto3 = {**names, "SECRETS_SOURCE": "ssm"}
    load_ssm_parameters(through_boto3)
    with serve(ExtensionOverSsm) as url:
        through_extension = {
            **names, "SECRETS_SOURCE": "extension", "AWS_SESSION_TOKEN": "session-token",
            "PARAMETERS_SECRETS_EXTENSION_HTTP_PORT": url.rsplit(":", 1)[1],
        }  # fmt: skip
        load_ssm_parameters(through_extension)

    # Then both give the same environment
    for setting, name in names.items():
        setting = setting.removesuffix("_SSM")
        assert through_extension[setting] == through_boto3[setting] == _AWKWARD[name]
