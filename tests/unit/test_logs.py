"""Log lines are one JSON object each, with the service, the request's
correlation id and the extra fields a call passes."""

from __future__ import annotations

import json
import logging
import sys

import pytest

from shared.logs import get_logger

pytestmark = pytest.mark.unit


def test_a_log_line_is_json_with_service_correlation_id_and_extras(
    capsys: pytest.CaptureFixture[str],
) -> None:
    logger = get_logger("logs-test-service")
    # The handler writes to the stdout of its creation; point it at capsys'.
    logging.getLogger("logs-test-service").handlers[0].setStream(sys.stdout)  # type: ignore[attr-defined]
    logger.set_correlation_id("req-123")
    logger.info("request", extra={"method": "POST", "status": 201})
    line = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert line["message"] == "request"
    assert line["service"] == "logs-test-service"
    assert line["level"] == "INFO"
    assert line["correlation_id"] == "req-123"
    assert (line["method"], line["status"]) == ("POST", 201)
    assert get_logger("logs-test-service") is logger
