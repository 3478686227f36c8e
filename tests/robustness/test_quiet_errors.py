"""A client's bad values must not write to the error log (issue 15, finding 13): the service as
in production (``python -m service``, stdout and stderr captured), a model rejecting its input
again and again, and nothing at ERROR level or from ONNX Runtime's own logger in the output."""

from __future__ import annotations

import json
from pathlib import Path

import httpx

from tests.robustness.conftest import Spawn
from tests.service.helpers import write_model
from tests.service.test_hostile_dos import gather_elements


def test_input_rejected_by_the_model_is_400_and_leaves_no_error_log(
    tmp_path: Path, spawn: Spawn
) -> None:
    write_model(tmp_path / "models" / "gather" / "1" / "model.onnx", gather_elements())
    service = spawn(tmp_path / "models", ACCESS_LOG="false")
    service.wait_ready()
    body = json.dumps(
        {
            "inputs": [
                {"name": "data", "datatype": "FP32", "shape": [1, 3], "data": [1, 2, 3]},
                {"name": "indices", "datatype": "INT64", "shape": [1, 3], "data": [0, 1, 7]},
            ]
        }
    )
    with httpx.Client(base_url=service.base, timeout=30) as http:
        statuses = {
            http.post("/v2/models/gather/infer", content=body).status_code for _ in range(20)
        }
        assert http.get("/v2/health/live").status_code == 200
    assert statuses == {400}
    output = service.log_path.read_text()
    assert "ExecuteKernel" not in output, "ONNX Runtime logged each failed run"
    errors = [r for r in service.records() if r.get("level") in ("ERROR", "CRITICAL")]
    assert not errors, errors[:3]
