"""The platform's side of the bot pipeline, played in tests: pg_net's
worker delivering the database's webhooks, and SQS's event source mapping feeding the
worker (receive, invoke, delete what succeeded)."""

from __future__ import annotations

import copy
import json
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import psycopg

from infra.dev.platform import sqs_event
from infra.local.pg_net import deliver_queued
from tests.support.events import HttpResult, LambdaContext, parse

EVENTS = Path(__file__).resolve().parents[2] / "events"


def load_event(name: str) -> dict[str, Any]:
    event: dict[str, Any] = json.loads((EVENTS / name).read_text())
    return event


def webhook_event(body: Any, headers: dict[str, str]) -> dict[str, Any]:
    event = copy.deepcopy(load_event("bot-trigger.json"))
    event["headers"] = {"content-type": "application/json", "user-agent": "pg_net", **headers}
    event["body"] = body if isinstance(body, str) else json.dumps(body)
    return event


@dataclass(frozen=True)
class Sent:
    """A webhook as pg_net's worker sent it to bot-trigger."""

    headers: dict[str, str]
    body: str


def deliver_webhooks(
    admin: psycopg.Connection[Any],
    bot_trigger: Callable[..., dict[str, Any]],
    sent: list[Sent] | None = None,
) -> list[HttpResult]:
    """pg_net's worker (infra/local/pg_net.py) sends what the database queued;
    the network edge hands each request to bot-trigger's Lambda entry point,
    as API Gateway would. Returns bot-trigger's answers in order."""
    results: list[HttpResult] = []

    def api_gateway(request: httpx.Request) -> httpx.Response:
        headers = {k.lower(): v for k, v in request.headers.items()}
        body = request.content.decode()
        if sent is not None:
            sent.append(Sent(headers, body))
        result = parse(bot_trigger(webhook_event(body, headers), LambdaContext()))
        results.append(result)
        return httpx.Response(result.status, json=result.body)

    with httpx.Client(transport=httpx.MockTransport(api_gateway)) as http:
        while deliver_queued(admin, http):
            pass
    return results


def discard_webhooks(admin: psycopg.Connection[Any]) -> int:
    """pg_net's worker sends what is queued to an endpoint that ignores it."""
    count = 0
    with httpx.Client(transport=httpx.MockTransport(lambda _: httpx.Response(204))) as http:
        while taken := deliver_queued(admin, http):
            count += taken
    return count


def drain(
    sqs: Any, queue_url: str, worker: Callable[..., dict[str, Any]], *, rounds: int = 10
) -> list[dict[str, Any]]:
    """Feeds the worker until the queue is empty (or `rounds` receives); returns each response."""
    arn = sqs.get_queue_attributes(QueueUrl=queue_url, AttributeNames=["QueueArn"])["Attributes"][
        "QueueArn"
    ]
    responses = []
    for _ in range(rounds):
        received = sqs.receive_message(
            QueueUrl=queue_url, MaxNumberOfMessages=10, AttributeNames=["All"], VisibilityTimeout=0
        )
        messages = received.get("Messages", [])
        if not messages:
            break
        response = worker(sqs_event(messages, arn), LambdaContext())
        responses.append(response)
        failed = {f["itemIdentifier"] for f in response["batchItemFailures"]}
        for message in messages:
            if message["MessageId"] not in failed:
                sqs.delete_message(QueueUrl=queue_url, ReceiptHandle=message["ReceiptHandle"])
    return responses
