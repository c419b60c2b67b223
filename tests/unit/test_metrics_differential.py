"""Our EMF lines (shared.metrics) held to Powertools' Metrics, the library
they stand in for: the same measurements, recorded through both, give
CloudWatch the same metrics: namespace, dimensions, each metric's unit, and
the same sum for a count and the same values for a duration. The one
difference, by design: ours sums a count within an invocation (one value),
Powertools keeps each increment (many values of 1); CloudWatch's Sum is the
same, which is the statistic every alarm and graph of a count uses."""

from __future__ import annotations

import contextlib
import io
import json
import time
from collections import Counter
from typing import Any

import pytest
from aws_lambda_powertools.metrics import MetricUnit
from aws_lambda_powertools.metrics.provider.cloudwatch_emf.cloudwatch import (
    AmazonCloudWatchEMFProvider,
)
from hypothesis import given, settings
from hypothesis import strategies as st

from shared import metrics
from tests.support.emf import problems

pytestmark = pytest.mark.unit

UNITS = {"Count": MetricUnit.Count, "Milliseconds": MetricUnit.Milliseconds,
         "Seconds": MetricUnit.Seconds}  # fmt: skip
NAMES = st.sampled_from(["Requests", "Requests2xx", "JobsQueued", "Latency", "TimeToFirstToken",
                         "OldestUndeliveredAge", "ColdStarts"])  # fmt: skip
UNIT_OF = {"Latency": "Milliseconds", "TimeToFirstToken": "Milliseconds",
           "OldestUndeliveredAge": "Seconds"}  # fmt: skip
Recorded = list[tuple[str, float]]
measurements = st.lists(
    st.tuples(NAMES, st.integers(min_value=0, max_value=10_000).map(lambda v: v / 8)),
    min_size=1,
    max_size=250,
)


def _ours(recorded: Recorded) -> list[dict[str, Any]]:
    measured = metrics.MetricSet()
    for name, value in recorded:
        unit = UNIT_OF.get(name, "Count")
        measured.add(name, value, unit)
    documents = measured.documents(int(time.time() * 1000))
    return [{**document, "function": "token"} for document in documents]


def _powertools(recorded: Recorded) -> list[dict[str, Any]]:
    """Powertools' lines: those it prints itself when a set reaches 100
    metrics or a metric 100 values, and the rest when flushed."""
    provider = AmazonCloudWatchEMFProvider(namespace=metrics.NAMESPACE)
    provider.add_dimension(name="function", value="token")
    provider.add_dimension(name="stage", value=metrics.STAGE)
    printed = io.StringIO()
    with contextlib.redirect_stdout(printed):
        for name, value in recorded:
            provider.add_metric(name=name, unit=UNITS[UNIT_OF.get(name, "Count")], value=value)
    documents = [json.loads(line) for line in printed.getvalue().splitlines()]
    if provider.metric_set:
        documents.append(dict(provider.serialize_metric_set()))
    return documents


def _seen(documents: list[dict[str, Any]]) -> dict[str, Any]:
    """What CloudWatch takes from the lines: per metric its unit, and its
    values (a count as its sum)."""
    namespaces, dimension_sets, units = set(), set(), {}
    values: dict[str, list[float]] = {}
    for document in documents:
        assert problems(document) == []
        for directive in document["_aws"]["CloudWatchMetrics"]:
            namespaces.add(directive["Namespace"])
            dimension_sets |= {tuple(names) for names in directive["Dimensions"]}
            for definition in directive["Metrics"]:
                name = definition["Name"]
                units[name] = definition["Unit"]
                value = document[name]
                values.setdefault(name, []).extend(value if isinstance(value, list) else [value])
            for names in directive["Dimensions"]:
                for dimension in names:
                    dimension_sets.add((dimension, document[dimension]))
    return {
        "namespaces": namespaces,
        "dimensions": dimension_sets,
        "units": units,
        "values": {
            name: round(sum(v), 6) if units[name] == "Count" else Counter(v)
            for name, v in values.items()
        },
    }


@settings(max_examples=150, deadline=None)
@given(measurements)
def test_our_lines_give_cloudwatch_what_powertools_lines_give(recorded: Recorded) -> None:
    assert _seen(_ours(recorded)) == _seen(_powertools(recorded))


@pytest.mark.parametrize(
    "recorded",
    [
        [(f"Thing{i}", float(i)) for i in range(150)],  # more metrics than a line holds
        [("Latency", float(i)) for i in range(150)],  # more values than a metric holds
    ],
)
def test_more_than_a_line_holds_is_split_into_as_many_lines(recorded: Recorded) -> None:
    ours, theirs = _ours(recorded), _powertools(recorded)
    assert len(ours) == len(theirs) == 2
    assert _seen(ours) == _seen(theirs)
