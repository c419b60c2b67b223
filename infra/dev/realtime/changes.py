"""postgres_changes subscriptions: which bindings a change matches, and the
payload realtime-js expects for it."""

from __future__ import annotations

import zlib
from dataclasses import dataclass
from typing import Any

from infra.dev.realtime.database import Column

EVENTS = ("*", "INSERT", "UPDATE", "DELETE")
_OPERATORS = ("eq", "neq", "lt", "lte", "gt", "gte", "in")


class InvalidBinding(ValueError):
    """A postgres_changes binding this endpoint cannot follow."""


@dataclass(frozen=True)
class Binding:
    """One `.on('postgres_changes', {...})` of a channel; `id` is what the
    join reply hands back and each change's `ids` refer to."""

    id: int
    event: str
    schema: str
    table: str | None
    filter: str | None
    params: dict[str, Any]

    @classmethod
    def parse(cls, params: Any) -> Binding:
        if not isinstance(params, dict):
            raise InvalidBinding("a postgres_changes binding is an object")
        event, schema = str(params.get("event", "*")).upper(), params.get("schema")
        table, row_filter = params.get("table"), params.get("filter")
        if event not in EVENTS or not isinstance(schema, str) or not schema:
            raise InvalidBinding(f"unsupported postgres_changes binding: {params}")
        if row_filter:
            _parse_filter(str(row_filter))
        stable = f"{event}|{schema}|{table}|{row_filter}".encode()
        return cls(zlib.crc32(stable), event, schema, table or None, row_filter or None, params)

    def reply(self) -> dict[str, Any]:
        return {**self.params, "id": self.id}

    def covers(self, change: dict[str, Any]) -> bool:
        """The change's event, schema and table are this binding's (filter aside)."""
        return (
            self.event in ("*", change["type"])
            and self.schema in ("*", change["schema"])
            and self.table in (None, "*", change["table"])
        )

    def matches(self, change: dict[str, Any], record: dict[str, Any] | None) -> bool:
        if not self.covers(change):
            return False
        if self.filter is None:
            return True
        column, operator, value = _parse_filter(self.filter)
        return record is not None and _compare(record.get(column), operator, value)


def _parse_filter(text: str) -> tuple[str, str, str]:
    column, _, rest = text.partition("=")
    operator, _, value = rest.partition(".")
    if not column or operator not in _OPERATORS:
        raise InvalidBinding(f"unsupported postgres_changes filter: {text}")
    return column, operator, value


def _compare(actual: Any, operator: str, expected: str) -> bool:
    if actual is None:
        return False
    if operator == "in":
        options = [v.strip().strip('"') for v in expected.strip("()").split(",")]
        return _text(actual) in options
    if operator in ("eq", "neq"):
        return (_text(actual) == expected) == (operator == "eq")
    try:
        left, right = float(actual), float(expected)
    except (TypeError, ValueError):
        left, right = _text(actual), expected  # type: ignore[assignment]
    return {"lt": left < right, "lte": left <= right, "gt": left > right, "gte": left >= right}[
        operator
    ]


def _text(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


def change_payload(
    change: dict[str, Any], columns: list[Column], record: dict[str, Any] | None
) -> dict[str, Any]:
    """`data` as Realtime sends it. Tables keep the default replica identity,
    so an update's or delete's old record carries the primary key only."""
    data: dict[str, Any] = {
        "schema": change["schema"],
        "table": change["table"],
        "commit_timestamp": change.get("commit_timestamp"),
        "type": change["type"],
        "columns": [{"name": c.name, "type": c.type} for c in columns],
        "errors": None,
    }
    if change["type"] in ("INSERT", "UPDATE"):
        data["record"] = record
    if change["type"] in ("UPDATE", "DELETE"):
        data["old_record"] = change["keys"]
    return data
