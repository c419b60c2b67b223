"""The deployment as users run it: `sls package` offline with dummy
credentials, cfn-lint on what it generates, and `sls invoke local` of an
HTTP function and the worker against the real database."""

from __future__ import annotations

import importlib
import json
import os
import re
import subprocess
import uuid
import zipfile
from http.server import BaseHTTPRequestHandler
from pathlib import Path
from typing import Any, ClassVar

import psycopg
import pytest

from infra.serverless import functions as serverless_functions
from shared.bots.settings import SPARE_RECEIVES
from shared.session.cookies import encode
from tests.support.events import http_event
from tests.support.loopback import serve
from tests.support.tokens import SigningKeys

pytestmark = pytest.mark.deploy

ROOT = Path(__file__).resolve().parents[2]
# serverless.yml's functions, a scaffolded one (`make function`) included.
FUNCTIONS = {f.name: f.package for f in serverless_functions()}
DUMMY_AWS = {
    "AWS_ACCESS_KEY_ID": "dummy",
    "AWS_SECRET_ACCESS_KEY": "dummy",
    "AWS_DEFAULT_REGION": "eu-west-1",
}


def sls(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    path = f"{ROOT / '.venv' / 'bin'}{os.pathsep}{os.environ['PATH']}"
    done = subprocess.run(
        ["npx", "--no-install", "sls", *args],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=300,
        env={**os.environ, **DUMMY_AWS, "PATH": path, **(env or {})},
        check=False,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    return done


@pytest.fixture(scope="module")
def packaged() -> dict[str, Any]:
    subprocess.run(
        ["uv", "run", "python", "scripts/package_functions.py"], cwd=ROOT, check=True, timeout=600
    )
    sls("package", "--stage", "ci")
    template: dict[str, Any] = json.loads(
        (ROOT / ".serverless" / "cloudformation-template-update-stack.json").read_text()
    )
    return template


def test_each_artifact_holds_only_what_its_function_needs(packaged: dict[str, Any]) -> None:
    for name in FUNCTIONS.values():
        artifact = ROOT / ".local" / "build" / f"{name}.zip"
        assert artifact.stat().st_size < 20 * 1024 * 1024, name
        files = zipfile.ZipFile(artifact).namelist()
        assert f"functions/{name}/handler.py" in files
        assert "shared/container.py" in files
        assert any(f.startswith("pydantic_core/") for f in files)
        others = [
            f
            for f in files
            if f.startswith("functions/")
            and not f.startswith(f"functions/{name}/")
            and not f.startswith(("functions/__init__.py", "functions/__pycache__/__init__."))
        ]
        assert others == []
        assert not any(
            f.startswith(("tests/", "node_modules/", "benchmarks/", "boto3/", "botocore/"))
            for f in files
        )
        # Pydantic 2 without its v1 API: FastAPI would import it at every
        # cold start only to look for v1 models (the probe below serves
        # each function without it).
        assert any(f.startswith("pydantic/fields.py") for f in files)
        assert not any(f.startswith("pydantic/v1/") for f in files), name
        assert any(f.endswith(".cpython-312.pyc") for f in files), (
            "bytecode for Lambda's Python 3.12"
        )


def test_the_template_lints_clean(packaged: dict[str, Any]) -> None:
    template = ROOT / ".serverless" / "cloudformation-template-update-stack.json"
    # W3005 is the framework's own redundant DependsOn, not ours to change.
    done = subprocess.run(
        ["uv", "run", "cfn-lint", "--ignore-checks", "W3005", "--", str(template)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=False,
    )
    assert done.returncode == 0, done.stdout + done.stderr


def test_the_template_wires_queues_roles_and_secrets(packaged: dict[str, Any]) -> None:
    resources = packaged["Resources"]
    functions = {
        k: v["Properties"] for k, v in resources.items() if v["Type"] == "AWS::Lambda::Function"
    }
    assert {p["Runtime"] for p in functions.values()} == {"python3.12"}
    worker = functions["BotWorkerLambdaFunction"]
    worker_env = worker["Environment"]["Variables"]
    queue = resources["BotQueue"]["Properties"]
    assert queue["VisibilityTimeout"] >= 6 * worker["Timeout"]
    # The reply deadline leaves the worker time to write its notice (FINISH_RESERVE_SECONDS)
    assert float(worker_env["LLM_TIMEOUT_SECONDS"]) + 20 < worker["Timeout"]
    # The worker's last attempt writes the notice, with receives to spare
    # (lost to throttling or a crash) before the dead-letter queue
    assert int(queue["RedrivePolicy"]["maxReceiveCount"]) == (
        int(worker_env["BOT_MAX_RECEIVES"]) + SPARE_RECEIVES
    )
    delays = [int(d) for d in worker_env["BOT_RETRY_DELAYS"].split(",")]
    assert len(delays) == int(worker_env["BOT_MAX_RECEIVES"]) - 1
    assert max(delays) < queue["VisibilityTimeout"]
    # The worker finds its queue from the records' ARN (sls invoke local cannot resolve a Ref)
    assert "BOT_QUEUE_URL" not in worker_env
    mapping = next(
        v["Properties"]
        for v in resources.values()
        if v["Type"] == "AWS::Lambda::EventSourceMapping"
    )
    assert mapping["FunctionResponseTypes"] == ["ReportBatchItemFailures"]
    assert mapping["BatchSize"] == 1  # one slow reply never holds up another job

    def actions(role: str) -> set[str]:
        statements = [
            s
            for p in resources[role]["Properties"]["Policies"]
            for s in p["PolicyDocument"]["Statement"]
        ]
        return {a for s in statements for a in s["Action"]}

    senders = [
        r
        for r, v in resources.items()
        if v["Type"] == "AWS::IAM::Role" and "sqs:SendMessage" in actions(r)
    ]
    consumers = [
        r
        for r, v in resources.items()
        if v["Type"] == "AWS::IAM::Role" and "sqs:ReceiveMessage" in actions(r)
    ]
    assert (senders, consumers) == (["BotTriggerRole"], ["BotWorkerRole"])
    user_facing = json.dumps(resources["TokenRole"]) + json.dumps(resources["ChatMessageRole"])
    assert "service-role-key" not in user_facing
    for props in functions.values():
        for name in props["Environment"]["Variables"]:
            # SECRETS_SOURCE says where secrets come from; it holds none.
            secret_like = name != "SECRETS_SOURCE" and any(
                s in name for s in ("KEY", "SECRET", "DATABASE_URL")
            )
            assert not secret_like or name.endswith("_SSM"), (
                f"{name} would put a secret in the template"
            )


@pytest.fixture
def demo(admin: psycopg.Connection[Any]) -> psycopg.Connection[Any]:
    admin.execute((ROOT / "infra" / "dev" / "seed.sql").read_text().encode())
    return admin


def _local_env(authenticator_dsn: str) -> list[str]:
    env = {
        line.split("=", 1)[0]: line.split("=", 1)[1]
        for line in (ROOT / "infra" / "dev" / "local.env").read_text().splitlines()
        if line and not line.startswith("#")
    }
    env.update(DATABASE_URL=authenticator_dsn, LOG_LEVEL="WARNING")
    return [arg for k, v in env.items() for arg in ("-e", f"{k}={v}")]


def _response(output: str) -> Any:
    start = output.rfind("\n{")
    return json.loads(output[start + 1 if start >= 0 else output.index("{") :])


def test_invoke_local_serves_thread_ensure(
    demo: psycopg.Connection[Any], authenticator_dsn: str
) -> None:
    done = sls(
        "invoke",
        "local",
        "-f",
        "threadEnsure",
        "-p",
        "events/thread-ensure.json",
        *_local_env(authenticator_dsn),
    )
    response = _response(done.stdout)
    assert response["statusCode"] == 200, response
    assert json.loads(response["body"])["thread_id"] == "ada__bob"
    assert response["headers"]["access-control-allow-origin"] == "http://localhost:5173"


def test_invoke_local_runs_the_worker(
    demo: psycopg.Connection[Any], authenticator_dsn: str
) -> None:
    demo.execute(
        "insert into public.intentions (id, name, type, owner_id, location_id, state, content)"
        " values ('/msg-dev-hello', 'Message from Ada', 'utterance', '@ada', '#lounge', 'complete',"
        ' \'{"text": "Hello, bots!"}\')'
    )
    done = sls(
        "invoke",
        "local",
        "-f",
        "botWorker",
        "-p",
        "events/bot-worker.json",
        *_local_env(authenticator_dsn),
    )
    assert _response(done.stdout) == {"batchItemFailures": []}
    reply = demo.execute(
        "select state, content->>'text' from public.intentions where owner_id = '@echo'"
    ).fetchone()
    assert reply is not None
    assert reply[0] == "complete"
    assert "Hello, bots!" in reply[1]


def test_each_artifact_imports_on_python_312(packaged: dict[str, Any], tmp_path: Path) -> None:
    """Unzipped as Lambda does, each handler imports under Python 3.12 with
    nothing but the artifact (and boto3, which the runtime provides)."""
    from scripts.package_functions import python312

    interpreter = python312()
    if interpreter is None:
        pytest.skip("no Python 3.12 on this machine")
    for name in FUNCTIONS.values():
        target = tmp_path / name
        zipfile.ZipFile(ROOT / ".local" / "build" / f"{name}.zip").extractall(target)
        env = {
            "PATH": "/usr/bin:/bin",
            "PYTHONPATH": str(target),
            "SUPABASE_URL": "https://x.supabase.co",
            "SUPABASE_ANON_KEY": "anon",
            "WEBHOOK_SECRET": "a-long-enough-webhook-secret",
            "BOT_QUEUE_URL": "https://sqs.eu-west-1.amazonaws.com/1/q",
            "SECRETS_SOURCE": "env",
            "PYTHONDONTWRITEBYTECODE": "1",
        }
        done = subprocess.run(
            [
                interpreter,
                "-I",
                "-c",
                f"import sys; sys.path.insert(0, {str(target)!r});"
                f" import functions.{name}.handler as h; print(callable(h.handler))",
            ],
            cwd=target,
            env=env,
            capture_output=True,
            text=True,
            check=False,
        )
        assert (done.returncode, done.stdout.strip()) == (0, "True"), done.stderr


# Shipped although no path imports them, and why. Everything else shipped
# must be imported by a request, an error or tracing.
SHIPPED_UNUSED: dict[str, dict[str, str]] = {name: {} for name in FUNCTIONS.values()}


class _Edge(BaseHTTPRequestHandler):
    """Supabase's edge for the probe: the JWKS, and `null` for any RPC."""

    protocol_version = "HTTP/1.1"
    jwks: ClassVar[dict[str, Any]] = {}

    def log_message(self, format: str, *args: Any) -> None:
        pass

    def _reply(self, body: Any) -> None:
        data = json.dumps(body).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def do_GET(self) -> None:
        self._reply(self.jwks)

    def do_POST(self) -> None:
        self.rfile.read(int(self.headers.get("Content-Length") or 0))
        self._reply(None)


def _probe_events(name: str, keys: SigningKeys) -> list[dict[str, Any]]:
    """A request, its errors (bad body, no or a bad token), for each function."""
    bearer = {"authorization": f"Bearer {keys.token(uuid.uuid4(), mongo_id='amy')}"}
    if name == "bot_worker":
        worker = json.loads((ROOT / "events" / "bot-worker.json").read_text())
        broken = json.loads(json.dumps(worker))
        broken["Records"][0]["body"] = "not json"
        return [worker, broken]
    if name == "token":
        cookie = "sb-127-auth-token=" + encode(
            {"access_token": keys.token(uuid.uuid4(), mongo_id="amy"), "refresh_token": "r"},
            "base64url",
        )
        return [
            http_event("GET", "/auth/token", headers={"cookie": cookie}),
            http_event("GET", "/auth/token"),
            http_event("GET", "/auth/token", headers={"cookie": "sb-127-auth-token=garbage"}),
        ]
    examples = {
        "thread_ensure": ("/chat/threads/ensure", {"other_mongo_id": "bob"}),
        "chat_message": ("/chat/messages", {"thread_id": "amy__bob", "body": "hi"}),
    }
    if name in examples:
        route, body = examples[name]
    else:  # bot-trigger, and any function `make function` added: its sample event
        sample = json.loads((ROOT / "events" / f"{name.replace('_', '-')}.json").read_text())
        route, body = sample["rawPath"], json.loads(sample["body"])
    secret = {"x-webhook-secret": "a-long-enough-webhook-secret"}
    headers = secret if name == "bot_trigger" else bearer
    return [
        http_event("POST", route, body=body, headers=headers),
        http_event("POST", route, raw_body="{", headers=headers),
        http_event("POST", route, body=body),
        http_event(
            "OPTIONS",
            route,
            headers={"origin": "https://app.example.test", "access-control-request-method": "POST"},
        ),
    ]


def test_each_artifact_ships_only_what_its_function_imports(
    packaged: dict[str, Any], tmp_path: Path
) -> None:
    """Unzipped under Python 3.12 with tracing on and SnapStart priming, each
    function serves a request and its errors; every top-level package it
    ships must have been imported, or be explained in SHIPPED_UNUSED. Each
    also ends its init with the garbage collector back on (shared.init_gc)."""
    from scripts.package_functions import RUNTIME_PROVIDED_MODULES, python312

    interpreter = python312()
    if interpreter is None:
        pytest.skip("no Python 3.12 on this machine")
    # What Lambda's runtime provides (boto3 and friends), from our venv.
    runtime = tmp_path / "runtime"
    runtime.mkdir()
    for module in RUNTIME_PROVIDED_MODULES:
        origin = Path(str(importlib.import_module(module).__file__))
        source = origin.parent if origin.name == "__init__.py" else origin
        (runtime / source.name).symlink_to(source)
    keys = SigningKeys()
    _Edge.jwks = keys.jwks()
    unused: dict[str, list[str]] = {}
    with serve(_Edge) as url:
        for name in FUNCTIONS.values():
            target = tmp_path / name
            zipfile.ZipFile(ROOT / ".local" / "build" / f"{name}.zip").extractall(target)
            events = tmp_path / f"{name}.json"
            events.write_text(json.dumps(_probe_events(name, keys)))
            env = {
                "PATH": "/usr/bin:/bin",
                "SUPABASE_URL": url,
                "SUPABASE_ANON_KEY": keys.anon_key(),
                "ALLOWED_ORIGINS": "https://app.example.test",
                "WEBHOOK_SECRET": "a-long-enough-webhook-secret",
                "BOT_QUEUE_URL": "https://sqs.eu-west-1.amazonaws.com/1/q",
                "SECRETS_SOURCE": "env",
                "TRACING_ENABLED": "true",
                "AWS_LAMBDA_FUNCTION_NAME": name,  # as Lambda sets it (shared.init_gc)
                "POWERTOOLS_TRACE_DISABLED": "true",
                "AWS_LAMBDA_INITIALIZATION_TYPE": "snap-start",
                "AWS_DEFAULT_REGION": "eu-west-1",
                "LOG_LEVEL": "CRITICAL",
                "PYTHONDONTWRITEBYTECODE": "1",
                **DUMMY_AWS,
            }
            probe = [interpreter, "-I", str(ROOT / "tests" / "deploy" / "artifact_probe.py")]
            done = subprocess.run(
                [*probe, str(target), name, str(events)],
                env={**env, "PROBE_RUNTIME": str(runtime)},
                cwd=target,
                capture_output=True,
                text=True,
                check=False,
            )
            assert done.returncode == 0, done.stderr
            report = json.loads(done.stdout.strip().splitlines()[-1])
            unused[name] = [p for p in report["unused"] if p not in SHIPPED_UNUSED.get(name, {})]
            assert report["gc_enabled"], f"{name} left the garbage collector off after init"
            assert report["gc_frozen"] > 10_000, f"{name} did not freeze what its init built"
            assert report["tracing_frozen"], f"{name} loaded its tracer after the freeze"
            if name != "bot_worker":  # the worker builds its model client per job
                assert report["cas_loaded"] == 0, f"{name} parsed a CA bundle at cold start"
    assert unused == {name: [] for name in FUNCTIONS.values()}


def test_secrets_come_from_the_extension_layer_and_no_plugin_is_looked_for(
    packaged: dict[str, Any],
) -> None:
    functions = [
        v["Properties"]
        for v in packaged["Resources"].values()
        if v["Type"] == "AWS::Lambda::Function"
    ]
    for props in functions:
        assert props["Environment"]["Variables"]["SECRETS_SOURCE"] == "extension"
        # and the first model built does not scan every distribution for plugins
        assert props["Environment"]["Variables"]["PYDANTIC_DISABLE_PLUGINS"] == "__all__"
        (layer,) = props["Layers"]
        assert ":layer:AWS-Parameters-and-Secrets-Lambda-Extension:" in layer
        # Lambda's own lines JSON too; ours filtered by LOG_LEVEL, not again by Lambda
        assert props["LoggingConfig"] == {
            "LogFormat": "JSON", "ApplicationLogLevel": "TRACE", "SystemLogLevel": "INFO"
        }  # fmt: skip
        assert "SnapStart" not in props  # opt-in only


def test_snapstart_opt_in_publishes_versions_and_events_call_the_alias(
    packaged: dict[str, Any],
) -> None:
    sls("package", "--stage", "ci", "--param=snapStart=true", "--package", ".serverless-snapstart")
    template = json.loads(
        (ROOT / ".serverless-snapstart" / "cloudformation-template-update-stack.json").read_text()
    )
    resources = template["Resources"]
    functions = {k for k, v in resources.items() if v["Type"] == "AWS::Lambda::Function"}
    for name in functions:
        assert resources[name]["Properties"]["SnapStart"] == {"ApplyOn": "PublishedVersions"}
    aliases = {
        v["Properties"]["FunctionName"]["Ref"]: v["Properties"]
        for v in resources.values()
        if v["Type"] == "AWS::Lambda::Alias"
    }
    assert set(aliases) == functions
    for alias in aliases.values():
        version = alias["FunctionVersion"]["Fn::GetAtt"][0]
        assert resources[version]["Type"] == "AWS::Lambda::Version"
    targets = [
        v["Properties"]["IntegrationUri"]
        for v in resources.values()
        if v["Type"] == "AWS::ApiGatewayV2::Integration"
    ] + [
        v["Properties"]["FunctionName"]
        for v in resources.values()
        if v["Type"] == "AWS::Lambda::EventSourceMapping"
    ]
    assert len(targets) == len(FUNCTIONS)
    for target in targets:
        assert target["Fn::Join"][1][1] == "snapstart", target


def test_the_http_api_is_throttled_and_the_worker_concurrency_capped(
    packaged: dict[str, Any],
) -> None:
    resources = packaged["Resources"]
    # Every route of the stage's HTTP API: API Gateway answers a flood 429 itself
    stages = [
        v["Properties"] for v in resources.values() if v["Type"] == "AWS::ApiGatewayV2::Stage"
    ]
    assert len(stages) == 1
    assert stages[0]["DefaultRouteSettings"] == {
        "DetailedMetricsEnabled": False,
        "ThrottlingBurstLimit": 200,
        "ThrottlingRateLimit": 100,
    }
    assert not stages[0].get("RouteSettings")  # no route escapes the default
    # The queue feeds at most five workers at once, however deep it is
    (mapping,) = [
        v["Properties"]
        for v in resources.values()
        if v["Type"] == "AWS::Lambda::EventSourceMapping"
    ]
    assert mapping["ScalingConfig"] == {"MaximumConcurrency": 5}


def test_throttling_and_worker_concurrency_are_stage_params() -> None:
    # When a stage is given its own limits
    params = ("--param=httpBurstLimit=40", "--param=httpRateLimit=20",
              "--param=workerMaxConcurrency=2")  # fmt: skip

    def resolved(path: str, opener: str) -> Any:
        done = sls("print", "--stage", "ci", *params, "--path", path, "--format", "json")
        return json.loads(done.stdout[done.stdout.index(opener) :])

    # Then the stage and the event source mapping get them
    routes = resolved("resources.extensions.HttpApiStage.Properties.DefaultRouteSettings", "{")
    assert (int(routes["ThrottlingBurstLimit"]), int(routes["ThrottlingRateLimit"])) == (40, 20)
    [event] = resolved("functions.botWorker.events", "[")
    assert event["sqs"]["maximumConcurrency"] == 2


def test_another_region_takes_the_extension_layer_from_a_param() -> None:
    # Given a region serverless.yml has no layer ARN for, and the ARN as a param
    arn = "arn:aws:lambda:ap-south-1:176022468876:layer:AWS-Parameters-and-Secrets-Lambda-Extension:11"
    # When the configuration is resolved
    done = sls(
        "print", "--stage", "ci", "--region", "ap-south-1",
        "--param=supabaseUrl=https://abc.supabase.co",
        "--param=allowedOrigins=https://app.example.com",
        f"--param=secretsExtensionLayer={arn}", "--path", "provider.layers", "--format", "json",
    )  # fmt: skip
    # Then every function gets that layer (the per-region table is only the fallback)
    assert json.loads(done.stdout[done.stdout.index("[") :]) == [arn]


def _alarms(template: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {
        k: v["Properties"]
        for k, v in template["Resources"].items()
        if v["Type"] == "AWS::CloudWatch::Alarm"
    }


def _dashboard(template: dict[str, Any]) -> dict[str, Any]:
    """The dashboard's body, with what CloudFormation fills in as <name>."""
    source = template["Resources"]["OperationsDashboard"]["Properties"]["DashboardBody"]["Fn::Sub"]
    body: dict[str, Any] = json.loads(re.sub(r"\$\{([^}]+)\}", r"<\1>", source))
    return body


def _single_metric(alarm: dict[str, Any]) -> tuple[str, str, dict[str, Any]]:
    """An alarm on one metric: its namespace, name and dimensions."""
    dimensions = {d["Name"]: d["Value"] for d in alarm["Dimensions"]}
    return alarm["Namespace"], alarm["MetricName"], dimensions


def test_the_runbook_names_the_stacks_outputs_and_functions(packaged: dict[str, Any]) -> None:
    runbook = (ROOT / "docs" / "runbook.md").read_text()
    # Each stack output its commands read (`out <Name>`) is one the stack has
    read = set(re.findall(r"\$\(out (\w+)\)", runbook)) | {"OperationsDashboardUrl"}
    assert {"BotDeadLetterQueueArn", "BotQueueArn"} <= read
    assert read <= set(packaged["Outputs"]), read - set(packaged["Outputs"])
    # The functions its log groups and commands name ($STACK-<name>) are the
    # stack's, every one of them in the Logs Insights command
    deployed = {
        resource["Properties"]["FunctionName"].removeprefix("chat-functions-ci-")
        for resource in packaged["Resources"].values()
        if resource["Type"] == "AWS::Lambda::Function"
    }
    assert deployed == set(FUNCTIONS)
    (insights,) = re.findall(r"/aws/lambda/\$STACK-\{([\w,]+)\}", runbook)
    assert set(insights.split(",")) == deployed
    named = set(re.findall(r"\$STACK-([a-zA-Z]+)\b", runbook))
    assert named <= deployed, named - deployed


def test_alarms_watch_the_pipeline_the_api_and_every_function_and_notify_the_topic(
    packaged: dict[str, Any],
) -> None:
    resources = packaged["Resources"]
    alarms = _alarms(packaged)
    runbook = (ROOT / "docs" / "runbook.md").read_text()
    # Every alarm notifies the one topic, in ALARM and back to OK
    assert resources["AlarmTopic"]["Type"] == "AWS::SNS::Topic"
    for name, alarm in alarms.items():
        assert alarm["AlarmActions"] == [{"Ref": "AlarmTopic"}], name
        assert alarm["OKActions"] == [{"Ref": "AlarmTopic"}], name
        assert alarm["AlarmName"].startswith("chat-functions-ci-"), name  # per stage
        # and names its entry in the runbook
        (anchor,) = re.findall(r"docs/runbook\.md#([a-z0-9-]+)", alarm["AlarmDescription"])
        assert f"\n### {anchor}\n" in runbook, (name, anchor)

    # The dead-letter queue not empty; the job queue's oldest job; the backlog
    assert _single_metric(alarms["DeadLettersAlarm"]) == (
        "AWS/SQS", "ApproximateNumberOfMessagesVisible",
        {"QueueName": {"Fn::GetAtt": ["BotDeadLetterQueue", "QueueName"]}},
    )  # fmt: skip
    assert (
        alarms["DeadLettersAlarm"]["Threshold"],
        alarms["DeadLettersAlarm"]["ComparisonOperator"],
    ) == (0, "GreaterThanThreshold")
    assert _single_metric(alarms["JobQueueAgeAlarm"]) == (
        "AWS/SQS", "ApproximateAgeOfOldestMessage",
        {"QueueName": {"Fn::GetAtt": ["BotQueue", "QueueName"]}},
    )  # fmt: skip
    assert alarms["JobQueueAgeAlarm"]["Threshold"] == 300
    backlog = alarms["UndeliveredBacklogAlarm"]
    assert _single_metric(backlog) == (
        "ChatFunctions",
        "OldestUndeliveredAge",
        {"function": "bot-trigger", "stage": "ci"},
    )
    # measured every minute by bot-trigger's schedule: a missing minute is a failure
    assert (backlog["Threshold"], backlog["TreatMissingData"]) == (180, "breaching")
    schedule = next(v["Properties"] for v in resources.values() if v["Type"] == "AWS::Events::Rule")
    assert schedule["ScheduleExpression"] == "rate(1 minute)"
    assert schedule["Targets"][0]["Arn"] == {"Fn::GetAtt": ["BotTriggerLambdaFunction", "Arn"]}

    # The HTTP API's 5xx rate, from API Gateway's own metrics
    http = alarms["Http5xxRateAlarm"]
    stats = {q["Id"]: q["MetricStat"]["Metric"] for q in http["Metrics"] if "MetricStat" in q}
    assert {k: (m["Namespace"], m["MetricName"], m["Dimensions"]) for k, m in stats.items()} == {
        "errors": ("AWS/ApiGateway", "5xx", [{"Name": "ApiId", "Value": {"Ref": "HttpApi"}}]),
        "requests": ("AWS/ApiGateway", "Count", [{"Name": "ApiId", "Value": {"Ref": "HttpApi"}}]),
    }
    assert http["Threshold"] == 5

    # auth_unavailable and database_unavailable above zero for several minutes, all functions
    for name, metric in (("AuthUnavailableAlarm", "AuthUnavailable"),
                         ("DatabaseUnavailableAlarm", "DatabaseUnavailable")):  # fmt: skip
        (query,) = alarms[name]["Metrics"]
        expected = (
            'SELECT SUM(%s) FROM SCHEMA("ChatFunctions", "function", stage) WHERE stage = \'ci\''
        )
        assert query["Expression"] == expected % metric
        assert (alarms[name]["DatapointsToAlarm"], alarms[name]["Threshold"]) == (3, 0)

    # Every function: error rate, throttles, and its duration near its timeout
    functions = {
        k: v["Properties"] for k, v in resources.items() if v["Type"] == "AWS::Lambda::Function"
    }
    assert len(functions) == 5
    for logical_id, props in functions.items():
        base = logical_id.removesuffix("LambdaFunction")
        ref = {"Name": "FunctionName", "Value": {"Ref": logical_id}}
        rate = alarms[f"{base}ErrorRateAlarm"]
        assert {
            q["MetricStat"]["Metric"]["MetricName"] for q in rate["Metrics"] if "MetricStat" in q
        } == {"Errors", "Invocations"}
        assert all(
            q["MetricStat"]["Metric"]["Dimensions"] == [ref]
            for q in rate["Metrics"]
            if "MetricStat" in q
        )
        assert rate["Threshold"] == 5
        throttles = alarms[f"{base}ThrottlesAlarm"]
        assert (throttles["MetricName"], throttles["Dimensions"], throttles["Threshold"]) == (
            "Throttles",
            [ref],
            0,
        )
        duration = alarms[f"{base}DurationAlarm"]
        assert (duration["MetricName"], duration["Statistic"], duration["Dimensions"]) == (
            "Duration",
            "Maximum",
            [ref],
        )
        assert duration["Threshold"] == props["Timeout"] * 1000 * 0.8
    assert (
        functions["BotWorkerLambdaFunction"]["Timeout"] * 800
        == alarms["BotWorkerDurationAlarm"]["Threshold"]
    )
    # M of N minutes, as CloudWatch advises for metrics that come from Lambda's logs
    for name in ("Http5xxRateAlarm", "TokenErrorRateAlarm"):
        assert (alarms[name]["DatapointsToAlarm"], alarms[name]["EvaluationPeriods"]) == (3, 5)


def test_the_functions_write_the_metrics_the_alarms_and_dashboard_read(
    packaged: dict[str, Any],
) -> None:
    resources = packaged["Resources"]
    for props in (
        v["Properties"] for v in resources.values() if v["Type"] == "AWS::Lambda::Function"
    ):
        variables = props["Environment"]["Variables"]
        assert (variables["METRICS_NAMESPACE"], variables["STAGE"]) == ("ChatFunctions", "ci")
    # What the dashboard and the alarms read from our namespace
    read: set[str] = set()
    for widget in _dashboard(packaged)["widgets"]:
        for series in widget["properties"].get("metrics", []):
            if series[0] == "ChatFunctions":
                read.add(series[1])
            elif isinstance(series[0], dict):
                read |= set(re.findall(r'MetricName="(\w+)"', series[0]["expression"]))
    for alarm in _alarms(packaged).values():
        if alarm.get("Namespace") == "ChatFunctions":
            read.add(alarm["MetricName"])
        for query in alarm.get("Metrics", []):
            read |= set(
                re.findall(
                    r"SUM\((\w+)\) FROM SCHEMA\(\"ChatFunctions\"", query.get("Expression", "")
                )
            )
    assert {"Requests", "Latency", "WebhooksReceived", "JobsAnswered", "TimeToFirstToken",
            "OldestUndeliveredAge", "AuthUnavailable", "DatabaseUnavailable"} <= read  # fmt: skip
    sources = "\n".join(
        p.read_text() for d in ("shared", "functions") for p in (ROOT / d).rglob("*.py")
    )

    def written(name: str) -> bool:
        if f'"{name}"' in sources:
            return True
        family = re.fullmatch(r"(Requests|ProviderErrors)\dxx", name)
        if family:
            return f'f"{family.group(1)}{{' in sources
        unavailable = re.fullmatch(r"(\w+)Unavailable", name)
        if unavailable:  # shared.metrics.dependency_failed: a 503's code, e.g. auth_unavailable
            return f'"{unavailable.group(1).lower()}_unavailable"' in sources
        return False

    assert sorted(name for name in read if not written(name)) == []


def test_the_dashboard_has_every_alarm_and_every_function(packaged: dict[str, Any]) -> None:
    resources = packaged["Resources"]
    dashboard = resources["OperationsDashboard"]["Properties"]
    assert dashboard["DashboardName"] == "chat-functions-ci"
    source = dashboard["DashboardBody"]["Fn::Sub"]
    # Everything CloudFormation fills in names a resource of the template
    placeholders = set(re.findall(r"\$\{([^}]+)\}", source))
    assert {p.split(".")[0] for p in placeholders} <= set(resources) | {"AWS::Region"}
    body = _dashboard(packaged)
    shown = json.dumps(body)
    alarm_widget = next(w for w in body["widgets"] if w["type"] == "alarm")
    assert sorted(alarm_widget["properties"]["alarms"]) == sorted(
        f"<{a}.Arn>" for a in _alarms(packaged)
    )
    for logical_id in (k for k, v in resources.items() if v["Type"] == "AWS::Lambda::Function"):
        assert f'"FunctionName", "<{logical_id}>"' in shown
    for queue in ("BotQueue", "BotDeadLetterQueue"):
        assert f'"QueueName", "<{queue}.QueueName>"' in shown
    # Widgets do not overlap on the page's 24 columns
    cells: set[tuple[int, int]] = set()
    for widget in body["widgets"]:
        assert widget["x"] + widget["width"] <= 24
        area = {(x, y) for x in range(widget["x"], widget["x"] + widget["width"])
                for y in range(widget["y"], widget["y"] + widget["height"])}  # fmt: skip
        assert not area & cells
        cells |= area


def test_alarm_subscription_and_thresholds_are_stage_params(packaged: dict[str, Any]) -> None:
    # Without the param: a subscription only under a condition that is false
    subscription = packaged["Resources"]["AlarmSubscription"]
    assert subscription["Condition"] == "AlarmSubscribed"
    assert packaged["Conditions"]["AlarmSubscribed"] == {
        "Fn::Not": [{"Fn::Equals": [{"Ref": "AlarmEndpoint"}, ""]}]
    }
    assert subscription["Properties"]["Endpoint"] == {"Ref": "AlarmEndpoint"}
    assert packaged["Parameters"]["AlarmEndpoint"]["Default"] == ""

    def resolved(path: str, *params: str) -> Any:
        done = sls("print", "--stage", "ci", *params, "--path", path, "--format", "json")
        text = done.stdout
        return json.loads(text[min(i for i in (text.find("{"), text.find("[")) if i >= 0) :])

    assert resolved("provider.stackParameters")[0] == {
        "ParameterKey": "AlarmEndpoint",
        "ParameterValue": "",
    }
    # With it: the address goes to the stack as a parameter at deploy, not into the template
    address = "--param=alarmEndpoint=oncall@example.com"
    assert (
        resolved("provider.stackParameters", address)[0]["ParameterValue"] == "oncall@example.com"
    )
    assert "example.com" not in json.dumps(packaged)
    # And every threshold is a stage param
    monitoring = resolved("custom.monitoring", "--param=alarmErrorRatePercent=10",
                          "--param=alarmBacklogAgeSeconds=600", "--param=alarmDatapoints=2")  # fmt: skip
    assert (int(monitoring["errorRatePercent"]), int(monitoring["backlogAgeSeconds"]),
            int(monitoring["datapoints"])) == (10, 600, 2)  # fmt: skip
