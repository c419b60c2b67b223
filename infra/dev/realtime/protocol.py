"""Phoenix channel frames as Realtime speaks them.

vsn 2.0.0: JSON arrays `[join_ref, ref, topic, event, payload]`, plus the
binary "user broadcast push" frame (kind 3) realtime-js sends for
`channel.send({type: 'broadcast', ...})`. vsn 1.0.0: JSON objects. The
server always answers in text frames (JSON), which both versions accept.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

VERSIONS = ("1.0.0", "2.0.0")
_USER_BROADCAST_PUSH = 3
_JSON_ENCODING = 1


class ProtocolError(ValueError):
    """A frame this server cannot read."""


@dataclass(frozen=True)
class Frame:
    join_ref: str | None
    ref: str | None
    topic: str
    event: str
    payload: dict[str, Any]


def decode(raw: str | bytes, vsn: str) -> Frame:
    if isinstance(raw, bytes):
        if vsn != "2.0.0":
            raise ProtocolError("binary frames need vsn 2.0.0")
        return _decode_user_broadcast_push(raw)
    try:
        data = json.loads(raw)
    except ValueError as exc:
        raise ProtocolError("frame is not JSON") from exc
    except RecursionError:
        raise ProtocolError("frame is nested too deeply to read") from None
    if vsn == "2.0.0":
        if not isinstance(data, list) or len(data) != 5:
            raise ProtocolError("a vsn 2.0.0 frame is a five-element array")
        join_ref, ref, topic, event, payload = data
    else:
        if not isinstance(data, dict):
            raise ProtocolError("a vsn 1.0.0 frame is an object")
        join_ref, ref = data.get("join_ref"), data.get("ref")
        topic, event, payload = data.get("topic"), data.get("event"), data.get("payload")
    if not isinstance(topic, str) or not isinstance(event, str):
        raise ProtocolError("topic and event must be strings")
    if not isinstance(payload, dict):
        payload = {}
    return Frame(_ref(join_ref), _ref(ref), topic, event, payload)


def encode(frame: Frame, vsn: str) -> str:
    if vsn == "2.0.0":
        return json.dumps([frame.join_ref, frame.ref, frame.topic, frame.event, frame.payload])
    return json.dumps(
        {
            "join_ref": frame.join_ref,
            "ref": frame.ref,
            "topic": frame.topic,
            "event": frame.event,
            "payload": frame.payload,
        }
    )


def _ref(value: Any) -> str | None:
    return None if value is None else str(value)


def _decode_user_broadcast_push(raw: bytes) -> Frame:
    """kind, then the byte lengths of join_ref, ref, topic, user event and
    metadata, then the payload's encoding; the fields; the payload."""
    if len(raw) < 7 or raw[0] != _USER_BROADCAST_PUSH:
        raise ProtocolError("unknown binary frame")
    sizes, encoding = raw[1:6], raw[6]
    offset, fields = 7, []
    for size in sizes:
        try:
            fields.append(raw[offset : offset + size].decode("utf-8"))
        except UnicodeDecodeError:
            raise ProtocolError("binary frame fields are not UTF-8") from None
        offset += size
    if offset > len(raw):
        raise ProtocolError("truncated binary frame")
    join_ref, ref, topic, user_event, metadata = fields
    body = raw[offset:]
    if encoding != _JSON_ENCODING:
        raise ProtocolError("only JSON broadcast payloads are supported here")
    try:
        user_payload = json.loads(body or b"{}")
        meta = json.loads(metadata) if metadata else {}
    except ValueError as exc:
        raise ProtocolError("broadcast payload is not JSON") from exc
    except RecursionError:
        raise ProtocolError("broadcast payload is nested too deeply to read") from None
    payload = {"type": "broadcast", "event": user_event, "payload": user_payload, **meta}
    return Frame(join_ref or None, ref or None, topic, "broadcast", payload)
