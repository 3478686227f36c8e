"""Each routing rule of log_router/custom.conf, exercised with lines the service really writes.

What is checked, without a Fluent Bit binary (none is packaged for Debian bookworm or on PyPI):
the service's own logging setup (``service.logs.configure_logging``) and access-log middleware
produce the lines on stdout; each line is wrapped as FireLens delivers it (raw line in ``log``,
ECS metadata keys, tag ``app-firelens-<task id>``) and run through tests/log_router/fluentbit.py,
which loads custom.conf, parsers.conf and status_class.lua exactly as the Dockerfile lays them out
and applies the parser/grep/lua/rewrite_tag semantics of Fluent Bit (the Lua script runs in
LuaJIT). The assertions are on which output (CloudWatch error group, S3 archive, none) gets each
record and on what it would send. Not checked: delivery to AWS, buffering, retries, and Fluent
Bit's handling of options the emulation does not model (e.g. upload_timeout).
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable, Iterator
from datetime import datetime
from pathlib import Path

import pytest

from service.emf import EmfMetrics
from service.emf import write as emf_write
from service.logs import configure_logging, flush_logs
from service.metrics import Metrics
from service.middleware import ObservabilityMiddleware
from tests.log_router.fluentbit import Delivery, Pipeline, dockerfile_copies, firelens_record

ROUTER_DIR = Path(__file__).resolve().parents[2] / "log_router"
TASK_ID = "0123456789abcdef0123456789abcdef"
TAG = f"app-firelens-{TASK_ID}"
ENV = {
    "AWS_REGION": "us-east-1",
    "ERROR_LOG_GROUP_NAME": "/ecs/onnx-ecs-serving/test/log-router/errors",
    "ARCHIVE_BUCKET_NAME": "log-router-archive-1234567",
    "METRICS_LOG_GROUP_NAME": "/ecs/onnx-ecs-serving/test/log-router/metrics",
}
INGESTED_AT = 1_900_000_000.25  # 2030-03-17: distinct from the times the lines carry
ERRORS = "cloudwatch_logs"
ARCHIVE = "s3"
METRICS = "metrics"  # the cloudwatch_logs output with log_format json/emf


# -- producing real lines ------------------------------------------------------------------------
@pytest.fixture
def service_logging(capsys: pytest.CaptureFixture[str]) -> Iterator[Callable[[], str]]:
    """Configure the service's logging as in production; yield a reader of what it printed."""
    root = logging.getLogger()
    quiet = logging.getLogger("asyncio")  # its DEBUG "Using selector" line is not ours
    saved = (root.handlers[:], root.level, logging.getLogger("uvicorn.access").disabled)
    saved_quiet = quiet.level
    configure_logging("DEBUG")
    quiet.setLevel(logging.WARNING)

    def printed() -> str:
        return capsys.readouterr().out

    try:
        yield printed
    finally:
        root.handlers[:] = saved[0]
        root.setLevel(saved[1])
        logging.getLogger("uvicorn.access").disabled = saved[2]
        quiet.setLevel(saved_quiet)


def request(path: str, status: int, user_agent: str) -> None:
    """One HTTP request through the service's real access-log middleware."""

    async def app(scope: dict, receive: Callable, send: Callable) -> None:
        await send({"type": "http.response.start", "status": status, "headers": []})
        await send({"type": "http.response.body", "body": b""})

    async def receive() -> dict:
        return {"type": "http.request", "body": b"", "more_body": False}

    async def send(message: dict) -> None:
        return None

    scope = {
        "type": "http",
        "method": "GET" if "health" in path else "POST",
        "path": path,
        "headers": [(b"user-agent", user_agent.encode())],
        "client": ("10.0.12.34", 51234),
    }
    asyncio.run(ObservabilityMiddleware(app, Metrics())(scope, receive, send))
    flush_logs()  # access lines are buffered; the service flushes them within milliseconds


def log_exception() -> None:
    try:
        raise RuntimeError("session.run failed: CUDA out of memory")
    except RuntimeError:
        logging.getLogger("service.model").exception("inference failed for model resnet50")


SCENARIOS: dict[str, Callable[[], None]] = {
    "error": log_exception,
    "critical": lambda: logging.getLogger("service").critical("model repository unreadable"),
    "warning": lambda: logging.getLogger("service.batching").warning("queue is 90% full"),
    "info": lambda: logging.getLogger("service").info("model resnet50 v3 ready"),
    "debug": lambda: logging.getLogger("service").debug("warm-up run 2/3 took 41 ms"),
    "access_200": lambda: request("/v2/models/resnet50/infer", 200, "python-requests/2.32"),
    "access_404": lambda: request("/v2/models/nope/infer", 404, "tritonclient/2.45"),
    "access_503": lambda: request("/v2/models/resnet50/infer", 503, "python-requests/2.32"),
    "access_500_logged_as_error": lambda: logging.getLogger("service.access").error(
        "POST /v2/models/resnet50/infer 500",
        extra={
            "method": "POST",
            "path": "/v2/models/resnet50/infer",
            "status": 500,
            "duration_ms": 3.2,
            "user_agent": "curl/8.5",
        },
    ),
    "health_alb_200": lambda: request("/health", 200, "ELB-HealthChecker/2.0"),
    "health_alb_503": lambda: request("/health", 503, "ELB-HealthChecker/2.0"),
    "health_by_hand": lambda: request("/health", 200, "curl/8.5"),
    "alb_agent_other_path": lambda: request("/v2/health/ready", 200, "ELB-HealthChecker/2.0"),
    "emf_metrics": lambda: emf_write(EmfMetrics("onnx-test").flush()),
}

# Which outputs each line must reach (the routing table of docs/log-routing.md).
EXPECTED: dict[str, set[str]] = {
    "error": {ERRORS, ARCHIVE},
    "critical": {ERRORS, ARCHIVE},
    "warning": {ARCHIVE},
    "info": {ARCHIVE},
    "debug": {ARCHIVE},
    "access_200": {ARCHIVE},
    "access_404": {ARCHIVE},
    "access_503": {ERRORS, ARCHIVE},
    "access_500_logged_as_error": {ERRORS, ARCHIVE},
    "health_alb_200": set(),
    "health_alb_503": set(),
    "health_by_hand": set(),
    "alb_agent_other_path": set(),
    "emf_metrics": {METRICS},  # moved, not copied: metrics are not archived as logs
    "not_json_stdout": {ARCHIVE},
    "not_json_stderr": {ARCHIVE},
}


@pytest.fixture
def lines(service_logging: Callable[[], str]) -> dict[str, str]:
    """One real stdout line per scenario, plus lines the service does not control."""
    out: dict[str, str] = {}
    for name, action in SCENARIOS.items():
        action()
        printed = service_logging().splitlines()
        assert len(printed) == 1, f"{name}: expected one JSON line, got {printed}"
        out[name] = printed[0]
    # What a crash before logging is set up, or a native library, prints.
    out["not_json_stdout"] = "2026-11-25 19:34:33.977 [W:onnxruntime:, graph.cc:3490] Removing"
    out["not_json_stderr"] = "Traceback (most recent call last):"
    return out


def route(lines: dict[str, str]) -> dict[str, list[Delivery]]:
    """Run every line through the router; group deliveries by scenario."""
    by_scenario: dict[str, list[Delivery]] = {}
    for name, line in lines.items():
        pipeline = Pipeline(
            ROUTER_DIR / "custom.conf", dockerfile_copies(ROUTER_DIR / "Dockerfile"), ENV
        )
        source = "stderr" if name.endswith("stderr") else "stdout"
        pipeline.emit(TAG, firelens_record(line, source=source), at=INGESTED_AT)
        by_scenario[name] = pipeline.delivered
    return by_scenario


# -- the routing table ---------------------------------------------------------------------------
def test_every_line_reaches_exactly_its_outputs(lines: dict[str, str]) -> None:
    routed = route(lines)
    assert set(routed) == set(EXPECTED)
    actual = {name: sorted(d.output for d in ds) for name, ds in routed.items()}
    expected = {name: sorted(outputs) for name, outputs in EXPECTED.items()}
    assert actual == expected


def test_error_copy_goes_to_the_error_group_with_a_per_task_tag(lines: dict[str, str]) -> None:
    routed = route(lines)
    (copy,) = [d for d in routed["error"] if d.output == ERRORS]
    assert copy.event.tag == f"error.{TAG}"  # stream "task-error.app-firelens-<task id>"
    record = copy.event.record
    assert record["level"] == "ERROR"
    assert record["logger"] == "service.model"
    assert "RuntimeError: session.run failed" in record["exc_info"]  # traceback, same record
    assert record["ecs_task_arn"].endswith(TASK_ID)  # FireLens metadata kept (Reserve_Data)
    assert "log" not in record  # raw line replaced by its parsed keys


def test_an_error_access_line_with_5xx_is_copied_once(lines: dict[str, str]) -> None:
    routed = route(lines)
    assert [d.output for d in routed["access_500_logged_as_error"]].count(ERRORS) == 1


def test_access_records_keep_numeric_status_and_gain_a_string_class(
    lines: dict[str, str],
) -> None:
    routed = route(lines)
    for name, status, status_class in (("access_200", 200, "2xx"), ("access_503", 503, "5xx")):
        (archived,) = [d for d in routed[name] if d.output == ARCHIVE]
        assert archived.event.record["status"] == status
        assert type(archived.event.record["status"]) is int
        assert archived.event.record["status_class"] == status_class
        assert archived.event.record["user_agent"] == "python-requests/2.32"


def test_event_time_comes_from_the_iso_time_field(lines: dict[str, str]) -> None:
    routed = route(lines)
    for name in ("error", "info", "access_200"):
        (archived,) = [d for d in routed[name] if d.output == ARCHIVE]
        record = archived.event.record
        written = datetime.fromisoformat(record["time"]).timestamp()
        assert archived.event.time == pytest.approx(written, abs=1e-6)
        assert archived.event.time != INGESTED_AT
        assert record["time"] == datetime.fromisoformat(record["time"]).isoformat()  # Time_Keep


def test_archive_keys_are_partitioned_by_the_record_date(lines: dict[str, str]) -> None:
    routed = route(lines)
    (archived,) = [d for d in routed["info"] if d.output == ARCHIVE]
    day = time.strftime("%Y/%m/%d", time.gmtime(archived.event.time))
    assert archived.s3_key is not None
    assert archived.s3_key.startswith(f"/app/{day}/{TAG}/")
    assert archived.s3_key.endswith(".json.gz")


def test_lines_that_are_not_json_are_archived_verbatim(lines: dict[str, str]) -> None:
    routed = route(lines)
    for name in ("not_json_stdout", "not_json_stderr"):
        (archived,) = routed[name]
        assert archived.output == ARCHIVE
        assert archived.event.record["log"] == lines[name]
        assert archived.event.time == INGESTED_AT  # nothing to parse a time from
        assert archived.s3_key is not None and archived.s3_key.startswith("/app/2030/03/17/")
