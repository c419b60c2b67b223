"""The local Realtime endpoint reads realtime-js's frames and filters."""

from __future__ import annotations

import json

import pytest

from infra.dev.realtime.changes import Binding, InvalidBinding
from infra.dev.realtime.protocol import Frame, ProtocolError, decode, encode

pytestmark = pytest.mark.unit


def test_vsn_2_arrays_and_vsn_1_objects_carry_the_same_frame() -> None:
    frame = Frame("1", "2", "realtime:chat:a__b", "phx_join", {"config": {"private": True}})
    for vsn in ("2.0.0", "1.0.0"):
        assert decode(encode(frame, vsn), vsn) == frame
    assert json.loads(encode(frame, "2.0.0")) == ["1", "2", "realtime:chat:a__b", "phx_join",
                                                  {"config": {"private": True}}]  # fmt: skip


def test_the_binary_user_broadcast_push_decodes_as_realtime_js_encodes_it() -> None:
    # kind 3, sizes of join_ref, ref, topic, event, metadata, then JSON encoding (1)
    fields = [b"4", b"17", "realtime:chat:ü".encode(), b"typing", b""]
    body = json.dumps({"who": "ada"}).encode()
    raw = bytes([3, *(len(f) for f in fields), 1]) + b"".join(fields) + body
    assert decode(raw, "2.0.0") == Frame(
        "4", "17", "realtime:chat:ü", "broadcast",
        {"type": "broadcast", "event": "typing", "payload": {"who": "ada"}},
    )  # fmt: skip


@pytest.mark.parametrize("raw", [b"\x04abc", b"\x03\x09\x00\x00\x00\x00\x01", "not json", "[1, 2]"])
def test_unreadable_frames_are_refused(raw: str | bytes) -> None:
    with pytest.raises(ProtocolError):
        decode(raw, "2.0.0")


def test_bindings_match_event_table_and_filter() -> None:
    binding = Binding.parse({"event": "UPDATE", "schema": "public", "table": "intentions",
                             "filter": "location_id=eq.#lounge"})  # fmt: skip
    change = {"schema": "public", "table": "intentions", "type": "UPDATE"}
    assert binding.matches(change, {"location_id": "#lounge"})
    assert not binding.matches(change, {"location_id": "#other"})
    assert not binding.matches({**change, "type": "INSERT"}, {"location_id": "#lounge"})
    assert not binding.matches({**change, "table": "beings"}, {"location_id": "#lounge"})
    numbers = Binding.parse({"event": "*", "schema": "*", "filter": "n=gte.10"})
    assert numbers.matches(change, {"n": 10})
    assert not numbers.matches(change, {"n": 9})
    listed = Binding.parse({"event": "*", "schema": "public", "filter": "s=in.(a,b)"})
    assert listed.matches(change, {"s": "b"})
    assert not listed.matches(change, {"s": "c"})
    # The id the join reply hands back is stable for the same binding.
    assert binding.reply()["id"] == Binding.parse(binding.params).id


@pytest.mark.parametrize(
    "params",
    [
        {"event": "TRUNCATE", "schema": "public"},
        {"event": "*"},
        {"event": "*", "schema": "public", "filter": "a=like.x"},
    ],
)
def test_unsupported_bindings_are_refused(params: dict[str, str]) -> None:
    with pytest.raises(InvalidBinding):
        Binding.parse(params)
