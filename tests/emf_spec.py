"""A checker for CloudWatch Embedded Metric Format documents, written from the specification.

Source: "Specification: Embedded metric format", Amazon CloudWatch User Guide,
https://docs.aws.amazon.com/AmazonCloudWatch/latest/monitoring/CloudWatch_Embedded_Metric_Format_Specification.html
and, for its machine-readable part, the JSON schema that AWS's EMF libraries test against
(awslabs/aws-embedded-metrics-dotnet, SerialiserSchemaTests). What is encoded:

- root node: a JSON object with the member ``_aws`` (Metadata object);
- Metadata: ``Timestamp`` (integer, milliseconds since the epoch) and ``CloudWatchMetrics`` (an
  array of MetricDirective objects);
- MetricDirective: ``Namespace`` (string), ``Dimensions`` (array of DimensionSets, each an array
  of dimension names, "a DimensionSet MUST NOT contain more than 30 dimension keys"), ``Metrics``
  (array of MetricDefinition, "MUST NOT contain more than 100 MetricDefinition objects");
  "objects defined by this specification MUST NOT contain any additional members";
- MetricDefinition: ``Name`` (string, required), ``Unit`` (one of CloudWatch's units),
  ``StorageResolution`` (1 or 60) optional;
- "The root node MUST contain all Target Members defined by the references in the
  MetricDirective": every dimension name is a root member whose value is a string, every metric
  name a root member whose value is a number or an array of at most 100 numbers;
- histogram values (``Values``/``Counts`` plus ``Max``/``Min``/``Count``/``Sum``), as AWS's EMF
  library emits them (awslabs/aws-embedded-metrics-java, model/Histogram.java): Values and Counts
  of equal length, at most 100 bins, Count = sum(Counts), Min <= every value <= Max;
- CloudWatch accepts metric timestamps up to two weeks old and two hours ahead (PutMetricData).
"""

from __future__ import annotations

import time
from typing import Any

import jsonschema

UNITS = (
    "Seconds", "Microseconds", "Milliseconds", "Bytes", "Kilobytes", "Megabytes", "Gigabytes",
    "Terabytes", "Bits", "Kilobits", "Megabits", "Gigabits", "Terabits", "Percent", "Count",
    "Bytes/Second", "Kilobytes/Second", "Megabytes/Second", "Gigabytes/Second",
    "Terabytes/Second", "Bits/Second", "Kilobits/Second", "Megabits/Second", "Gigabits/Second",
    "Terabits/Second", "Count/Second", "None",
)  # fmt: skip

SCHEMA: dict[str, Any] = {
    "type": "object",
    "required": ["_aws"],
    "properties": {
        "_aws": {
            "type": "object",
            "required": ["Timestamp", "CloudWatchMetrics"],
            "properties": {
                "Timestamp": {"type": "integer", "minimum": 0},
                "CloudWatchMetrics": {
                    "type": "array",
                    "minItems": 1,
                    "items": {
                        "type": "object",
                        "required": ["Namespace", "Dimensions", "Metrics"],
                        "additionalProperties": False,
                        "properties": {
                            "Namespace": {"type": "string", "minLength": 1, "maxLength": 255},
                            "Dimensions": {
                                "type": "array",
                                "items": {
                                    "type": "array",
                                    "maxItems": 30,
                                    "items": {"type": "string", "minLength": 1},
                                },
                            },
                            "Metrics": {
                                "type": "array",
                                "maxItems": 100,
                                "items": {
                                    "type": "object",
                                    "required": ["Name"],
                                    "additionalProperties": False,
                                    "properties": {
                                        "Name": {"type": "string", "minLength": 1},
                                        "Unit": {"enum": list(UNITS)},
                                        "StorageResolution": {"enum": [1, 60]},
                                    },
                                },
                            },
                        },
                    },
                },
            },
        }
    },
}


def _number(value: object) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def _check_value(name: str, value: object) -> None:
    if _number(value):
        return
    if isinstance(value, list):
        assert 0 < len(value) <= 100 and all(_number(v) for v in value), (name, value)
        return
    assert isinstance(value, dict), f"metric {name}: not a number, array or histogram: {value!r}"
    assert set(value) == {"Values", "Counts", "Max", "Min", "Count", "Sum"}, (name, value)
    values, counts = value["Values"], value["Counts"]
    assert len(values) == len(counts) and 0 < len(values) <= 100, (name, len(values))
    assert all(_number(v) for v in values) and all(isinstance(c, int) and c > 0 for c in counts)
    assert value["Count"] == sum(counts), (name, value)
    assert value["Min"] <= min(values) and max(values) <= value["Max"], (name, value)


def check_emf(doc: dict[str, Any], now_s: float | None = None) -> None:
    """Raise if ``doc`` is not an EMF document CloudWatch would extract every metric from."""
    jsonschema.validate(doc, SCHEMA)
    now_ms = (time.time() if now_s is None else now_s) * 1000
    stamp = doc["_aws"]["Timestamp"]
    assert now_ms - 14 * 86400_000 < stamp < now_ms + 2 * 3600_000, f"Timestamp {stamp}"
    for directive in doc["_aws"]["CloudWatchMetrics"]:
        assert not directive["Namespace"].startswith("AWS/")
        for dimension_set in directive["Dimensions"]:
            for key in dimension_set:
                assert isinstance(doc.get(key), str) and doc[key], f"dimension {key} missing"
        names = [m["Name"] for m in directive["Metrics"]]
        assert len(names) == len(set(names)), names
        for name in names:
            assert name in doc, f"metric {name} has no member"
            _check_value(name, doc[name])


def extracted(doc: dict[str, Any]) -> set[tuple[str, str, tuple[tuple[str, str], ...]]]:
    """(namespace, metric, dimensions) series CloudWatch creates from one document."""
    out = set()
    for directive in doc["_aws"]["CloudWatchMetrics"]:
        for metric in directive["Metrics"]:
            for dimension_set in directive["Dimensions"]:
                dims = tuple(sorted((k, doc[k]) for k in dimension_set))
                out.add((directive["Namespace"], metric["Name"], dims))
    return out
