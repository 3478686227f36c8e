"""The monitoring alarms judged the way CloudWatch judges them, on the records the service writes.

Amazon CloudWatch User Guide, "Using Amazon CloudWatch alarms" (section "Evaluating an alarm" and
"Configuring how CloudWatch alarms treat missing data"): each period the alarm compares the
statistic of its metric's datapoints with the threshold; with ``notBreaching`` a period without
data counts as within the threshold, so the alarm goes to OK (and notifies ``ok_actions``).
"Setting alarms on metrics created with the embedded metric format": EMF metrics are alarmed on
like any other metric, from the datapoints the log events create.

These tests feed the alarm specs of ``components/service_alarms.py`` the series that the
service's real EMF records (``service/emf.py``, checked against the EMF specification by
``tests/emf_spec.py``) create in CloudWatch, minute by minute.
"""

from __future__ import annotations

import asyncio
import operator
from pathlib import Path
from typing import Any

import pytest

from components.service_alarms import AlarmSpec, AlarmThresholds, alarm_specs
from service import metric_names as mn
from tests.emf_spec import check_emf, extracted
from tests.service.conftest import settings_for
from tests.service.helpers import scale_model, serving, write_model

COMPARE = {
    "GreaterThanOrEqualToThreshold": operator.ge,
    "GreaterThanThreshold": operator.gt,
}
STATISTICS = {"Sum": sum, "Maximum": max}


def alarm_state(spec: AlarmSpec, service: str, minute: list[dict[str, Any]]) -> str:
    """ALARM or OK after one minute of records, for a 1-out-of-1 alarm on the ServiceName
    series (for an M-out-of-M alarm: whether this minute breaches), with
    ``treat_missing_data=notBreaching`` (what ``create_alarms`` sets)."""
    assert spec.statistic in STATISTICS
    series = (mn.NAMESPACE, spec.metric.name, ((mn.SERVICE, service),))
    values = []
    for doc in minute:
        check_emf(doc)
        if series in extracted(doc):
            values.append(doc[spec.metric.name])
    if not values:
        return "OK"  # notBreaching
    breached = COMPARE[spec.comparison](STATISTICS[spec.statistic](values), spec.threshold)
    return "ALARM" if breached else "OK"


def test_model_load_alarm_lasts_as_long_as_the_version_does_not_serve(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A version that fails to load is retried only when its file changes (no retry storm), so
    the failure is counted once. The alarm must still say ALARM the minutes after, while the
    version is not serving, and OK only once it serves: an alarm on the one-off failure count
    would breach one minute and then, the next minute having no datapoint (notBreaching),
    notify OK while nothing was fixed."""
    (spec,) = [s for s in alarm_specs(AlarmThresholds()) if s.role == "model-load-failed"]

    async def never(*args: object) -> None:  # the test flushes; no periodic publisher
        await asyncio.Event().wait()

    monkeypatch.setattr("service.app.publish_periodically", never)
    root = tmp_path / "models"
    broken = root / "broken" / "7" / "model.onnx"
    broken.parent.mkdir(parents=True)
    broken.write_bytes(b"garbage")
    write_model(root / "scale" / "1" / "model.onnx", scale_model(2.0))
    with serving(settings_for(root)) as server:
        emf = server.app.state.metrics.emf
        registry = server.app.state.plane.registry
        states = [alarm_state(spec, "onnx-serving", emf.flush(*registry.serving_state()))]
        for _ in range(3):  # idle minutes, nothing changed on disk
            registry.sync()
            states.append(alarm_state(spec, "onnx-serving", emf.flush(*registry.serving_state())))
        write_model(broken, scale_model(3.0))  # the operator fixes the file
        registry.sync()
        states.append(alarm_state(spec, "onnx-serving", emf.flush(*registry.serving_state())))
    assert states == ["ALARM", "ALARM", "ALARM", "ALARM", "OK"]


def test_no_alarm_fires_on_an_idle_healthy_service() -> None:
    """An idle service with every version serving: no alarm breaches, and none is left without
    data (each watches a series that is published, or treats its absence as not breaching)."""
    from service.emf import EmfMetrics

    emf = EmfMetrics("svc")
    minute = emf.flush({"CPUExecutionProvider": 1}, 0)
    for spec in alarm_specs(AlarmThresholds()):
        if spec.statistic is None:  # the percentile alarm: no traffic, no datapoint, OK
            assert not any(spec.metric.name in d for d in minute)
            continue
        assert alarm_state(spec, "svc", minute) == "OK", spec.role
