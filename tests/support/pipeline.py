"""The platform's side of the bot pipeline, played in tests: pg_net's
delivery of queued webhooks, and SQS's event source mapping feeding the
worker (receive, invoke, delete what succeeded)."""

from __future__ import annotations

import copy
import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import psycopg

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


def deliver_webhooks(
    admin: psycopg.Connection[Any], bot_trigger: Callable[..., dict[str, Any]]
) -> list[HttpResult]:
    """Takes every queued pg_net request and hands it to bot-trigger."""
    results = []
    rows = admin.execute(
        "delete from net.http_request_queue returning id, headers, convert_from(body, 'UTF8')"
    ).fetchall()
    for request_id, headers, body in sorted(rows):
        lowered = {k.lower(): v for k, v in headers.items()}
        result = parse(bot_trigger(webhook_event(body, lowered), LambdaContext()))
        admin.execute(
            "insert into net._http_response (id, status_code, content) values (%s, %s, %s)",
            (request_id, result.status, json.dumps(result.body)),
        )
        results.append(result)
    return results


def sqs_event(messages: list[dict[str, Any]], queue_arn: str) -> dict[str, Any]:
    template = load_event("bot-worker.json")["Records"][0]
    records = []
    for message in messages:
        record = copy.deepcopy(template)
        record.update(
            messageId=message["MessageId"],
            receiptHandle=message["ReceiptHandle"],
            body=message["Body"],
            md5OfBody=message["MD5OfBody"],
            eventSourceARN=queue_arn,
        )
        record["attributes"].update({k: str(v) for k, v in message.get("Attributes", {}).items()})
        records.append(record)
    return {"Records": records}


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
