"""Every kind of bad request gets a clear {"error": ...} with the right status, never a 500."""

from __future__ import annotations

import threading
from pathlib import Path

import orjson
import pytest

from service.model import ModelVersion
from tests.service.conftest import settings_for
from tests.service.helpers import ServerThread, client, serving

GOOD_X = {"name": "x", "datatype": "FP32", "shape": [1, 4], "data": [1, 2, 3, 4]}


def _post(server: ServerThread, path: str, body: bytes, headers: dict | None = None):
    with client(server) as http:
        return http.post(path, content=body, headers=headers or {})


def _inputs(*tensors: dict) -> bytes:
    return orjson.dumps({"inputs": list(tensors)})


CASES = [
    ("malformed JSON", "/v2/models/scale/infer", b'{"inputs": [', 400, "not valid JSON"),
    ("body not an object", "/v2/models/scale/infer", b'"hello"', 400, "must be a JSON object"),
    ("unknown model", "/v2/models/nope/infer", _inputs(GOOD_X), 404, "unknown model 'nope'"),
    ("unknown version", "/v2/models/scale/versions/7/infer", _inputs(GOOD_X), 404,
     "has no version 7"),
    ("non-numeric version", "/v2/models/scale/versions/latest/infer", _inputs(GOOD_X), 404,
     "versions are positive integers"),
    ("missing input", "/v2/models/recommender/infer",
     _inputs({"name": "user_features", "datatype": "FP32", "shape": [1, 32], "data": [0] * 32}),
     400, "missing inputs ['item_features']"),
    ("extra input", "/v2/models/scale/infer",
     _inputs(GOOD_X, {"name": "w", "datatype": "FP32", "shape": [1], "data": [1]}), 400,
     "unknown inputs ['w']"),
    ("misnamed input", "/v2/models/scale/infer", _inputs({**GOOD_X, "name": "X"}), 400,
     "missing inputs ['x'] and unknown inputs ['X']"),
    ("wrong datatype", "/v2/models/scale/infer", _inputs({**GOOD_X, "datatype": "FP64"}), 400,
     "has datatype FP64 but model 'scale' expects FP32"),
    ("shape vs data length", "/v2/models/scale/infer",
     _inputs({**GOOD_X, "shape": [2, 4]}), 400, "shape [2, 4] has 8 elements but 'data' has 4"),
    ("wrong rank", "/v2/models/scale/infer",
     _inputs({**GOOD_X, "shape": [4]}), 400, "(rank 1) but model 'scale' expects rank 2"),
    ("fixed dimension violated", "/v2/models/scale/infer",
     _inputs({**GOOD_X, "shape": [2, 2]}), 400, "dimension 1 must be 4"),
    ("BYTES to numeric model", "/v2/models/scale/infer",
     _inputs({"name": "x", "datatype": "BYTES", "shape": [1, 4], "data": ["a", "b", "c", "d"]}),
     400, "has datatype BYTES but model 'scale' expects FP32"),
    ("inputs disagree on the batch dimension", "/v2/models/recommender/infer",
     _inputs({"name": "user_features", "datatype": "FP32", "shape": [1, 32], "data": [0] * 32},
             {"name": "item_features", "datatype": "FP32", "shape": [2, 32], "data": [0] * 64}),
     400, "must agree on dimension 'batch': 1 != 2"),
    ("null in numeric data", "/v2/models/scale/infer",
     _inputs({**GOOD_X, "data": [1, None, 3, 4]}), 400, "not numbers"),
    ("unknown output", "/v2/models/scale/infer",
     orjson.dumps({"inputs": [GOOD_X], "outputs": [{"name": "nope"}]}), 400,
     "has no outputs ['nope']"),
]  # fmt: skip


@pytest.mark.parametrize(
    ("path", "body", "status", "message"),
    [c[1:] for c in CASES],
    ids=[c[0] for c in CASES],
)
def test_bad_request_matrix(
    demo_server: ServerThread, path: str, body: bytes, status: int, message: str
) -> None:
    response = _post(demo_server, path, body)
    assert response.status_code == status, response.text
    assert response.headers["content-type"] == "application/json"
    assert message in response.json()["error"]


def test_binary_sizes_that_do_not_add_up(demo_server: ServerThread) -> None:
    header = orjson.dumps(
        {"inputs": [{"name": "x", "datatype": "FP32", "shape": [1, 4],
                     "parameters": {"binary_data_size": 16}}]}
    )  # fmt: skip
    body = header + b"\0" * 12
    response = _post(
        demo_server, "/v2/models/scale/infer", body,
        {"Inference-Header-Content-Length": str(len(header))},
    )  # fmt: skip
    assert response.status_code == 400
    assert "runs past the end of the body" in response.json()["error"]
    response = _post(
        demo_server, "/v2/models/scale/infer", header + b"\0" * 20,
        {"Inference-Header-Content-Length": str(len(header))},
    )  # fmt: skip
    assert response.status_code == 400
    assert "adds up to 16 bytes but the body carries 20" in response.json()["error"]
    response = _post(
        demo_server, "/v2/models/scale/infer", body, {"Inference-Header-Content-Length": "x"}
    )
    assert response.status_code == 400
    assert "must be an integer" in response.json()["error"]
    response = _post(
        demo_server,
        "/v2/models/scale/infer",
        body,
        {"Inference-Header-Content-Length": "\xff".encode("latin-1")},
    )
    assert response.status_code == 400
    assert "must be an integer" in response.json()["error"]


def test_body_over_the_limit_is_413(demo_server: ServerThread) -> None:
    response = _post(demo_server, "/v2/models/scale/infer", b" " * 1_000_001)
    assert response.status_code == 413
    assert "exceeds the limit of 1000000 bytes" in response.json()["error"]


def test_body_over_the_limit_without_content_length_is_413(demo_server: ServerThread) -> None:
    def chunks():
        for _ in range(20):
            yield b" " * 100_000

    with client(demo_server) as http:
        response = http.post("/v2/models/scale/infer", content=chunks())
    assert response.status_code == 413


def test_unknown_route_and_method_are_json(demo_server: ServerThread) -> None:
    with client(demo_server) as http:
        missing = http.get("/v2/nothing")
        wrong_method = http.get("/v2/models/scale/infer")
    assert missing.status_code == 404 and "error" in missing.json()
    assert wrong_method.status_code == 405 and "error" in wrong_method.json()


def test_infer_before_the_model_is_ready_is_503(tmp_path: Path, monkeypatch) -> None:
    from service.demo_model import write_demo_repository

    write_demo_repository(tmp_path)
    release = threading.Event()
    real_load = ModelVersion.load

    def slow_load(*args, **kwargs):
        release.wait(timeout=30)
        return real_load(*args, **kwargs)

    monkeypatch.setattr(ModelVersion, "load", staticmethod(slow_load))
    with serving(settings_for(tmp_path), wait_ready=False) as server:
        try:
            with client(server) as http:
                infer = http.post("/v2/models/recommender/infer", content=_inputs(GOOD_X))
                health = http.get("/health")
                ready = http.get("/v2/health/ready")
                live = http.get("/v2/health/live")
        finally:
            release.set()
        server.wait_loaded()
        with client(server) as http:
            assert http.get("/health").status_code == 200
    assert infer.status_code == 503
    assert "still loading" in infer.json()["error"]
    assert health.status_code == 503 and ready.status_code == 503
    assert live.status_code == 200
