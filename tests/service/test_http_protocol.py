"""The service over real HTTP on 127.0.0.1, driven by tritonclient like a user would.

Outputs are compared with a direct ONNX Runtime run of the same model file.
"""

from __future__ import annotations

import numpy as np
import onnxruntime as ort
import pytest
import tritonclient.http as triton

from tests.service.helpers import ServerThread, client


def _direct(server: ServerThread, model: str, version: int, feeds: dict) -> dict:
    path = server.settings.model_dir / model / str(version) / "model.onnx"
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    names = [o.name for o in session.get_outputs()]
    return dict(zip(names, session.run(names, feeds), strict=True))


def _features(batch: int, seed: int) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(seed)
    return {
        "user_features": rng.standard_normal((batch, 32)).astype(np.float32),
        "item_features": rng.standard_normal((batch, 32)).astype(np.float32),
    }


@pytest.mark.parametrize("binary", [False, True], ids=["json", "binary"])
def test_tritonclient_infer_matches_onnxruntime(demo_server: ServerThread, binary: bool) -> None:
    feeds = _features(5, seed=1)
    tc = triton.InferenceServerClient(demo_server.url)
    inputs = []
    for name, array in feeds.items():
        tensor = triton.InferInput(name, list(array.shape), "FP32")
        tensor.set_data_from_numpy(array, binary_data=binary)
        inputs.append(tensor)
    outputs = [triton.InferRequestedOutput("score", binary_data=binary)]
    result = tc.infer("recommender", inputs, outputs=outputs, request_id="r-1")
    expected = _direct(demo_server, "recommender", 1, feeds)
    np.testing.assert_allclose(result.as_numpy("score"), expected["score"], rtol=1e-6)
    assert result.as_numpy("logit") is None  # only the requested output comes back
    response = result.get_response()
    assert response["id"] == "r-1"
    assert response["model_version"] == "1"


def test_tritonclient_all_outputs_binary_by_default(demo_server: ServerThread) -> None:
    feeds = _features(2, seed=2)
    tc = triton.InferenceServerClient(demo_server.url)
    inputs = []
    for name, array in feeds.items():
        tensor = triton.InferInput(name, list(array.shape), "FP32")
        tensor.set_data_from_numpy(array)
        inputs.append(tensor)
    result = tc.infer("recommender", inputs)  # no outputs: binary_data_output=true
    expected = _direct(demo_server, "recommender", 1, feeds)
    for name in ("score", "logit"):
        np.testing.assert_allclose(result.as_numpy(name), expected[name], rtol=1e-6)
        assert result.get_output(name)["parameters"]["binary_data_size"] == 8


def test_health_and_server_metadata(demo_server: ServerThread) -> None:
    tc = triton.InferenceServerClient(demo_server.url)
    assert tc.is_server_live()
    assert tc.is_server_ready()
    assert tc.is_model_ready("recommender")
    assert tc.is_model_ready("scale", "1")
    assert not tc.is_model_ready("scale", "9")
    meta = tc.get_server_metadata()
    assert meta["name"] == "onnx-ecs-serving"
    assert "binary_tensor_data" in meta["extensions"]
    with client(demo_server) as http:
        health = http.get("/health")
        assert health.status_code == 200


def test_model_metadata_reports_signature_and_provider(demo_server: ServerThread) -> None:
    tc = triton.InferenceServerClient(demo_server.url)
    meta = tc.get_model_metadata("recommender")
    assert meta["platform"] == "onnxruntime_onnx"
    assert meta["inputs"] == [
        {"name": "user_features", "datatype": "FP32", "shape": [-1, 32]},
        {"name": "item_features", "datatype": "FP32", "shape": [-1, 32]},
    ]
    assert [o["name"] for o in meta["outputs"]] == ["score", "logit"]
    assert meta["parameters"]["execution_provider"] == "CPUExecutionProvider"
    assert tc.get_model_metadata("scale")["versions"] == ["1", "2"]
    assert tc.get_model_metadata("scale", "1")["versions"] == ["1"]


def test_highest_version_serves_by_default_and_versions_are_addressable(
    demo_server: ServerThread,
) -> None:
    x = np.ones((1, 4), dtype=np.float32)
    tc = triton.InferenceServerClient(demo_server.url)
    tensor = triton.InferInput("x", [1, 4], "FP32")
    tensor.set_data_from_numpy(x)
    latest = tc.infer("scale", [tensor])
    assert latest.get_response()["model_version"] == "2"
    np.testing.assert_array_equal(latest.as_numpy("y"), x * 3)
    v1 = tc.infer("scale", [tensor], model_version="1")
    np.testing.assert_array_equal(v1.as_numpy("y"), x * 2)


def test_curl_style_json_request_without_content_type(demo_server: ServerThread) -> None:
    body = (
        b'{"inputs":[{"name":"x","datatype":"FP32","shape":[1,4],"data":[[1,2,3,4]]}],'
        b'"outputs":[{"name":"y"}]}'
    )
    with client(demo_server) as http:
        response = http.post("/v2/models/scale/versions/1/infer", content=body)
    assert response.status_code == 200
    assert response.headers["content-type"] == "application/json"
    assert response.json()["outputs"][0]["data"] == [2.0, 4.0, 6.0, 8.0]


def test_metrics_count_requests_by_model_and_status(demo_server: ServerThread) -> None:
    with client(demo_server) as http:
        http.post("/v2/models/scale/infer", content=b"{bad")
        text = http.get("/metrics").text
    assert 'inference_requests_total{model="scale",status="400"}' in text
    assert 'inference_failures_total{model="scale",status="400"}' in text
    assert "inference_request_duration_seconds_bucket" in text
    assert "http_requests_in_flight" in text


def test_openapi_documents_every_protocol_route(demo_server: ServerThread) -> None:
    with client(demo_server) as http:
        paths = http.get("/openapi.json").json()["paths"]
    for path in (
        "/v2/models/{model_name}/infer",
        "/v2/models/{model_name}/versions/{version}/infer",
        "/v2/models/{model_name}",
        "/v2/health/ready",
        "/health",
    ):
        assert path in paths


def test_unknown_model_names_do_not_become_metric_labels(demo_server: ServerThread) -> None:
    with client(demo_server) as http:
        for i in range(3):
            http.post(f"/v2/models/made-up-{i}/infer", content=b"{}")
        text = http.get("/metrics").text
    assert "made-up" not in text
    assert 'inference_requests_total{model="_unknown",status="404"} 3.0' in text


def test_client_hanging_up_mid_body_is_499_not_500(demo_server: ServerThread) -> None:
    import socket
    import time

    with client(demo_server) as http:
        before = http.get("/metrics").text
    with socket.create_connection(("127.0.0.1", demo_server.port)) as sock:
        sock.sendall(
            b'POST /v2/models/scale/infer HTTP/1.1\r\nHost: x\r\nContent-Length: 100\r\n\r\n{"in'
        )
    time.sleep(0.3)
    with client(demo_server) as http:
        after = http.get("/metrics").text

    def count(text: str, status: str) -> float:
        key = f'http_requests_total{{method="POST",route="infer",status="{status}"}}'
        line = next((m for m in text.splitlines() if m.startswith(key)), f"{key} 0")
        return float(line.split()[-1])

    assert count(after, "499") == count(before, "499") + 1
    assert count(after, "500") == count(before, "500")
