"""serverless.yml is the one list of functions: make dev routes by it, make
invoke lists it, the packager builds it (infra/serverless.py)."""

from __future__ import annotations

from pathlib import Path

import pytest

from infra.serverless import functions, routes

pytestmark = pytest.mark.unit

ROOT = Path(__file__).resolve().parents[2]


def test_every_function_package_has_an_entry_and_every_entry_a_package() -> None:
    packages = {p.parent.name for p in (ROOT / "functions").glob("*/handler.py")}
    assert {f.package for f in functions()} == packages


def test_routes_are_the_http_events_and_the_worker_is_fed_by_the_queue() -> None:
    table = routes()
    assert table[("POST", "/chat/messages")] == "chat_message"
    assert table[("OPTIONS", "/chat/messages")] == "chat_message"
    assert table[("GET", "/auth/token")] == "token"
    assert table[("POST", "/webhooks/bot-trigger")] == "bot_trigger"
    assert "bot_worker" not in table.values()
    assert [f.package for f in functions() if f.queue] == ["bot_worker"]


def test_a_function_answers_to_each_of_its_names(tmp_path: Path) -> None:
    template = tmp_path / "serverless.yml"
    template.write_text(
        "functions:\n"
        "  helloThere:\n"
        "    handler: functions/hello_there/handler.handler\n"
        "    role: HelloThereRole\n"
        "    environment:\n"
        "      QUEUE: !Ref SomeQueue\n"
        "    events:\n"
        "      - httpApi: {method: post, path: /hello-there}\n"
        "resources:\n"
        "  Resources:\n"
        "    SomeQueue: {Type: AWS::SQS::Queue, Properties: {Arn: !GetAtt [A, Arn]}}\n"
    )
    (found,) = functions(template)
    assert found.routes == (("POST", "/hello-there"),)
    assert found.event == "events/hello-there.json"
    assert all(found.answers_to(n) for n in ("helloThere", "hello-there", "hello_there"))
    assert not found.answers_to("hello")
