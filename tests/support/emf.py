"""CloudWatch's Embedded Metric Format, checked as its specification
("Specification: Embedded metric format", CloudWatch User Guide) states it,
independently of shared.metrics: what CloudWatch Logs would refuse to turn
into metrics is a problem here.

The rules: the line is one JSON object whose `_aws` member holds a
`Timestamp` (milliseconds since the epoch, within two weeks before and two
hours after now, as CloudWatch accepts) and `CloudWatchMetrics`, an array
of directives. A directive has exactly `Namespace` (a string), `Dimensions`
(an array of dimension sets: arrays of at most 30 names) and `Metrics` (at
most 100 definitions of a `Name`, an optional `Unit` among CloudWatch's
units and an optional `StorageResolution` of 1 or 60). Every dimension named
is a member of the root whose value is a string; every metric named is a
member whose value is a number or an array of at most 100 numbers.
"""

from __future__ import annotations

import json
import math
import time
from collections.abc import Iterable
from typing import Any

UNITS = frozenset(
    {
        "Seconds", "Microseconds", "Milliseconds", "Bytes", "Kilobytes", "Megabytes",
        "Gigabytes", "Terabytes", "Bits", "Kilobits", "Megabits", "Gigabits", "Terabits",
        "Percent", "Count", "Bytes/Second", "Kilobytes/Second", "Megabytes/Second",
        "Gigabytes/Second", "Terabytes/Second", "Bits/Second", "Kilobits/Second",
        "Megabits/Second", "Gigabits/Second", "Terabits/Second", "Count/Second", "None",
    }
)  # fmt: skip
MAX_DIMENSIONS = 30
MAX_METRICS = 100
MAX_VALUES = 100
TWO_WEEKS_MS = 14 * 24 * 3600 * 1000
TWO_HOURS_MS = 2 * 3600 * 1000


def _number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)


def problems(document: Any, now_ms: int | None = None) -> list[str]:
    """Everything in `document` (a parsed line) that breaks the format."""
    found: list[str] = []
    if not isinstance(document, dict):
        return ["the line is not a JSON object"]
    aws = document.get("_aws")
    if not isinstance(aws, dict):
        return ["no _aws object"]
    now = int(time.time() * 1000) if now_ms is None else now_ms
    stamp = aws.get("Timestamp")
    if not isinstance(stamp, int) or isinstance(stamp, bool):
        found.append(f"_aws.Timestamp is not an integer of milliseconds: {stamp!r}")
    elif not now - TWO_WEEKS_MS <= stamp <= now + TWO_HOURS_MS:
        found.append(f"_aws.Timestamp {stamp} is outside what CloudWatch accepts")
    directives = aws.get("CloudWatchMetrics")
    if not isinstance(directives, list) or not directives:
        return [*found, "_aws.CloudWatchMetrics is not a non-empty array"]
    for index, directive in enumerate(directives):
        where = f"CloudWatchMetrics[{index}]"
        if not isinstance(directive, dict):
            found.append(f"{where} is not an object")
            continue
        extra = set(directive) - {"Namespace", "Dimensions", "Metrics"}
        if extra:
            found.append(f"{where} has members the format does not define: {sorted(extra)}")
        namespace = directive.get("Namespace")
        if not isinstance(namespace, str) or not 1 <= len(namespace) <= 1024:
            found.append(f"{where}.Namespace is not a string of 1-1024 characters")
        found += _dimensions(document, directive.get("Dimensions"), where)
        found += _metrics(document, directive.get("Metrics"), where)
    return found


def _dimensions(document: dict[str, Any], sets: Any, where: str) -> list[str]:
    if not isinstance(sets, list):
        return [f"{where}.Dimensions is not an array"]
    found = []
    for names in sets:
        if not isinstance(names, list) or not all(isinstance(n, str) for n in names):
            found.append(f"{where}.Dimensions holds a set that is not an array of names")
            continue
        if len(names) > MAX_DIMENSIONS:
            found.append(f"{where}: a dimension set of {len(names)} names (at most 30)")
        for name in names:
            value = document.get(name)
            if not isinstance(value, str) or not 1 <= len(value) <= 1024:
                found.append(f"dimension {name!r} has no string value in the line: {value!r}")
    return found


def _metrics(document: dict[str, Any], definitions: Any, where: str) -> list[str]:
    if not isinstance(definitions, list):
        return [f"{where}.Metrics is not an array"]
    found = []
    if len(definitions) > MAX_METRICS:
        found.append(f"{where}: {len(definitions)} metrics (at most 100)")
    names = [d.get("Name") if isinstance(d, dict) else None for d in definitions]
    if len(set(map(str, names))) != len(names):
        found.append(f"{where}: a metric is defined twice")
    for definition in definitions:
        if not isinstance(definition, dict):
            found.append(f"{where}.Metrics holds a definition that is not an object")
            continue
        extra = set(definition) - {"Name", "Unit", "StorageResolution"}
        if extra:
            found.append(f"metric definition with undefined members {sorted(extra)}")
        name = definition.get("Name")
        if not isinstance(name, str) or not 1 <= len(name) <= 1024:
            found.append(f"metric name {name!r} is not a string of 1-1024 characters")
            continue
        if "Unit" in definition and definition["Unit"] not in UNITS:
            found.append(f"metric {name}: unit {definition['Unit']!r} is not CloudWatch's")
        if definition.get("StorageResolution", 60) not in (1, 60):
            found.append(f"metric {name}: StorageResolution is neither 1 nor 60")
        value = document.get(name)
        if isinstance(value, list):
            if not value or len(value) > MAX_VALUES or not all(map(_number, value)):
                found.append(f"metric {name}: its array is not 1-100 numbers: {value!r}")
        elif not _number(value):
            found.append(f"metric {name} has no numeric value in the line: {value!r}")
    return found


def emf_lines(output: str) -> list[dict[str, Any]]:
    """The lines of a function's output that carry metrics."""
    lines = []
    for line in output.splitlines():
        if line.startswith("{") and '"_aws"' in line:
            document = json.loads(line)
            if isinstance(document, dict) and "_aws" in document:
                lines.append(document)
    return lines


def valid_emf_lines(output: str) -> list[dict[str, Any]]:
    """The metric lines of `output`, each checked against the format."""
    lines = emf_lines(output)
    for document in lines:
        found = problems(document)
        assert not found, (found, document)
    return lines


def totals(lines: Iterable[dict[str, Any]]) -> dict[str, list[float]]:
    """Every value of every metric the lines carry, by name."""
    values: dict[str, list[float]] = {}
    for document in lines:
        for directive in document["_aws"]["CloudWatchMetrics"]:
            for definition in directive["Metrics"]:
                value = document[definition["Name"]]
                values.setdefault(definition["Name"], []).extend(
                    value if isinstance(value, list) else [value]
                )
    return values
