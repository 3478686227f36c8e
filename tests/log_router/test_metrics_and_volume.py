"""Metrics through the router, and what the router costs in CloudWatch ingestion.

The service's EMF records (service/emf.py) and its ordinary lines are printed by its own logging
setup, wrapped as FireLens delivers them and run through log_router/custom.conf in the emulation
of tests/log_router/fluentbit.py (see test_routing.py for what that covers).
"""

from __future__ import annotations

import gzip
import json
import logging
from collections.abc import Callable, Iterator
from dataclasses import dataclass

import pytest

from service.emf import EmfMetrics
from service.emf import write as emf_write
from service.logs import configure_logging
from tests.emf_spec import check_emf, extracted
from tests.log_router.fluentbit import Pipeline, dockerfile_copies, firelens_record
from tests.log_router.test_routing import (
    ENV,
    ERRORS,
    INGESTED_AT,
    METRICS,
    ROUTER_DIR,
    TAG,
    request,
)

CLOUDWATCH_EVENT_OVERHEAD = 26  # bytes CloudWatch Logs adds per event (PutLogEvents sizing)


@pytest.fixture
def service_logging(capsys: pytest.CaptureFixture[str]) -> Iterator[Callable[[], str]]:
    """The service's logging as in production, set up when first read (inside the test, so it
    writes to the stdout capsys captures); yields a reader of what it printed."""
    root = logging.getLogger()
    saved = (root.handlers[:], root.level)
    configured = False

    def printed() -> str:
        nonlocal configured
        if not configured:
            configure_logging("INFO")
            configured = True
            capsys.readouterr()
            return ""
        return capsys.readouterr().out

    try:
        yield printed
    finally:
        root.handlers[:], root.level = saved[0], saved[1]


def _pipeline() -> Pipeline:
    return Pipeline(ROUTER_DIR / "custom.conf", dockerfile_copies(ROUTER_DIR / "Dockerfile"), ENV)


def _one_interval_of_metrics() -> EmfMetrics:
    emf = EmfMetrics("onnx-prod")
    for i in range(200):
        emf.request_started()
        emf.request_finished("resnet50", 200 if i % 50 else 503, 0.004 + i * 1e-5, i % 100 == 0)
    emf.batch("resnet50", 3, [0.001] * 8, 0.012, 8)
    emf.load_failed("resnet50", 4)
    return emf


def test_emf_records_reach_only_the_metrics_group_still_valid_emf(
    service_logging: Callable[[], str],
) -> None:
    """Each record the service prints arrives in the metrics output, per task, and is still an
    EMF document CloudWatch extracts the same metrics from after parsing and FireLens's keys."""
    service_logging()
    emf_write(_one_interval_of_metrics().flush({"CUDAExecutionProvider": 2}, 1))
    printed = [ln for ln in service_logging().splitlines() if ln]
    assert len(printed) == 5  # model, version, load failure, provider, service
    for line in printed:
        pipeline = _pipeline()
        pipeline.emit(TAG, firelens_record(line), at=INGESTED_AT)
        (delivered,) = pipeline.delivered
        assert delivered.output == METRICS
        assert delivered.event.tag == f"metrics.{TAG}"  # stream "task-metrics.<tag>": per task
        doc = delivered.event.record
        check_emf(doc)
        assert extracted(doc) == extracted(json.loads(line))
        assert doc["ecs_task_arn"].endswith(TAG.rsplit("-", 1)[1])  # FireLens metadata kept


def test_errors_of_the_metrics_code_are_logs_not_metrics(
    service_logging: Callable[[], str],
) -> None:
    """A failing flush is logged by service.app: it reaches the error group and the archive, not
    the metrics output (only EMF records carry logger service.emf)."""
    from service import emf as emf_module

    service_logging()

    def broken_state() -> tuple[dict[str, int], int]:
        raise RuntimeError("registry gone")

    emf_module._flush(EmfMetrics("x"), broken_state)
    (line,) = [ln for ln in service_logging().splitlines() if ln]
    pipeline = _pipeline()
    pipeline.emit(TAG, firelens_record(line), at=INGESTED_AT)
    assert sorted(d.output for d in pipeline.delivered) == [ERRORS, "s3"]


# -- log volume -----------------------------------------------------------------------------------
@dataclass
class Volume:
    lines: int
    emitted_bytes: int  # what the app printed
    cloudwatch_bytes: int  # billed ingestion: event JSON + 26 bytes per event
    cloudwatch_events: int
    archive_bytes: int  # JSON lines the s3 output writes, before gzip
    archive_gzip_bytes: int
    dropped_lines: int

    @property
    def cloudwatch_share(self) -> float:
        return self.cloudwatch_bytes / (self.cloudwatch_bytes + self.archive_bytes)


def minute_of_traffic(
    printed: Callable[[], str], requests_per_s: float, error_rate: float = 0.01
) -> list[str]:
    """One minute of one task's stdout: access lines, 1 % failed inferences (an ERROR record with
    its traceback plus a 500 access line), ALB health checks (3 load balancer nodes every 5 s),
    an INFO line from the repository poller, and the minute's EMF records."""
    printed()
    requests = round(requests_per_s * 60)
    errors = round(requests * error_rate)
    emf = EmfMetrics("onnx-prod")
    for i in range(requests):
        failed = i < errors
        if failed:
            try:
                raise RuntimeError("[ONNXRuntimeError] : 6 : RUNTIME_EXCEPTION : CUDA failure 2")
            except RuntimeError as exc:
                logging.getLogger("service.app").error(
                    "inference failed", extra={"model": "resnet50"}, exc_info=exc
                )
        request("/v2/models/resnet50/infer", 500 if failed else 200, "python-requests/2.32")
        emf.request_started()
        emf.request_finished("resnet50", 500 if failed else 200, 0.006, shed=False)
    emf.batch("resnet50", 3, [0.0004] * requests, 0.004, max(1, requests // 60))
    for _ in range(3 * 12):
        request("/health", 200, "ELB-HealthChecker/2.0")
    logging.getLogger("service.repository").info(
        "model repository synchronised", extra={"loaded": [], "failed": [], "removed": []}
    )
    emf_write(emf.flush({"CUDAExecutionProvider": 1}, 0))
    return [ln for ln in printed().splitlines() if ln]


def measure(lines: list[str]) -> Volume:
    pipeline = _pipeline()
    dropped = 0
    for line in lines:
        before = len(pipeline.delivered)
        pipeline.emit(TAG, firelens_record(line), at=INGESTED_AT)
        dropped += len(pipeline.delivered) == before
    to_cw = [d for d in pipeline.delivered if d.output in (ERRORS, METRICS)]
    to_s3 = [d for d in pipeline.delivered if d.output == "s3"]
    archived = "".join(json.dumps(d.event.record) + "\n" for d in to_s3).encode()
    return Volume(
        lines=len(lines),
        emitted_bytes=sum(len(ln) + 1 for ln in lines),
        cloudwatch_bytes=sum(
            len(json.dumps(d.event.record).encode()) + CLOUDWATCH_EVENT_OVERHEAD for d in to_cw
        ),
        cloudwatch_events=len(to_cw),
        archive_bytes=len(archived),
        archive_gzip_bytes=len(gzip.compress(archived)),
        dropped_lines=dropped,
    )


@pytest.mark.parametrize("requests_per_s", [10, 100])
def test_cloudwatch_gets_under_10_percent_of_the_bytes(
    service_logging: Callable[[], str], requests_per_s: int
) -> None:
    """The figures of docs/log-routing.md ("Log volume"): with 1 % errors, CloudWatch (error and
    metrics groups) ingests under 10 % of the bytes the router ships; the rest goes to S3."""
    volume = measure(minute_of_traffic(service_logging, requests_per_s))
    print(f"\n{requests_per_s} req/s: {volume}, CloudWatch share {volume.cloudwatch_share:.1%}")
    assert volume.cloudwatch_share < 0.10
    errors = round(requests_per_s * 60 * 0.01)
    assert volume.cloudwatch_events == errors * 2 + 4  # error record + 500 access line; 4 EMF
    assert volume.dropped_lines == 36  # the health checks
    assert volume.archive_gzip_bytes < volume.archive_bytes / 5  # access lines compress well
