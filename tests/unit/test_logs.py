"""Log lines are one JSON object each, from every logger of the process,
with the function, the correlation id of the context that wrote them and the
extra fields a call passes; errors carry their exception inside the object;
LOG_LEVEL applies to every logger; what looks like a secret is masked."""

from __future__ import annotations

import json
import logging
import sys
import threading
from typing import Any

import pytest

from shared import logs

pytestmark = pytest.mark.unit


@pytest.fixture
def lines(capsys: pytest.CaptureFixture[str]) -> Any:
    """Every line written to stdout, each parsed as one JSON object."""
    logs.configure()
    capsys.readouterr()

    def read() -> list[dict[str, Any]]:
        out = capsys.readouterr().out
        return [json.loads(line) for line in out.splitlines()]

    return read


def test_a_line_carries_level_message_function_correlation_id_and_extras(lines: Any) -> None:
    logger = logs.get_logger("logs-test-service")
    with logs.invocation("logs-test-service", "req-123"):
        logger.info("request", extra={"method": "POST", "status": 201})

    (line,) = lines()
    assert line["message"] == "request"
    assert line["function"] == "logs-test-service"
    assert line["level"] == "INFO"
    assert line["correlation_id"] == "req-123"
    assert (line["method"], line["status"]) == ("POST", 201)
    assert line["logger"] == "logs-test-service"
    assert line["timestamp"].endswith("Z")
    assert logs.get_logger("logs-test-service") is logger


def test_any_library_s_logger_writes_the_same_json_and_obeys_log_level(
    lines: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Given LOG_LEVEL=WARNING at cold start
    monkeypatch.setenv("LOG_LEVEL", "WARNING")
    logs.configure()
    with logs.invocation("thread-ensure", "req-9"):
        # When libraries log below and at that level
        logging.getLogger("httpx").info("HTTP Request: GET https://x/ 200")
        logging.getLogger("botocore.credentials").debug("found credentials")
        logging.getLogger("psycopg").warning("connection lost")
    # Then only the warning is written, as JSON, with the request's context
    assert [(x["logger"], x["level"], x["correlation_id"]) for x in lines()] == [
        ("psycopg", "WARNING", "req-9")
    ]
    monkeypatch.setenv("LOG_LEVEL", "DEBUG")
    logs.configure()
    logging.getLogger("botocore.credentials").debug("found credentials")
    assert [x["message"] for x in lines()] == ["found credentials"]
    monkeypatch.setenv("LOG_LEVEL", "INFO")
    logs.configure()


def test_an_error_carries_its_exception_type_and_traceback_inside_the_object(
    lines: Any,
) -> None:
    settings: dict[str, str] = {}
    try:
        try:
            settings["missing"]
        except KeyError as exc:
            raise RuntimeError("could not build the reply") from exc
    except RuntimeError:
        logging.getLogger("shared.http").exception("unhandled error: RuntimeError")

    (line,) = lines()
    assert line["level"] == "ERROR"
    assert line["exception"]["type"] == "RuntimeError"
    assert line["exception"]["message"] == "could not build the reply"
    traceback = line["exception"]["traceback"]
    assert "KeyError: 'missing'" in traceback  # the cause is in it too
    assert "direct cause" in traceback
    assert traceback.rstrip().endswith("RuntimeError: could not build the reply")


def test_what_looks_like_a_secret_is_masked_whoever_logs_it(lines: Any) -> None:
    jwt = "eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiJhbXkifQ.c2lnbmF0dXJlLWJ5dGVzLWhlcmU"
    logging.getLogger("somelib").warning(
        "sent Authorization: Bearer %s to postgres://app:hunter2@db.internal:5432/x"
        " with sb_secret_abcdef0123 and sk-or-v1-0123456789abcdef01 Signature=%s",
        jwt,
        "ab" * 32,
    )

    (line,) = lines()
    for secret in (jwt, "hunter2", "abcdef0123", "0123456789abcdef01", "ab" * 32):
        assert secret not in line["message"]
    assert "db.internal:5432" in line["message"]


def test_a_session_token_written_as_bytes_is_masked(lines: Any) -> None:
    # botocore's repr of a signed request's headers
    logging.getLogger("somelib").warning(
        "headers={'X-Amz-Date': b'20261203T000000Z', 'X-Amz-Security-Token': b'%s',"
        " 'Authorization': b'AWS4-HMAC-SHA256 Credential=ASIA/x, Signature=%s'}",
        SESSION_TOKEN,
        "cd" * 32,
    )
    (line,) = lines()
    assert SESSION_TOKEN[:12] not in line["message"]
    assert "cd" * 32 not in line["message"]
    assert "'X-Amz-Date': b'20261203T000000Z'" in line["message"]


def test_threads_each_log_their_own_correlation_id(lines: Any) -> None:
    # Given requests served at once in threads (as the local dev server does)
    inside = threading.Barrier(8, timeout=30)

    def serve(number: int) -> None:
        with logs.invocation("thread-ensure", f"req-{number}"):
            inside.wait()  # every thread has set its id before any logs
            logging.getLogger("shared.http").info("serving %d", number)

    threads = [threading.Thread(target=serve, args=(n,)) for n in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    # Then each line carries the id of the request that wrote it
    written = lines()
    assert len(written) == 8
    assert all(x["correlation_id"] == f"req-{x['message'].split()[1]}" for x in written)


def test_outside_an_invocation_no_correlation_id_is_carried_over(lines: Any) -> None:
    with logs.invocation("token", "req-1"):
        logging.getLogger("x").warning("inside")
    logging.getLogger("x").warning("after")

    inside, after = lines()
    assert inside["correlation_id"] == "req-1"
    assert "correlation_id" not in after


def _records() -> list[logging.LogRecord]:
    def failed(raise_it: Any) -> logging.LogRecord:
        try:
            raise_it()
        except Exception:
            return logging.LogRecord("x", logging.ERROR, "m.py", 3, "failed", (), sys.exc_info())
        raise AssertionError("did not raise")

    def chained() -> None:
        try:
            json.loads("{")
        except ValueError as exc:
            raise RuntimeError("could not read") from exc

    plain = logging.LogRecord("httpx", logging.INFO, "m.py", 1, "GET %s %d", ("/x", 200), None)
    extras = logging.LogRecord("thread-ensure", logging.WARNING, "m.py", 2, "é ✓", (), None)
    extras.__dict__.update(status=503, cause="psycopg.OperationalError: down", nested={"a": [1]})
    return [plain, extras, failed(chained), failed(lambda: json.loads("["))]


def test_lines_say_what_powertools_logger_would_say(lines: Any) -> None:
    # Powertools' Logger, which shared.logs replaced: the same records through
    # its formatter and ours give the same message, level, extras and exception
    from aws_lambda_powertools.logging.formatter import LambdaPowertoolsFormatter

    theirs = LambdaPowertoolsFormatter(service="thread-ensure")
    ours = logs.JsonFormatter()
    for record in _records():
        mine, reference = json.loads(ours.format(record)), json.loads(theirs.format(record))
        assert (mine["message"], mine["level"]) == (reference["message"], reference["level"])
        for key in ("status", "cause", "nested"):
            assert mine.get(key) == reference.get(key)
        if "exception" in reference:
            trace = reference["stack_trace"]
            module = "" if trace["module"] == "builtins" else f"{trace['module']}."
            assert mine["exception"]["type"] == module + trace["type"]
            assert mine["exception"]["message"] == trace["value"]
            assert mine["exception"]["traceback"].rstrip("\n") == reference["exception"]
        else:
            assert "exception" not in mine


SESSION_TOKEN = "IQoJb3JpZ2luX2VjEJr//////////wEaCWV1LXdlc3QtMSJHMEUCIQDsessiontokenvalue0123456789"
SECRET_ACCESS_KEY = "wJalrXUtnFEMI/K7MDENG/bPxRfiCYsecretaccesskey0"


def test_at_debug_no_secret_or_session_token_reaches_a_line(
    lines: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Given a function at LOG_LEVEL=DEBUG with AWS session credentials, whose
    # secrets come from SSM (decrypted) and whose jobs go to SQS
    import boto3
    from moto import mock_aws

    from shared.secrets import load_ssm_parameters

    for name, value in {
        "LOG_LEVEL": "DEBUG",
        "AWS_DEFAULT_REGION": "eu-west-1",
        "AWS_ACCESS_KEY_ID": "ASIAEXAMPLEKEYID0000",
        "AWS_SECRET_ACCESS_KEY": SECRET_ACCESS_KEY,
        "AWS_SESSION_TOKEN": SESSION_TOKEN,
    }.items():
        monkeypatch.setenv(name, value)
    logs.configure()
    secrets = {"/logs-test/service-key": "sb_secret_0123456789abcdefDECRYPTED",
               "/logs-test/webhook-secret": "webhook-secret-value-DECRYPTED-42"}  # fmt: skip
    try:
        with mock_aws():
            ssm = boto3.client("ssm", region_name="eu-west-1")
            for name, value in secrets.items():
                ssm.put_parameter(Name=name, Value=value, Type="SecureString")
            lines()  # the test's own calls
            # When the function loads its secrets and sends a job
            env = {"SECRETS_SOURCE": "ssm", "SERVICE_KEY_SSM": "/logs-test/service-key",
                   "WEBHOOK_SECRET_SSM": "/logs-test/webhook-secret"}  # fmt: skip
            load_ssm_parameters(env)
            assert env["WEBHOOK_SECRET"] == secrets["/logs-test/webhook-secret"]
            sqs = boto3.client("sqs", region_name="eu-west-1")
            url = sqs.create_queue(QueueName="bot-jobs")["QueueUrl"]
            sqs.send_message(QueueUrl=url, MessageBody='{"bot_id": "@echo"}')
            written = lines()
    finally:
        monkeypatch.setenv("LOG_LEVEL", "INFO")
        logs.configure()

    # Then botocore wrote its DEBUG lines (the test saw them) but none holds
    # a decrypted value, the session token or the secret key
    assert any(x["logger"].startswith("botocore") and x["level"] == "DEBUG" for x in written)
    text = "\n".join(json.dumps(x) for x in written)
    for secret in [*secrets.values(), SESSION_TOKEN, SECRET_ACCESS_KEY]:
        assert secret not in text
        assert secret[:24] not in text
