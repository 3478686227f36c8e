"""The service's CloudWatch metrics: EMF records that follow the specification (tests/emf_spec.py),
carry the names of service/metric_names.py, and count what really happened."""

from __future__ import annotations

import asyncio
import json
import logging
import math
from collections.abc import Iterator
from pathlib import Path

import httpx
import numpy as np
import pytest
from pydantic import ValidationError

from service import metric_names as mn
from service.emf import MAX_BINS, Distribution, EmfMetrics, publish_periodically
from service.errors import ServerBusy
from service.infer_route import InferRoute
from service.logs import configure_logging
from service.metrics import Metrics
from service.settings import Settings
from tests.emf_spec import check_emf, extracted
from tests.service.conftest import settings_for
from tests.service.helpers import scale_model, serving, write_model


def _by_kind(docs: list[dict]) -> dict[tuple, dict]:
    """Index records by (first metric name, Model, Version, ExecutionProvider)."""
    out = {}
    for d in docs:
        first = d["_aws"]["CloudWatchMetrics"][0]["Metrics"][0]["Name"]
        out[(first, d.get(mn.MODEL), d.get(mn.VERSION), d.get(mn.PROVIDER))] = d
    return out


def _infer_body(rows: int) -> dict:
    return {
        "inputs": [{"name": "x", "datatype": "FP32", "shape": [rows, 4], "data": [1.0] * rows * 4}]
    }


@pytest.fixture
def manual_flushes(monkeypatch: pytest.MonkeyPatch) -> None:
    """No periodic publisher in the served app: the test flushes itself (a minute boundary
    during the test must not take records away from it)."""

    async def never(*args: object) -> None:
        await asyncio.Event().wait()

    monkeypatch.setattr("service.app.publish_periodically", never)


@pytest.mark.usefixtures("manual_flushes")
def test_records_of_a_live_server_follow_the_spec_and_count_what_happened(tmp_path: Path) -> None:
    root = tmp_path / "models"
    write_model(root / "scale" / "1" / "model.onnx", scale_model(2.0))
    write_model(root / "scale" / "2" / "model.onnx", scale_model(3.0))
    broken = root / "broken" / "1" / "model.onnx"
    broken.parent.mkdir(parents=True)
    broken.write_bytes(b"not an onnx model")
    settings = settings_for(root, emf_service_name="onnx-test")
    with serving(settings) as server, httpx.Client(base_url=server.base, timeout=30) as http:
        emf = server.app.state.metrics.emf
        registry = server.app.state.plane.registry
        emf.flush()  # start a clean interval
        for _ in range(3):
            assert http.post("/v2/models/scale/infer", json=_infer_body(2)).status_code == 200
        assert http.post("/v2/models/scale/versions/1/infer", json=_infer_body(1)).is_success
        assert http.post("/v2/models/scale/infer", json={"inputs": []}).status_code == 400
        assert http.post("/v2/models/nope/infer", json=_infer_body(1)).status_code == 404
        assert http.post("/v2/models/broken/infer", json=_infer_body(1)).status_code == 503
        assert http.get("/health").status_code == 200  # not an inference request: not counted
        docs = emf.flush(*registry.serving_state())
        # the load failure happened before the clean interval: it was in the first flush
    for doc in docs:
        check_emf(doc)
        json.dumps(doc)  # plain JSON types only
    kinds = _by_kind(docs)
    scale = kinds[("Requests", "scale", None, None)]
    assert (scale["Requests"], scale["Errors4xx"], scale["Errors5xx"]) == (5, 1, 0)
    assert scale["RequestsShed"] == 0
    assert scale["Latency"]["Count"] == 4  # successes only
    unknown = kinds[("Requests", mn.UNKNOWN_MODEL, None, None)]  # URLs are not dimension values
    assert (unknown["Requests"], unknown["Errors4xx"]) == (1, 1)
    broken_doc = kinds[("Requests", "broken", None, None)]
    assert (broken_doc["Errors5xx"], broken_doc["RequestsShed"]) == (1, 0)  # not ready != shed
    v2 = kinds[("QueueTime", "scale", "2", None)]
    assert v2["BatchSize"]["Count"] == 3 and v2["BatchSize"]["Sum"] == 6  # three runs of 2 rows
    assert v2["QueueTime"]["Count"] == 3
    v1 = kinds[("QueueTime", "scale", "1", None)]
    assert v1["InferenceTime"]["Count"] == 1
    ready = kinds[("ModelVersionsReady", None, None, "CPUExecutionProvider")]
    assert ready["ModelVersionsReady"] == 2
    service = kinds[("ConcurrentRequests", None, None, None)]
    assert service["ModelVersionsUnavailable"] == 1
    assert service["MaxConcurrentRequests"] == 1  # one request at a time
    assert 0 < service["ConcurrentRequests"] < 1
    assert all(d[mn.SERVICE] == "onnx-test" for d in docs)


@pytest.mark.usefixtures("manual_flushes")
def test_a_version_that_fails_to_load_is_counted_once_per_attempt(tmp_path: Path) -> None:
    root = tmp_path / "models"
    broken = root / "broken" / "7" / "model.onnx"
    broken.parent.mkdir(parents=True)
    broken.write_bytes(b"garbage")
    write_model(root / "scale" / "1" / "model.onnx", scale_model(2.0))
    with serving(settings_for(root)) as server:
        emf = server.app.state.metrics.emf
        registry = server.app.state.plane.registry
        docs = emf.flush(*registry.serving_state())
        registry.sync()  # unchanged file: not retried, not counted again
        again = emf.flush(*registry.serving_state())
    (failure,) = [d for d in docs if mn.MODEL_LOAD_FAILURES.name in d]
    check_emf(failure)
    assert (failure[mn.MODEL], failure[mn.VERSION], failure["ModelLoadFailures"]) == (
        "broken",
        "7",
        1,
    )
    assert (mn.NAMESPACE, "ModelLoadFailures", (("ServiceName", "onnx-serving"),)) in extracted(
        failure
    )
    assert not any(mn.MODEL_LOAD_FAILURES.name in d for d in again)


def test_every_metric_is_published_with_the_catalogue_name_unit_and_dimensions() -> None:
    emf = EmfMetrics("svc")
    emf.request_started()
    emf.request_finished("m", 200, 0.01, shed=False)
    emf.batch("m", 3, [0.001], 0.002, 1)
    emf.load_failed("m", 4)
    docs = emf.flush({"CUDAExecutionProvider": 1}, 1)
    seen = set()
    for doc in docs:
        check_emf(doc)
        for directive in doc["_aws"]["CloudWatchMetrics"]:
            assert directive["Namespace"] == mn.NAMESPACE
            dims = tuple(tuple(d) for d in directive["Dimensions"])
            for definition in directive["Metrics"]:
                metric = mn.BY_NAME[definition["Name"]]
                assert definition["Unit"] == metric.unit
                assert dims == metric.dimensions
                assert isinstance(doc[metric.name], dict) == metric.distribution
                seen.add(metric.name)
    assert seen == set(mn.BY_NAME)  # the catalogue lists exactly what is emitted


def test_shed_requests_are_503s_from_a_full_queue_only() -> None:
    """Through the real infer route: a ServerBusy (queue full) is shed, a 503 for a model that
    is not ready is an error but not shedding."""

    class Plane:
        def __init__(self, exc: Exception) -> None:
            self.exc = exc
            self.registry = self

        def knows(self, name: str) -> bool:
            return True

        async def infer(self, *args: object, **kwargs: object) -> tuple[bytes, None]:
            raise self.exc

    from service.errors import ModelNotReady

    emf = EmfMetrics("svc")
    for exc in (ServerBusy("queue full"), ModelNotReady("loading")):
        route = InferRoute(None, Plane(exc), Metrics(emf=emf), 1000)  # type: ignore[arg-type]
        scope = {"type": "http", "path": "/v2/models/m/infer", "method": "POST", "headers": []}

        async def receive() -> dict:
            return {"type": "http.request", "body": b"{}", "more_body": False}

        async def send(message: dict) -> None:
            return None

        asyncio.run(route(scope, receive, send))
    (doc, *_) = emf.flush()
    assert (doc["Requests"], doc["Errors5xx"], doc["RequestsShed"]) == (2, 2, 1)


def test_concurrency_is_busy_time_over_the_interval() -> None:
    """Little's law: four requests of 0.5 s in a 10 s interval = 0.2 in flight on average."""
    now = [100.0]
    emf = EmfMetrics("svc", clock=lambda: now[0])
    for _ in range(2):
        emf.request_started()
    for _ in range(2):
        emf.request_finished("m", 200, 0.5, shed=False)
    emf.request_started()
    emf.request_finished("m", 200, 0.5, shed=False)
    emf.request_started()
    emf.request_finished("m", 200, 0.5, shed=False)
    now[0] = 110.0
    service = emf.flush()[-1]
    assert service["ConcurrentRequests"] == pytest.approx(0.2)
    assert service["MaxConcurrentRequests"] == 2
    now[0] = 170.0
    idle = emf.flush()  # idle interval: the service record is still written, with zeros
    assert [d["ConcurrentRequests"] for d in idle] == [0.0]
    assert idle[0]["MaxConcurrentRequests"] == 0


def test_distribution_keeps_percentiles_within_a_bin_and_at_most_100_bins() -> None:
    rng = np.random.default_rng(7)
    samples = rng.lognormal(mean=1.0, sigma=1.0, size=20_000)
    dist = Distribution()
    for v in samples:
        dist.add(float(v))
    out = dist.to_emf()
    assert out["Count"] == len(samples) and out["Sum"] == pytest.approx(samples.sum(), rel=1e-6)
    values, counts = np.array(out["Values"]), np.array(out["Counts"])
    for q in (0.5, 0.9, 0.99):
        cdf = np.cumsum(counts) / counts.sum()
        approx = values[np.searchsorted(cdf, q)]
        assert approx == pytest.approx(np.quantile(samples, q), rel=0.1)
    wide = Distribution()  # 12 decades: more than 100 bins of 10 %, merged down
    for exponent in np.linspace(-6, 6, 5000):
        wide.add(float(10**exponent))
    wide.add(0.0)
    emitted = wide.to_emf()
    assert len(emitted["Values"]) <= MAX_BINS and emitted["Values"][0] == 0.0
    assert sum(emitted["Counts"]) == 5001 == emitted["Count"]
    assert emitted["Values"] == sorted(emitted["Values"])
    assert all(math.isfinite(v) for v in emitted["Values"])


@pytest.fixture
def restore_logging() -> Iterator[None]:
    root = logging.getLogger()
    saved = (root.handlers[:], root.level)
    try:
        yield
    finally:
        root.handlers[:], root.level = saved[0], saved[1]


def test_publisher_writes_one_json_line_per_record_and_flushes_when_stopped(
    restore_logging: None, capsys: pytest.CaptureFixture[str]
) -> None:
    configure_logging("WARNING")  # metrics do not depend on LOG_LEVEL
    emf = EmfMetrics("svc")

    async def go() -> None:
        task = asyncio.create_task(publish_periodically(emf, 0.05, lambda: ({}, 0)))
        await asyncio.sleep(0.12)  # two periodic flushes
        emf.request_started()
        emf.request_finished("m", 200, 0.001, shed=False)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task

    asyncio.run(go())
    lines = [ln for ln in capsys.readouterr().out.splitlines() if ln.strip()]
    docs = [json.loads(ln) for ln in lines]
    assert all("_aws" in d and "level" not in d for d in docs)  # the document alone
    assert sum(1 for d in docs if "ConcurrentRequests" in d) >= 2  # periodic + final
    assert docs[-2]["Requests"] == 1  # the last partial interval was not lost
    for doc in docs:
        check_emf(doc)


def test_emf_can_be_turned_off_and_bad_names_are_refused(tmp_path: Path) -> None:
    with serving(settings_for(tmp_path, emf_metrics=False)) as server:
        assert server.app.state.metrics.emf is None
    with pytest.raises(ValidationError, match="AWS/"):
        Settings(emf_namespace="AWS/ECS")
    with pytest.raises(ValidationError, match="emf_service_name"):
        Settings(emf_service_name="has space")


@pytest.mark.parametrize("seconds", [7, 45, 90, 300, 3600])
def test_a_flush_interval_that_leaves_minutes_without_data_is_refused(seconds: float) -> None:
    """Application Auto Scaling User Guide, "Target tracking scaling policies": "If the metric
    is missing data points, this causes the CloudWatch alarm state to change to
    INSUFFICIENT_DATA. When this happens, Application Auto Scaling cannot scale". The stack's
    scaling policy and alarms evaluate 1-minute periods of these metrics, so the service
    flushes at least once a minute, on a divisor of 60 s (the same datapoints every minute)."""
    with pytest.raises(ValidationError, match="emf_interval_s"):
        Settings(emf_interval_s=seconds)
    for ok in (1, 4, 15, 30, 60):
        assert Settings(emf_interval_s=ok).emf_interval_s == ok


def test_every_metric_and_setting_is_documented() -> None:
    root = Path(__file__).resolve().parents[2]
    doc = (root / "docs" / "observability.md").read_text()
    for metric in mn.ALL:
        assert f"| `{metric.name}` | {metric.unit}" in doc, metric.name
    readme = (root / "README.md").read_text()
    for name in Settings.model_fields:
        if name.startswith("emf_"):
            assert f"| `{name.upper()}` |" in readme, name


def test_a_record_is_stamped_with_the_middle_of_its_interval() -> None:
    """Flushes happen on minute boundaries; the middle of the interval puts each datapoint in
    the CloudWatch minute it describes, not the next one."""
    emf = EmfMetrics("svc")
    start = 1_800_000_000.0  # a minute boundary
    emf.flush(now=start)
    (doc,) = emf.flush(now=start + 60)
    assert doc["_aws"]["Timestamp"] == (start + 30) * 1000
