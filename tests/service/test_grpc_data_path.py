"""Issue 15's data-path guarantees hold over gRPC too (the gRPC transport shares the data plane's
``prepare``, batching decision and run-error mapping with HTTP): strings reach the model as
text, rows of models whose first dimension is not a batch axis are never mixed, a request whose
values make a node fail is the client's error (INVALID_ARGUMENT, HTTP's message), raw BOOL bytes
other than 0/1 are refused, and the effective configuration reports the probe's decision.
"""

from __future__ import annotations

import asyncio
import json
import struct
from collections.abc import Iterator

import grpc
import httpx
import numpy as np
import onnxruntime as ort
import pytest
import tritonclient.grpc as grpcclient
from onnx import TensorProto
from tritonclient.grpc import service_pb2, service_pb2_grpc
from tritonclient.utils import InferenceServerException

from service import metric_names as mn
from tests.service.conftest import settings_for
from tests.service.grpc_models import triton_input
from tests.service.helpers import ServerThread, free_port, serving, write_model
from tests.service.hostile_models import centered, identity, label_encoder, two_input_gather


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerThread]:
    root = tmp_path_factory.mktemp("grpc-data-path")
    write_model(root / "labels" / "1" / "model.onnx", label_encoder())
    write_model(root / "centered" / "1" / "model.onnx", centered())
    write_model(root / "gather" / "1" / "model.onnx", two_input_gather())
    write_model(root / "fp32" / "1" / "model.onnx", identity(TensorProto.FLOAT))
    write_model(root / "bool" / "1" / "model.onnx", identity(TensorProto.BOOL))
    # a queue delay so that concurrent requests would be combined if batching were on
    settings = settings_for(root, grpc_port=free_port(), max_queue_delay_us=2000)
    with serving(settings) as running:
        yield running


@pytest.fixture
def stub(server: ServerThread) -> Iterator[service_pb2_grpc.GRPCInferenceServiceStub]:
    with grpc.insecure_channel(f"127.0.0.1:{server.settings.grpc_port}") as channel:
        yield service_pb2_grpc.GRPCInferenceServiceStub(channel)


def _http_error(server: ServerThread, path: str, body: bytes, headers: dict[str, str]) -> str:
    answer = httpx.post(f"{server.base}{path}", content=body, headers=headers, timeout=30)
    assert answer.status_code == 400, answer.text
    return answer.json()["error"]


def _binary_body(tensors: list[tuple[str, str, np.ndarray]]) -> tuple[bytes, dict[str, str]]:
    """An HTTP binary-extension request with every input as raw bytes."""
    inputs, chunks = [], []
    for name, datatype, array in tensors:
        if datatype == "BYTES":
            raw = b"".join(struct.pack("<I", len(b)) + b for b in array.reshape(-1))
        else:
            raw = np.ascontiguousarray(array).astype(array.dtype.newbyteorder("<")).tobytes()
        inputs.append(
            {
                "name": name,
                "datatype": datatype,
                "shape": list(array.shape),
                "parameters": {"binary_data_size": len(raw)},
            }
        )
        chunks.append(raw)
    header = json.dumps({"inputs": inputs}).encode()
    headers = {"Inference-Header-Content-Length": str(len(header))}
    return header + b"".join(chunks), headers


# -- strings ----------------------------------------------------------------------------------
def test_string_inputs_reach_the_model_as_text_raw(
    grpc_client: grpcclient.InferenceServerClient,
) -> None:
    """ORT would read a ``bytes`` element as the text of its repr (``b'cat'``): every label
    would be the default -1."""
    texts = np.array([b"cat", b"dog", b"cow", "ch\u00e9vre".encode()], dtype=object)
    result = grpc_client.infer("labels", [triton_input("text", texts, "BYTES")])
    assert result.as_numpy("label").tolist() == [1, 2, -1, -1]


def test_string_inputs_reach_the_model_as_text_typed(
    stub: service_pb2_grpc.GRPCInferenceServiceStub,
) -> None:
    request = service_pb2.ModelInferRequest(model_name="labels")
    tensor = request.inputs.add(name="text", datatype="BYTES", shape=[3])
    tensor.contents.bytes_contents.extend([b"dog", b"cat", b"cat"])
    response = stub.ModelInfer(request)
    assert np.frombuffer(response.raw_output_contents[0], dtype="<i8").tolist() == [2, 1, 1]


def test_non_utf8_strings_are_invalid_with_http_message(
    grpc_client: grpcclient.InferenceServerClient, server: ServerThread
) -> None:
    texts = np.array([b"cat", b"\xff\xfe"], dtype=object)
    with pytest.raises(InferenceServerException) as info:
        grpc_client.infer("labels", [triton_input("text", texts, "BYTES")])
    assert info.value.status() == "StatusCode.INVALID_ARGUMENT"
    assert "element 1 is not valid UTF-8" in info.value.message()
    body, headers = _binary_body([("text", "BYTES", texts)])
    assert info.value.message() == _http_error(server, "/v2/models/labels/infer", body, headers)


# -- run errors caused by the values ------------------------------------------------------------
def test_index_out_of_range_is_invalid_argument_with_http_message(
    grpc_client: grpcclient.InferenceServerClient, server: ServerThread
) -> None:
    data = np.ones((2, 2), dtype=np.float32)
    indices = np.array([0, 7], dtype=np.int64)
    with pytest.raises(InferenceServerException) as info:
        grpc_client.infer(
            "gather",
            [triton_input("data", data, "FP32"), triton_input("indices", indices, "INT64")],
        )
    assert info.value.status() == "StatusCode.INVALID_ARGUMENT"
    assert info.value.message().startswith("model 'gather' rejected the input: ")
    body, headers = _binary_body([("data", "FP32", data), ("indices", "INT64", indices)])
    assert info.value.message() == _http_error(server, "/v2/models/gather/infer", body, headers)


def test_raw_bool_bytes_other_than_0_or_1_are_invalid(
    stub: service_pb2_grpc.GRPCInferenceServiceStub,
) -> None:
    request = service_pb2.ModelInferRequest(model_name="bool")
    request.inputs.add(name="x", datatype="BOOL", shape=[3])
    request.raw_input_contents.append(bytes([0, 1, 2]))
    with pytest.raises(grpc.RpcError) as info:
        stub.ModelInfer(request)
    assert info.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert "BOOL bytes must be 0 (false) or 1 (true), got 2" in info.value.details()


def test_raw_content_of_the_wrong_size_names_the_raw_content(
    stub: service_pb2_grpc.GRPCInferenceServiceStub,
) -> None:
    request = service_pb2.ModelInferRequest(model_name="fp32")
    request.inputs.add(name="x", datatype="FP32", shape=[3])
    request.raw_input_contents.append(b"\0" * 8)
    with pytest.raises(grpc.RpcError) as info:
        stub.ModelInfer(request)
    assert info.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert "raw content is 8 bytes but shape [3] of FP32 needs 12 bytes" in info.value.details()


# -- batching never mixes rows ------------------------------------------------------------------
def test_concurrent_grpc_requests_to_a_non_batch_axis_model_get_their_own_answers(
    server: ServerThread,
) -> None:
    """x - mean(x, axis=0) takes any first dimension, but it is not a batch axis: the probe
    turned batching off, so 100 concurrent gRPC calls are never combined."""
    rng = np.random.default_rng(14)
    arrays = [
        rng.standard_normal((int(rng.integers(1, 4)), 4)).astype(np.float32) for _ in range(100)
    ]

    async def go() -> list[np.ndarray]:
        import tritonclient.grpc.aio as aioclient

        async with aioclient.InferenceServerClient(
            url=f"127.0.0.1:{server.settings.grpc_port}"
        ) as aio:

            async def one(x: np.ndarray) -> np.ndarray:
                tensor = aioclient.InferInput("x", list(x.shape), "FP32")
                tensor.set_data_from_numpy(x)
                return (await aio.infer("centered", [tensor])).as_numpy("y")

            return await asyncio.gather(*(one(x) for x in arrays))

    answers = asyncio.run(go())
    session = ort.InferenceSession(
        centered().SerializeToString(), providers=["CPUExecutionProvider"]
    )
    wrong = [
        i
        for i, (x, got) in enumerate(zip(arrays, answers, strict=True))
        if not np.allclose(got, session.run(None, {"x": x})[0], rtol=1e-5, atol=1e-5)
    ]
    assert not wrong, f"{len(wrong)} of 100 answers mixed with other requests' rows"


# -- the effective configuration reports the batching decision ----------------------------------
def test_config_of_a_model_the_probe_refused_has_no_batch_dimension(
    grpc_client: grpcclient.InferenceServerClient, server: ServerThread
) -> None:
    """Triton's meaning of max_batch_size > 0 is "the first dimension is a batch": for a model
    whose rows are not independent that would be false, so the configuration says 0 and keeps
    the first dimension in dims, over both protocols."""
    over_grpc = grpc_client.get_model_config("centered", as_json=True)["config"]
    over_http = httpx.get(f"{server.base}/v2/models/centered/config", timeout=30).json()
    for config in (over_http, over_grpc):
        assert config.get("max_batch_size", 0) == 0
        assert "dynamic_batching" not in config
        assert "not a batch axis" in config["parameters"]["batching_decision"]["string_value"]
    assert over_http["input"][0]["dims"] == [-1, 4]


def test_config_of_a_row_wise_model_keeps_batching(server: ServerThread) -> None:
    config = httpx.get(f"{server.base}/v2/models/fp32/config", timeout=30).json()
    assert config["max_batch_size"] == 32
    assert "dynamic_batching" in config
    assert config["input"][0].get("dims", []) == []  # [n]: batch only (proto3 omits empty)
    assert "equal separate runs" in config["parameters"]["batching_decision"]["string_value"]


# -- CloudWatch metrics (EMF) count gRPC calls like HTTP requests -------------------------------
def test_grpc_calls_are_in_the_cloudwatch_metrics(
    grpc_client: grpcclient.InferenceServerClient, server: ServerThread
) -> None:
    """The stack scales on ConcurrentRequests and alarms on errors: gRPC load must show."""
    emf = server.app.state.metrics.emf
    emf.flush()  # a clean interval
    x = np.ones(3, dtype=np.float32)
    for _ in range(2):
        grpc_client.infer("fp32", [triton_input("x", x, "FP32")])
    with pytest.raises(InferenceServerException):
        grpc_client.infer(
            "fp32", [triton_input("x", np.ones((1, 3), dtype=np.float32), "FP32")]
        )  # rank
    with pytest.raises(InferenceServerException):
        grpc_client.infer("nope", [triton_input("x", x, "FP32")])
    docs = emf.flush(*server.app.state.plane.registry.serving_state())
    requests = {d[mn.MODEL]: d for d in docs if "Requests" in d and mn.MODEL in d}
    fp32 = requests["fp32"]
    assert (fp32["Requests"], fp32["Errors4xx"], fp32["Errors5xx"]) == (3, 1, 0)
    assert fp32["Latency"]["Count"] == 2
    assert requests[mn.UNKNOWN_MODEL]["Errors4xx"] == 1
    service = next(d for d in docs if "ConcurrentRequests" in d)
    assert service["MaxConcurrentRequests"] >= 1
    assert service["ConcurrentRequests"] > 0
