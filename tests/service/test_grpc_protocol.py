"""The Open Inference Protocol over gRPC, driven by Triton's own client (tritonclient.grpc).

One server serves the bench MLP, a scikit-learn classifier converted with skl2onnx, an identity
over UINT64/INT64 and a string identity; answers are compared with ONNX Runtime / scikit-learn run
in the test. Errors must carry Triton's gRPC codes and the HTTP API's messages.
"""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from types import SimpleNamespace

import grpc
import httpx
import numpy as np
import onnxruntime as ort
import pytest
import tritonclient.grpc as grpcclient
from grpc_health.v1 import health_pb2, health_pb2_grpc
from tritonclient.grpc import service_pb2, service_pb2_grpc
from tritonclient.utils import InferenceServerException

from bench.models import build_mlp
from service.grpc.server import FRAMING_HEADROOM, GrpcServer
from service.metrics import Metrics
from service.settings import Settings
from tests.service.conftest import settings_for
from tests.service.grpc_models import (
    INT64_EXTREMES,
    MIB,
    UINT64_EXTREMES,
    iris,
    triton_input,
    write_grpc_repository,
)
from tests.service.helpers import ServerThread, free_port, serving, write_model

LIMIT = 6 * MIB


@pytest.fixture(scope="module")
def repo(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, object]:
    root = tmp_path_factory.mktemp("grpc-repo")
    clf = write_grpc_repository(root)
    (root / "broken" / "1").mkdir(parents=True)
    (root / "broken" / "1" / "model.onnx").write_bytes(b"not an onnx model")
    return root, clf


@pytest.fixture(scope="module")
def server(repo: tuple[Path, object]) -> Iterator[ServerThread]:
    settings = settings_for(
        repo[0], grpc_port=free_port(), max_request_bytes=LIMIT, repository_api=True
    )
    with serving(settings) as running:
        yield running


@pytest.fixture
def channel(server: ServerThread) -> Iterator[grpc.Channel]:
    options = [("grpc.max_send_message_length", -1), ("grpc.max_receive_message_length", -1)]
    with grpc.insecure_channel(f"127.0.0.1:{server.settings.grpc_port}", options=options) as ch:
        yield ch


def _error(call: object) -> InferenceServerException:
    with pytest.raises(InferenceServerException) as info:
        call()  # type: ignore[operator]
    return info.value


# -- health and metadata ---------------------------------------------------------------------
def test_health_and_metadata(grpc_client: grpcclient.InferenceServerClient) -> None:
    assert grpc_client.is_server_live()
    assert grpc_client.is_server_ready()
    assert grpc_client.is_model_ready("mlp")
    assert not grpc_client.is_model_ready("broken")
    meta = grpc_client.get_server_metadata(as_json=True)
    assert meta["name"] == "onnx-ecs-serving"
    assert "model_configuration" in meta["extensions"]
    model = grpc_client.get_model_metadata("classifier", as_json=True)
    assert model["platform"] == "onnxruntime_onnx"
    assert [(t["name"], t["datatype"], t["shape"]) for t in model["inputs"]] == [
        ("X", "FP32", ["-1", "4"])
    ]
    assert {t["name"]: t["datatype"] for t in model["outputs"]} == {
        "label": "INT64",
        "probabilities": "FP32",
    }


def test_standard_health_service_is_serving_when_ready(channel: grpc.Channel) -> None:
    """The ALB's gRPC health check calls /grpc.health.v1.Health/Check and wants code 0."""
    stub = health_pb2_grpc.HealthStub(channel)
    for service in ("", "inference.GRPCInferenceService"):
        answer = stub.Check(health_pb2.HealthCheckRequest(service=service))
        assert answer.status == health_pb2.HealthCheckResponse.SERVING


# -- inference --------------------------------------------------------------------------------
@pytest.mark.parametrize("rows", [1, 4])
def test_bench_model_matches_onnx_runtime(
    grpc_client: grpcclient.InferenceServerClient, rows: int
) -> None:
    x = np.random.default_rng(rows).standard_normal((rows, 256)).astype(np.float32)
    expected = ort.InferenceSession(build_mlp().SerializeToString()).run(None, {"input": x})[0]
    result = grpc_client.infer("mlp", [triton_input("input", x, "FP32")], request_id=f"r{rows}")
    assert result.get_response().id == f"r{rows}"
    assert result.get_response().model_version == "1"
    np.testing.assert_allclose(result.as_numpy("output"), expected, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("rows", [1, 4])
def test_sklearn_classifier_matches_scikit_learn(
    grpc_client: grpcclient.InferenceServerClient, repo: tuple[Path, object], rows: int
) -> None:
    x, _ = iris()
    batch = x[[0, 60, 120, 149][:rows]]
    clf = repo[1]
    outputs = [
        grpcclient.InferRequestedOutput("label"),
        grpcclient.InferRequestedOutput("probabilities"),
    ]
    result = grpc_client.infer("classifier", [triton_input("X", batch, "FP32")], outputs=outputs)
    np.testing.assert_array_equal(result.as_numpy("label"), clf.predict(batch))  # type: ignore[attr-defined]
    np.testing.assert_allclose(
        result.as_numpy("probabilities"),
        clf.predict_proba(batch),  # type: ignore[attr-defined]
        rtol=1e-4,
        atol=1e-5,
    )


def test_requested_output_only(grpc_client: grpcclient.InferenceServerClient) -> None:
    x, _ = iris()
    result = grpc_client.infer(
        "classifier",
        [triton_input("X", x[:2], "FP32")],
        outputs=[grpcclient.InferRequestedOutput("label")],
    )
    assert [o.name for o in result.get_response().outputs] == ["label"]


def test_integer_extremes_round_trip_exactly_raw(
    grpc_client: grpcclient.InferenceServerClient,
) -> None:
    u = np.array(UINT64_EXTREMES, dtype=np.uint64)
    i = np.array(INT64_EXTREMES, dtype=np.int64)
    result = grpc_client.infer(
        "ints", [triton_input("u", u, "UINT64"), triton_input("i", i, "INT64")]
    )
    assert [int(v) for v in result.as_numpy("u_out")] == UINT64_EXTREMES
    assert [int(v) for v in result.as_numpy("i_out")] == INT64_EXTREMES


def test_integer_extremes_round_trip_exactly_typed(channel: grpc.Channel) -> None:
    """Typed contents (uint64_contents / int64_contents) instead of raw bytes."""
    request = service_pb2.ModelInferRequest(model_name="ints")
    u = request.inputs.add(name="u", datatype="UINT64", shape=[4])
    u.contents.uint64_contents.extend(UINT64_EXTREMES)
    i = request.inputs.add(name="i", datatype="INT64", shape=[4])
    i.contents.int64_contents.extend(INT64_EXTREMES)
    response = service_pb2_grpc.GRPCInferenceServiceStub(channel).ModelInfer(request)
    raw = dict(zip([o.name for o in response.outputs], response.raw_output_contents, strict=True))
    assert np.frombuffer(raw["u_out"], "<u8").tolist() == UINT64_EXTREMES
    assert np.frombuffer(raw["i_out"], "<i8").tolist() == INT64_EXTREMES


def test_five_mib_request(grpc_client: grpcclient.InferenceServerClient) -> None:
    """Over grpcio's 4 MiB default: the limits follow MAX_REQUEST_BYTES."""
    n = 5 * MIB // 16  # two 8-byte inputs
    u = np.arange(n, dtype=np.uint64)
    i = -np.arange(n, dtype=np.int64)
    result = grpc_client.infer(
        "ints", [triton_input("u", u, "UINT64"), triton_input("i", i, "INT64")]
    )
    np.testing.assert_array_equal(result.as_numpy("u_out"), u)
    np.testing.assert_array_equal(result.as_numpy("i_out"), i)


def test_default_limits_admit_five_mib() -> None:
    defaults = Settings()
    assert defaults.max_request_bytes >= 5 * MIB
    options = dict(
        GrpcServer(
            SimpleNamespace(ready=lambda: True),  # type: ignore[arg-type]
            Metrics(),
            host="127.0.0.1",
            port=0,
            max_request_bytes=defaults.max_request_bytes,
        ).options()
    )
    assert options["grpc.max_receive_message_length"] > 5 * MIB


def test_streaming_infer(grpc_client: grpcclient.InferenceServerClient) -> None:
    results: list[object] = []
    done = threading.Event()

    def callback(result: object, error: object) -> None:
        results.append(error or result)
        done.set()

    x = np.ones((2, 256), dtype=np.float32)
    grpc_client.start_stream(callback=callback)
    try:
        grpc_client.async_stream_infer("mlp", [triton_input("input", x, "FP32")])
        assert done.wait(30)
    finally:
        grpc_client.stop_stream()
    assert results[0].as_numpy("output").shape == (2, 128)  # type: ignore[attr-defined]


# -- errors: Triton's codes, the HTTP API's messages -------------------------------------------
def _http_error(server: ServerThread, path: str, body: dict) -> str:
    answer = httpx.post(f"{server.base}{path}", json=body, timeout=30)
    assert answer.status_code >= 400
    return answer.json()["error"]


def test_unknown_model_is_not_found_with_http_message(
    grpc_client: grpcclient.InferenceServerClient, server: ServerThread
) -> None:
    x = np.ones((1, 256), dtype=np.float32)
    error = _error(lambda: grpc_client.infer("nope", [triton_input("input", x, "FP32")]))
    assert error.status() == "StatusCode.NOT_FOUND"
    body = {"inputs": [{"name": "input", "datatype": "FP32", "shape": [1, 256], "data": [0] * 256}]}
    assert error.message() == _http_error(server, "/v2/models/nope/infer", body)


def test_bad_shape_is_invalid_argument_with_http_message(
    grpc_client: grpcclient.InferenceServerClient, server: ServerThread
) -> None:
    x = np.ones((1, 3), dtype=np.float32)
    error = _error(lambda: grpc_client.infer("classifier", [triton_input("X", x, "FP32")]))
    assert error.status() == "StatusCode.INVALID_ARGUMENT"
    body = {"inputs": [{"name": "X", "datatype": "FP32", "shape": [1, 3], "data": [0, 0, 0]}]}
    assert error.message() == _http_error(server, "/v2/models/classifier/infer", body)


def test_unavailable_model_is_unavailable_with_http_message(
    grpc_client: grpcclient.InferenceServerClient, server: ServerThread
) -> None:
    x = np.ones((1, 4), dtype=np.float32)
    error = _error(lambda: grpc_client.infer("broken", [triton_input("X", x, "FP32")]))
    assert error.status() == "StatusCode.UNAVAILABLE"
    body = {"inputs": [{"name": "X", "datatype": "FP32", "shape": [1, 4], "data": [0] * 4}]}
    assert error.message() == _http_error(server, "/v2/models/broken/infer", body)


def test_too_large_is_resource_exhausted_with_http_message(
    grpc_client: grpcclient.InferenceServerClient,
) -> None:
    n = (LIMIT + 64 * 1024) // 16
    u, i = np.zeros(n, dtype=np.uint64), np.zeros(n, dtype=np.int64)
    error = _error(
        lambda: grpc_client.infer(
            "ints", [triton_input("u", u, "UINT64"), triton_input("i", i, "INT64")]
        )
    )
    assert error.status() == "StatusCode.RESOURCE_EXHAUSTED"
    assert re.fullmatch(
        rf"request body of \d+ bytes exceeds the limit of {LIMIT} bytes \(MAX_REQUEST_BYTES\)",
        error.message(),
    )


def test_far_too_large_is_refused_by_grpcio_itself(
    grpc_client: grpcclient.InferenceServerClient,
) -> None:
    n = (LIMIT + FRAMING_HEADROOM + MIB) // 16
    u, i = np.zeros(n, dtype=np.uint64), np.zeros(n, dtype=np.int64)
    error = _error(
        lambda: grpc_client.infer(
            "ints", [triton_input("u", u, "UINT64"), triton_input("i", i, "INT64")]
        )
    )
    assert error.status() == "StatusCode.RESOURCE_EXHAUSTED"


def test_typed_contents_that_do_not_fit_the_type_are_invalid(channel: grpc.Channel) -> None:
    request = service_pb2.ModelInferRequest(model_name="ints")
    u = request.inputs.add(name="u", datatype="UINT64", shape=[2])
    u.contents.uint64_contents.extend([1])  # one element for a shape of two
    i = request.inputs.add(name="i", datatype="INT64", shape=[1])
    i.contents.int64_contents.extend([1])
    with pytest.raises(grpc.RpcError) as info:
        service_pb2_grpc.GRPCInferenceServiceStub(channel).ModelInfer(request)
    assert info.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert "shape [2] has 2 elements but uint64_contents has 1" in info.value.details()


def test_unimplemented_rpc(grpc_client: grpcclient.InferenceServerClient) -> None:
    error = _error(lambda: grpc_client.get_inference_statistics("mlp"))
    assert error.status() == "StatusCode.UNIMPLEMENTED"


# -- repository extension, metrics, access log ---------------------------------------------------
def test_repository_index_and_reload(grpc_client: grpcclient.InferenceServerClient) -> None:
    index = grpc_client.get_model_repository_index(as_json=True)["models"]
    states = {m["name"]: m["state"] for m in index}
    assert states["mlp"] == "READY"
    assert states["broken"] == "UNAVAILABLE"
    grpc_client.load_model("strings")
    assert grpc_client.is_model_ready("strings")
    assert _error(lambda: grpc_client.load_model("absent")).status() == "StatusCode.NOT_FOUND"


def test_metrics_and_access_log_cover_grpc(
    grpc_client: grpcclient.InferenceServerClient,
    server: ServerThread,
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level("INFO", logger="service.access")
    x = np.ones((1, 256), dtype=np.float32)
    grpc_client.infer("mlp", [triton_input("input", x, "FP32")])
    _error(lambda: grpc_client.infer("nope", [triton_input("input", x, "FP32")]))
    metrics = httpx.get(f"{server.base}/metrics").text
    assert re.search(r'grpc_requests_total\{code="OK",method="ModelInfer"\} [1-9]', metrics)
    assert re.search(r'grpc_requests_total\{code="NOT_FOUND",method="ModelInfer"\} [1-9]', metrics)
    assert re.search(r'inference_requests_total\{model="mlp",status="200"\} [1-9]', metrics)
    records = [
        r
        for r in caplog.records
        if getattr(r, "path", "") == "/inference.GRPCInferenceService/ModelInfer"
    ]
    assert [(r.method, r.status) for r in records[-2:]] == [  # type: ignore[attr-defined]
        ("POST", 200),
        ("POST", 404),
    ]
    assert records[-1].client == "127.0.0.1"  # type: ignore[attr-defined]
    assert "grpc" in records[-1].user_agent  # type: ignore[attr-defined]


# -- readiness and shutdown ------------------------------------------------------------------------
def test_not_ready_server_reports_not_serving(tmp_path: Path) -> None:
    (tmp_path / "broken" / "1").mkdir(parents=True)
    (tmp_path / "broken" / "1" / "model.onnx").write_bytes(b"junk")
    port = free_port()
    with (
        serving(settings_for(tmp_path, grpc_port=port)),
        grpc.insecure_channel(f"127.0.0.1:{port}") as channel,
    ):
        answer = health_pb2_grpc.HealthStub(channel).Check(health_pb2.HealthCheckRequest())
        assert answer.status == health_pb2.HealthCheckResponse.NOT_SERVING
        ready = service_pb2_grpc.GRPCInferenceServiceStub(channel).ServerReady(
            service_pb2.ServerReadyRequest()
        )
        assert not ready.ready


def test_grpc_port_in_use_fails_start(tmp_path: Path) -> None:
    """SO_REUSEPORT is off: a second server on the same gRPC port fails instead of sharing it."""
    write_model(tmp_path / "mlp" / "1" / "model.onnx", build_mlp())
    port = free_port()
    exits: list[object] = []
    with serving(settings_for(tmp_path, grpc_port=port)):
        second = ServerThread(settings_for(tmp_path, grpc_port=port))

        def run() -> None:
            try:
                second.server.run()
            except SystemExit as exc:  # uvicorn's exit after a failed lifespan startup
                exits.append(exc.code)

        thread = threading.Thread(target=run)
        thread.start()
        thread.join(30)
        assert not second.server.started
        assert exits == [3]


def test_shutdown_drains_grpc_calls_in_flight(tmp_path: Path) -> None:
    """A call in flight when shutdown starts still gets its answer; new calls are refused."""
    from service.__main__ import DrainingServer

    write_model(tmp_path / "mlp" / "1" / "model.onnx", build_mlp())
    port = free_port()
    thread = ServerThread(settings_for(tmp_path, grpc_port=port))
    slow = SlowScheduler(thread.app.state.plane.scheduler)
    thread.app.state.plane.scheduler = slow
    thread.server = DrainingServer(thread.server.config)
    thread.thread = threading.Thread(target=thread.server.run, daemon=True)
    thread.start()
    outcome: dict[str, object] = {}

    def call() -> None:
        with grpcclient.InferenceServerClient(url=f"127.0.0.1:{port}") as c:
            x = np.ones((1, 256), dtype=np.float32)
            try:
                outcome["result"] = c.infer("mlp", [triton_input("input", x, "FP32")])
            except InferenceServerException as exc:
                outcome["error"] = exc

    caller = threading.Thread(target=call)
    caller.start()
    assert slow.entered.wait(30)
    thread.server.should_exit = True
    caller.join(30)
    thread.thread.join(30)
    assert "error" not in outcome, outcome.get("error")
    assert outcome["result"].as_numpy("output").shape == (1, 128)  # type: ignore[attr-defined]
    with (
        grpcclient.InferenceServerClient(url=f"127.0.0.1:{port}") as c,
        pytest.raises(InferenceServerException),
    ):
        c.is_server_live(client_timeout=2)


class SlowScheduler:
    """Delays every run by half a second, so a call is surely in flight at shutdown."""

    def __init__(self, inner: object) -> None:
        self.inner = inner
        self.entered = threading.Event()

    async def run(self, model: object, feeds: object, output_names: object) -> object:
        import asyncio

        self.entered.set()
        await asyncio.sleep(0.5)
        return await self.inner.run(model, feeds, output_names)  # type: ignore[attr-defined]

    def release(self, model: object) -> None:
        self.inner.release(model)  # type: ignore[attr-defined]

    def close(self) -> None:
        self.inner.close()  # type: ignore[attr-defined]


# -- the real entry point ----------------------------------------------------------------------
def test_cli_grpc_port(monkeypatch: pytest.MonkeyPatch) -> None:
    from service.__main__ import parse_args

    monkeypatch.setenv("GRPC_PORT", "9001")
    assert parse_args([]).grpc_port == 9001
    assert parse_args(["--grpc-port", "0"]).grpc_port == 0


def test_python_m_service_serves_grpc_on_uvloop_and_stops_cleanly(tmp_path: Path) -> None:
    """`python -m service` (uvloop, httptools, the container's entrypoint) serves gRPC next to
    HTTP, and SIGTERM drains both and exits 0."""
    write_model(tmp_path / "mlp" / "1" / "model.onnx", build_mlp())
    http_port, grpc_port = free_port(), free_port()
    env = {**os.environ, "MODEL_DIR": str(tmp_path), "EXECUTION_PROVIDER": "cpu"}
    args = ["--host", "127.0.0.1", "--port", str(http_port), "--grpc-port", str(grpc_port)]
    process = subprocess.Popen(
        [sys.executable, "-m", "service", *args],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        with grpcclient.InferenceServerClient(url=f"127.0.0.1:{grpc_port}") as c:
            deadline = time.monotonic() + 60
            while True:
                try:
                    if c.is_server_ready():
                        break
                except InferenceServerException:
                    pass
                assert time.monotonic() < deadline, "gRPC did not become ready"
                time.sleep(0.2)
            x = np.ones((4, 256), dtype=np.float32)
            assert c.infer("mlp", [triton_input("input", x, "FP32")]).as_numpy("output").shape == (
                4,
                128,
            )
        process.send_signal(signal.SIGTERM)
        output, _ = process.communicate(timeout=60)
    finally:
        if process.poll() is None:
            process.kill()
            process.communicate()
    assert process.returncode == 0, output[-2000:]
    assert '"gRPC stopped"' in output
    # gRPC calls go through the service's own access log writer (service.logs.access: orjson,
    # buffered, flushed at shutdown): the same fields as HTTP's records, one JSON object a line
    records = [json.loads(line) for line in output.splitlines() if line.startswith("{")]
    infer = [r for r in records if r.get("path") == "/inference.GRPCInferenceService/ModelInfer"]
    assert len(infer) == 1, output[-2000:]
    assert infer[0]["logger"] == "service.access"
    assert (infer[0]["method"], infer[0]["status"], infer[0]["client"]) == (
        "POST",
        200,
        "127.0.0.1",
    )
    assert "grpc" in infer[0]["user_agent"]
    assert infer[0]["duration_ms"] > 0
    assert infer[0]["message"] == "POST /inference.GRPCInferenceService/ModelInfer 200"


def test_malformed_request_is_invalid_argument(channel: grpc.Channel) -> None:
    infer = channel.unary_unary("/inference.GRPCInferenceService/ModelInfer")
    with pytest.raises(grpc.RpcError) as info:
        infer(b"\xff\xff\xff")
    assert info.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert "not a valid inference.ModelInferRequest" in info.value.details()


def test_shedding_is_unavailable(tmp_path: Path) -> None:
    """A full queue (the service sheds load) answers UNAVAILABLE, like Triton, at once."""
    from tests.service.test_shutdown import WIDTH, slow_model

    write_model(tmp_path / "slow" / "1" / "model.onnx", slow_model())
    (tmp_path / "slow" / "config.json").write_text(
        '{"max_batch_size": 1, "dynamic_batching": {"max_queue_size": 1}}'
    )
    port = free_port()
    x = np.ones((256, WIDTH), dtype=np.float32)
    with (
        serving(settings_for(tmp_path, grpc_port=port)),
        grpcclient.InferenceServerClient(url=f"127.0.0.1:{port}") as c,
    ):
        outcomes: list[object] = []
        done = threading.Semaphore(0)

        def callback(result: object, error: object) -> None:
            outcomes.append(error if error is not None else result)
            done.release()

        for _ in range(4):  # one runs, one waits, the others find the queue full
            c.async_infer("slow", [triton_input("x", x, "FP32")], callback)
        for _ in range(4):
            assert done.acquire(timeout=120)
    errors = [o for o in outcomes if isinstance(o, InferenceServerException)]
    assert errors, "no request was shed"
    assert {e.status() for e in errors} == {"StatusCode.UNAVAILABLE"}
    assert all("queue is full" in e.message() for e in errors)


def test_grpc_port_must_differ_from_http_port() -> None:
    from pydantic import ValidationError

    with pytest.raises(ValidationError, match="GRPC_PORT and PORT are both 9000"):
        Settings(port=9000, grpc_port=9000)
    assert Settings(port=9000, grpc_port=0).grpc_port == 0
