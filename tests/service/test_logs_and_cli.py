"""JSON log format, settings from the environment, and the command line."""

from __future__ import annotations

import io
import json
import logging
import subprocess
import sys
from pathlib import Path

import pytest
from pydantic import ValidationError

from service.__main__ import parse_args
from service.logs import ACCESS_LOGGER, configure_logging, flush_logs
from service.settings import Settings


@pytest.fixture
def captured(monkeypatch: pytest.MonkeyPatch):
    stream = io.StringIO()
    monkeypatch.setattr(sys, "stdout", stream)
    root = logging.getLogger()
    saved = (root.handlers[:], root.level)
    configure_logging("INFO")
    yield stream
    root.handlers[:], root.level = saved


def _records(stream: io.StringIO) -> list[dict]:
    return [json.loads(line) for line in stream.getvalue().splitlines()]


def test_one_json_object_per_line_with_required_fields(captured: io.StringIO) -> None:
    logging.getLogger("service.test").info("hello", extra={"model": "m"})
    logging.getLogger("service.test").debug("hidden at INFO")
    (record,) = _records(captured)
    assert record["level"] == "INFO"
    assert record["logger"] == "service.test"
    assert record["message"] == "hello"
    assert record["model"] == "m"
    assert record["time"].endswith("+00:00")


def test_exception_is_one_record_with_traceback(captured: io.StringIO) -> None:
    try:
        raise ValueError("bad thing")
    except ValueError:
        logging.getLogger("service.test").exception("failed")
    lines = captured.getvalue().splitlines()
    assert len(lines) == 1
    record = json.loads(lines[0])
    assert record["level"] == "ERROR"
    assert "Traceback" in record["exc_info"] and "ValueError: bad thing" in record["exc_info"]


def test_access_record_fields(captured: io.StringIO) -> None:
    from service.metrics import Metrics
    from service.middleware import ObservabilityMiddleware

    ObservabilityMiddleware._log(
        {"headers": [(b"user-agent", b"ELB-HealthChecker/2.0")], "client": ("10.0.0.1", 1)},
        "GET", "/health", 200, 0.0,
    )  # fmt: skip
    assert Metrics  # imported for the module under test's side effects only
    flush_logs()  # access lines are buffered (tests/service/test_access_log.py)
    (record,) = _records(captured)
    assert record["logger"] == ACCESS_LOGGER
    assert record["status"] == 200 and isinstance(record["status"], int)
    assert record["path"] == "/health" and record["method"] == "GET"
    assert record["user_agent"] == "ELB-HealthChecker/2.0"
    assert record["duration_ms"] >= 0


def test_settings_come_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MODEL_DIR", "/srv/models")
    monkeypatch.setenv("PORT", "9000")
    monkeypatch.setenv("LOG_LEVEL", "debug")
    monkeypatch.setenv("EXECUTION_PROVIDER", "CPU")
    settings = Settings()
    assert settings.model_dir == Path("/srv/models")
    assert settings.port == 9000 and settings.log_level == "DEBUG"
    assert settings.execution_provider == "cpu"
    args = parse_args([])
    assert args.model_dir == Path("/srv/models") and args.port == 9000
    assert parse_args(["--port", "1234"]).port == 1234


def test_bad_settings_are_rejected_with_the_field_name(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("EXECUTION_PROVIDER", "tpu")
    with pytest.raises(ValidationError, match="execution_provider"):
        Settings()


def test_python_dash_m_service_help() -> None:
    out = subprocess.run(
        [sys.executable, "-m", "service", "--help"], capture_output=True, text=True, check=True
    ).stdout
    assert "--model-dir" in out and "--host" in out and "--port" in out


def test_time_always_has_microseconds(captured: io.StringIO) -> None:
    record = logging.LogRecord(
        "service.test", logging.INFO, __file__, 1, "on the second", None, None
    )
    record.created = 1_700_000_000.0  # isoformat() would drop a zero fraction
    logging.getLogger("service.test").handle(record)
    (doc,) = _records(captured)
    assert doc["time"] == "2023-11-14T22:13:20.000000+00:00"
