"""The job queue of a running `make dev`, reachable through SQS's own API.

`make invoke FN=botTrigger` runs bot-trigger in another process (`sls invoke
local`), where the function sends its jobs exactly as on AWS: boto3's
SendMessageBatch to BOT_QUEUE_URL. Pointed here (AWS_ENDPOINT_URL_SQS and
the queue URL that the stack file implies, see infra/dev/stack.py), those
jobs land in whatever queue `make dev` feeds its worker from
(`container.queue()` in that process), so the worker answers as if the
webhook had come in. make dev's own functions, which run in a process of
their own (infra/dev/reloader.py), reach the queue the same way, and the
worker delays a failed job's retry through it (ChangeMessageVisibility).
SQS's JSON protocol, SendMessage, SendMessageBatch and
ChangeMessageVisibility only; the signature is not checked (a local queue,
like the rest of make dev).
"""

from __future__ import annotations

import hashlib
import json
import uuid
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler
from typing import Any

from infra.dev.bodies import BodyRefused, read_body
from shared.errors import ServiceUnavailable
from shared.queue import SqsQueue

PATH = "/local/sqs"
QUEUE_PATH = "/000000000000/bot-jobs"
_TARGET = "AmazonSQS."
MAX_BODY_BYTES = 2 * 1024 * 1024


def dev_queue() -> SqsQueue:
    """make dev's own queue (moto's, in its process), as bot-trigger's settings name it."""
    from shared import container

    queue = container.queue()
    assert isinstance(queue, SqsQueue)
    return queue


def answer(handler: BaseHTTPRequestHandler, queue: Callable[[], SqsQueue]) -> None:
    target = handler.headers.get("X-Amz-Target", "")
    try:
        request = json.loads(read_body(handler, MAX_BODY_BYTES) or b"{}")
    except BodyRefused as exc:
        _reply(handler, exc.status, _error("InvalidParameterValue", exc.message))
        return
    except (ValueError, RecursionError):
        _reply(handler, 400, _error("MalformedInput", "the body is not JSON"))
        return
    action = target.removeprefix(_TARGET) if target.startswith(_TARGET) else ""
    if not str(request.get("QueueUrl", "")).endswith(QUEUE_PATH):
        _reply(handler, 400, _error("QueueDoesNotExist", "The specified queue does not exist."))
        return
    if action == "ChangeMessageVisibility":
        _change_visibility(handler, queue, request)
        return
    if action == "SendMessage":
        entries = [{"Id": "0", "MessageBody": request.get("MessageBody")}]
    elif action == "SendMessageBatch":
        entries = request.get("Entries") if isinstance(request.get("Entries"), list) else []
    else:
        _reply(handler, 400, _error("InvalidAction", f"this local queue does not do {target!r}"))
        return
    bodies = [e.get("MessageBody") if isinstance(e, dict) else None for e in entries]
    sendable = [b for b in bodies if isinstance(b, str) and b]
    if not bodies or len(sendable) != len(bodies):
        _reply(handler, 400, _error("MissingParameter", "each message needs a MessageBody"))
        return
    try:
        queue().send(sendable)
    except ServiceUnavailable as exc:
        _reply(handler, 500, _error("InternalError", exc.message))
        return
    sent = [_sent(str(e.get("Id")), str(e["MessageBody"])) for e in entries]
    if action == "SendMessage":
        _reply(handler, 200, {k: v for k, v in sent[0].items() if k != "Id"})
    else:
        _reply(handler, 200, {"Successful": sent, "Failed": []})


def _change_visibility(
    handler: BaseHTTPRequestHandler, queue: Callable[[], SqsQueue], request: dict[str, Any]
) -> None:
    receipt, seconds = request.get("ReceiptHandle"), request.get("VisibilityTimeout")
    if not isinstance(receipt, str) or not isinstance(seconds, int) or seconds < 0:
        _reply(handler, 400, _error("MissingParameter", "ReceiptHandle and VisibilityTimeout"))
        return
    try:
        queue().delay(receipt, seconds)
    except ServiceUnavailable as exc:
        _reply(handler, 400, _error("ReceiptHandleIsInvalid", exc.message))
        return
    _reply(handler, 200, {})


def _sent(entry_id: str, body: str) -> dict[str, str]:
    digest = hashlib.md5(body.encode()).hexdigest()  # noqa: S324 (SQS's checksum, not security)
    return {"Id": entry_id, "MessageId": str(uuid.uuid4()), "MD5OfMessageBody": digest}


def _error(code: str, message: str) -> dict[str, Any]:
    return {"__type": f"com.amazonaws.sqs#{code}", "message": message}


def _reply(handler: BaseHTTPRequestHandler, status: int, body: dict[str, Any]) -> None:
    data = json.dumps(body).encode()
    handler.send_response(status)
    handler.send_header("Content-Type", "application/x-amz-json-1.0")
    handler.send_header("Content-Length", str(len(data)))
    handler.end_headers()
    handler.wfile.write(data)
