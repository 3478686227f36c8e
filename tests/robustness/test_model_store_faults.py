"""Model store faults: a missing, truncated or unreadable model never takes the service down.

Each test starts ``python -m service`` on a broken repository and checks that the process stays
live (``/v2/health/live`` 200), serves the models that did load or reports not ready
(``/health`` 503), and says why in one JSON log record with the model and the reason.
Permission faults are real kernel refusals: see ``conftest.enforce_file_permissions``.
"""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

import httpx

from bench.soak import ServiceProcess
from tests.robustness.conftest import Spawn, wait_for_record
from tests.service.helpers import scale_model, write_model

BODY = {"inputs": [{"name": "x", "datatype": "FP32", "shape": [1, 4], "data": [1, 2, 3, 4]}]}


def good(root: Path, name: str = "good") -> Path:
    return write_model(root / name / "1" / "model.onnx", scale_model(2.0))


def infer(service: ServiceProcess, model: str) -> httpx.Response:
    return httpx.post(f"{service.base}/v2/models/{model}/infer", json=BODY, timeout=10)


def get(service: ServiceProcess, path: str) -> int:
    return httpx.get(service.base + path, timeout=10).status_code


def failure(service: ServiceProcess, model: str) -> dict[str, Any]:
    """The ERROR record the repository writes when a version of ``model`` failed to load."""
    return wait_for_record(
        service,
        lambda r: r.get("message") == "model version failed to load" and r.get("model") == model,
    )


def assert_serves_good_only(service: ServiceProcess, broken: str) -> None:
    service.wait_ready(timeout=20)
    assert get(service, "/v2/health/live") == 200
    assert infer(service, "good").json()["outputs"][0]["data"] == [2.0, 4.0, 6.0, 8.0]
    refused = infer(service, broken)
    assert refused.status_code == 503, refused.text
    assert get(service, f"/v2/models/{broken}/ready") == 503


def test_missing_model_dir_keeps_the_service_live_and_recovers(tmp_path: Path, spawn: Spawn):
    root = tmp_path / "models"  # not there yet
    service = spawn(root, MODEL_POLL_INTERVAL_S="0.2")
    service.wait_for("/v2/health/live", 200)
    record = wait_for_record(
        service, lambda r: r.get("message") == "model directory does not exist"
    )
    assert record["level"] == "ERROR" and record["path"] == str(root)
    assert get(service, "/health") == 503
    assert get(service, "/v2/health/ready") == 503
    assert infer(service, "good").status_code == 404

    good(root)  # the EFS mount shows up late: the poller picks the model up
    service.wait_ready(timeout=20)
    assert infer(service, "good").status_code == 200


def test_truncated_and_unreadable_models_fail_alone(tmp_path: Path, spawn: Spawn) -> None:
    root = tmp_path / "models"
    good(root)
    whole = good(root, "truncated").read_bytes()
    (root / "truncated" / "1" / "model.onnx").write_bytes(whole[: len(whole) // 2])
    good(root, "unreadable").chmod(0o000)
    service = spawn(root)

    assert_serves_good_only(service, "truncated")
    assert "Protobuf parsing failed" in failure(service, "truncated")["reason"]
    assert "Protobuf parsing failed" in infer(service, "truncated").json()["error"]

    assert_serves_good_only(service, "unreadable")
    reason = failure(service, "unreadable")["reason"]
    assert "Permission denied" in reason or "error number 13" in reason, reason


def test_only_model_truncated_is_not_ready_but_live(tmp_path: Path, spawn: Spawn) -> None:
    root = tmp_path / "models"
    whole = good(root, "truncated").read_bytes()
    (root / "truncated" / "1" / "model.onnx").write_bytes(whole[: len(whole) // 2])
    service = spawn(root)
    record = failure(service, "truncated")
    assert record["level"] == "ERROR" and record["version"] == 1
    assert "Protobuf parsing failed" in record["reason"], record
    time.sleep(0.2)  # the record is written just before the registry publishes the state
    assert get(service, "/v2/health/live") == 200
    assert get(service, "/health") == 503
    assert get(service, "/v2/health/ready") == 503


def test_unreadable_version_folder_is_reported_as_permission_denied(
    tmp_path: Path, spawn: Spawn
) -> None:
    root = tmp_path / "models"
    good(root)
    good(root, "locked").parent.chmod(0o000)  # locked/1/ cannot be searched
    service = spawn(root)
    assert_serves_good_only(service, "locked")
    reason = failure(service, "locked")["reason"]
    assert "Permission denied" in reason, f"misleading reason: {reason}"


def test_unreadable_model_folder_does_not_stop_the_other_models(
    tmp_path: Path, spawn: Spawn
) -> None:
    root = tmp_path / "models"
    good(root)
    good(root, "locked")
    (root / "locked").chmod(0o000)  # its version folders cannot be listed
    service = spawn(root)
    try:
        service.wait_ready(timeout=10)
    except TimeoutError as exc:
        raise AssertionError("one unreadable model folder kept every model from loading") from exc
    assert infer(service, "good").status_code == 200
    record = wait_for_record(
        service, lambda r: r.get("level") == "ERROR" and "locked" in str(r.get("path", ""))
    )
    assert "Permission denied" in str(record.get("reason")), record


def test_unreadable_model_dir_is_not_ready_and_says_why(tmp_path: Path, spawn: Spawn) -> None:
    root = tmp_path / "models"
    good(root)
    root.chmod(0o000)
    service = spawn(root)
    service.wait_for("/v2/health/live", 200)
    record = wait_for_record(
        service, lambda r: r.get("level") == "ERROR" and r.get("path") == str(root), timeout=10
    )
    assert "Permission denied" in str(record.get("reason")), record
    assert get(service, "/health") == 503


def test_store_unreadable_after_start_keeps_serving_loaded_models(
    tmp_path: Path, spawn: Spawn
) -> None:
    """A transient fault of the mount (EFS hiccup) must not unload what is already serving."""
    root = tmp_path / "models"
    good(root)
    good(root, "other")
    service = spawn(root, MODEL_POLL_INTERVAL_S="0.1")
    service.wait_ready()

    for broken in (root / "other", root):
        seen = len(service.records())
        broken.chmod(0o000)
        try:
            wait_for_record(  # a poll ran into the fault and logged it
                service,
                lambda r, path=str(broken): r.get("level") == "ERROR" and path in json.dumps(r),
                skip=seen,
            )
            time.sleep(0.3)  # a few more polls
            for model in ("good", "other"):
                assert infer(service, model).status_code == 200, f"{model} gone after {broken}"
        finally:
            broken.chmod(0o755)
    assert get(service, "/health") == 200
