"""Issue 15, data corruption: answers must be exact or refused, never silently wrong (status 200).

Every test goes through the HTTP API of a real server, with models built for the purpose
(``hostile_models.py``), and compares with ONNX Runtime run directly where an answer is expected.
"""

from __future__ import annotations

import asyncio
import json
import struct
from collections.abc import Iterator
from pathlib import Path

import httpx
import numpy as np
import onnx
import onnxruntime as ort
import pytest
from onnx import TensorProto

from tests.service.conftest import settings_for
from tests.service.helpers import ServerThread, client, serving, write_model
from tests.service.hostile_models import (
    centered,
    identity,
    label_encoder,
    negate_bool,
    scalar_model,
    sequence_cumsum,
)

INTEGER_TYPES = {
    "INT8": TensorProto.INT8,
    "INT16": TensorProto.INT16,
    "INT32": TensorProto.INT32,
    "INT64": TensorProto.INT64,
    "UINT8": TensorProto.UINT8,
    "UINT16": TensorProto.UINT16,
    "UINT32": TensorProto.UINT32,
    "UINT64": TensorProto.UINT64,
}
NUMPY = {
    name: np.dtype(onnx.helper.tensor_dtype_to_np_dtype(t)) for name, t in INTEGER_TYPES.items()
}


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerThread]:
    root = tmp_path_factory.mktemp("hostile")
    write_model(root / "labels" / "1" / "model.onnx", label_encoder())
    write_model(root / "centered" / "1" / "model.onnx", centered())
    write_model(root / "cumsum" / "1" / "model.onnx", sequence_cumsum())
    write_model(root / "scalar" / "1" / "model.onnx", scalar_model())
    write_model(root / "not" / "1" / "model.onnx", negate_bool())
    write_model(root / "fp32" / "1" / "model.onnx", identity(TensorProto.FLOAT))
    write_model(root / "fp16" / "1" / "model.onnx", identity(TensorProto.FLOAT16))
    for name, elem in INTEGER_TYPES.items():
        write_model(root / name.lower() / "1" / "model.onnx", identity(elem))
    # a short queue delay so that concurrent requests really are combined when batching is on
    with serving(settings_for(root, max_queue_delay_us=2000)) as running:
        yield running


def json_body(inputs: list[dict], outputs: list[dict] | None = None) -> bytes:
    doc: dict = {"inputs": inputs}
    if outputs is not None:
        doc["outputs"] = outputs
    return json.dumps(doc).encode()


def binary_body(name: str, datatype: str, array: np.ndarray, raw: bytes | None = None, **doc):
    """A binary-extension request (as tritonclient builds it): JSON header, then the tensor."""
    if raw is None:
        if datatype == "BYTES":
            raw = b"".join(struct.pack("<I", len(b)) + b for b in array.reshape(-1))
        else:
            raw = np.ascontiguousarray(array).astype(array.dtype.newbyteorder("<")).tobytes()
    header = json.dumps(
        {
            "inputs": [
                {
                    "name": name,
                    "datatype": datatype,
                    "shape": list(array.shape),
                    "parameters": {"binary_data_size": len(raw)},
                }
            ],
            **doc,
        }
    ).encode()
    return header + raw, {"Inference-Header-Content-Length": str(len(header))}


def binary_output(response: httpx.Response, dtype: np.dtype) -> np.ndarray:
    hlen = int(response.headers["inference-header-content-length"])
    head = json.loads(response.content[:hlen])
    (tensor,) = head["outputs"]
    return np.frombuffer(response.content[hlen:], dtype=dtype).reshape(tensor["shape"])


# -- 1. strings ------------------------------------------------------------------------------
def _labels_direct(texts: list[str]) -> list[int]:
    session = ort.InferenceSession(
        label_encoder().SerializeToString(), providers=["CPUExecutionProvider"]
    )
    return session.run(None, {"text": np.array(texts, dtype=object)})[0].tolist()


def test_string_inputs_reach_the_model_as_text_over_json(server: ServerThread) -> None:
    texts = ["cat", "dog", "cow"]
    assert _labels_direct(texts) == [1, 2, -1]
    with client(server) as http:
        response = http.post(
            "/v2/models/labels/infer",
            content=json_body([{"name": "text", "datatype": "BYTES", "shape": [3], "data": texts}]),
        )
    assert response.status_code == 200, response.text
    assert response.json()["outputs"][0]["data"] == [1, 2, -1]


def test_string_inputs_reach_the_model_as_text_over_binary(server: ServerThread) -> None:
    texts = np.array([b"cat", b"dog", b"cow", "ch\u00e9vre".encode()], dtype=object)
    body, headers = binary_body("text", "BYTES", texts)
    with client(server) as http:
        response = http.post("/v2/models/labels/infer", content=body, headers=headers)
    assert response.status_code == 200, response.text
    assert response.json()["outputs"][0]["data"] == [1, 2, -1, -1]


def test_non_utf8_bytes_for_a_string_model_are_refused(server: ServerThread) -> None:
    body, headers = binary_body("text", "BYTES", np.array([b"cat", b"\xff\xfe"], dtype=object))
    with client(server) as http:
        response = http.post("/v2/models/labels/infer", content=body, headers=headers)
    assert response.status_code == 400
    assert "element 1 is not valid UTF-8" in response.json()["error"]


# -- 2. batching never mixes rows --------------------------------------------------------------
def _run_direct(model: onnx.ModelProto, x: np.ndarray) -> np.ndarray:
    session = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
    return session.run(None, {"x": x})[0]


async def _concurrent(server: ServerThread, path: str, arrays: list[np.ndarray]) -> list:
    async with httpx.AsyncClient(base_url=server.base, timeout=60) as http:

        async def one(x: np.ndarray) -> np.ndarray:
            body, headers = binary_body("x", "FP32", x, outputs=[{"name": "y"}])
            response = await http.post(path, content=body, headers=headers)
            assert response.status_code == 200, response.text
            return np.array(response.json()["outputs"][0]["data"], dtype=np.float32)

        return await asyncio.gather(*(one(x) for x in arrays))


@pytest.mark.parametrize(
    ("model_name", "build", "shape"),
    [("centered", centered, (4,)), ("cumsum", sequence_cumsum, (1, 3))],
)
def test_200_concurrent_requests_each_get_their_own_answer(
    server: ServerThread, model_name: str, build, shape: tuple[int, ...]
) -> None:
    """x - mean(x, axis=0) and a sequence-first CumSum accept any first dimension, but it is not
    a batch axis: combined, every client would receive a mix of the others' rows."""
    rng = np.random.default_rng(15)
    arrays = [
        rng.standard_normal((int(rng.integers(1, 4)), *shape)).astype(np.float32)
        for _ in range(200)
    ]
    answers = asyncio.run(_concurrent(server, f"/v2/models/{model_name}/infer", arrays))
    model = build()
    wrong = [
        i
        for i, (x, got) in enumerate(zip(arrays, answers, strict=True))
        if not np.allclose(got.reshape(x.shape), _run_direct(model, x), rtol=1e-5, atol=1e-5)
    ]
    assert not wrong, f"{len(wrong)} of 200 answers mixed with other requests' rows"
    with client(server) as http:
        parameters = http.get(f"/v2/models/{model_name}").json()["parameters"]
    assert parameters["dynamic_batching"] is False
    assert "not a batch axis" in parameters["batching_decision"]


def test_row_wise_models_keep_batching_after_the_probe(server: ServerThread) -> None:
    with client(server) as http:
        parameters = http.get("/v2/models/fp32").json()["parameters"]
    assert parameters["dynamic_batching"] is True
    assert parameters["max_batch_size"] == 32
    assert "equal separate runs" in parameters["batching_decision"]


def test_the_model_config_file_forces_batching_either_way(tmp_path: Path) -> None:
    """The user's word wins over the probe: max_batch_size > 1 in config.json turns batching on
    (no probe), 0 or 1 turns it off even for a model the probe would accept."""
    write_model(tmp_path / "forced_on" / "1" / "model.onnx", centered())
    (tmp_path / "forced_on" / "config.json").write_text('{"max_batch_size": 8}')
    write_model(tmp_path / "forced_off" / "1" / "model.onnx", identity(TensorProto.FLOAT))
    (tmp_path / "forced_off" / "config.json").write_text('{"max_batch_size": 1}')
    with serving(settings_for(tmp_path)) as running, client(running) as http:
        on = http.get("/v2/models/forced_on").json()["parameters"]
        off = http.get("/v2/models/forced_off").json()["parameters"]
    assert (on["dynamic_batching"], on["max_batch_size"]) == (True, 8)
    assert "config file" in on["batching_decision"]
    assert (off["dynamic_batching"], off["max_batch_size"]) == (False, 0)


# -- 3. integers exact or refused ---------------------------------------------------------------
def extremes(datatype: str) -> list[int]:
    info = np.iinfo(NUMPY[datatype])
    values = {info.min, info.min + 1, 0, 1, info.max - 1, info.max}
    if info.min < 0:
        values.add(-1)
    if info.max > 2**53:  # where a float64 detour loses integers
        values |= {2**53 + 1, 2**63 - 1 if info.min < 0 else 2**63 + 1}
    return sorted(values)


@pytest.mark.parametrize("datatype", list(INTEGER_TYPES))
def test_integer_extremes_round_trip_exactly_over_json(server: ServerThread, datatype: str) -> None:
    values = extremes(datatype)
    path = f"/v2/models/{datatype.lower()}/infer"
    tensor = {"name": "x", "datatype": datatype, "shape": [len(values)], "data": values}
    with client(server) as http:
        as_json = http.post(path, content=json_body([tensor]))
        as_binary = http.post(
            path, content=json_body([tensor], [{"name": "y", "parameters": {"binary_data": True}}])
        )
    assert as_json.status_code == 200, as_json.text
    assert as_json.json()["outputs"][0]["data"] == values
    assert binary_output(as_binary, NUMPY[datatype]).tolist() == values


@pytest.mark.parametrize("datatype", list(INTEGER_TYPES))
def test_integer_extremes_round_trip_exactly_over_binary(
    server: ServerThread, datatype: str
) -> None:
    values = extremes(datatype)
    body, headers = binary_body("x", datatype, np.array(values, dtype=NUMPY[datatype]))
    with client(server) as http:
        response = http.post(f"/v2/models/{datatype.lower()}/infer", content=body, headers=headers)
    assert response.status_code == 200, response.text
    assert response.json()["outputs"][0]["data"] == values


@pytest.mark.parametrize("datatype", list(INTEGER_TYPES))
def test_integers_outside_the_range_are_refused(server: ServerThread, datatype: str) -> None:
    info = np.iinfo(NUMPY[datatype])
    path = f"/v2/models/{datatype.lower()}/infer"
    with client(server) as http:
        for bad in (info.max + 1, info.min - 1):
            tensor = {"name": "x", "datatype": datatype, "shape": [2], "data": [1, bad]}
            response = http.post(path, content=json_body([tensor]))
            assert response.status_code == 400, (bad, response.text)
            error = response.json()["error"]
            if -(2**63) <= bad < 2**64:
                assert f"values outside [{info.min}, {info.max}]" in error
            else:  # past 64 bits JSON parsers read a float: refused as a float
                assert "beyond 2**53" in error


def test_the_issues_int64_and_uint64_cases(server: ServerThread) -> None:
    """The cases of the report: a float beside big integers sent everything through float64."""
    cases = [
        ("UINT64", [0, 1, 2**53 + 1, 2**63 - 1, 2**63 + 1, 2**64 - 1]),
        ("INT64", [1.0, 9223372036854775807]),
        ("INT64", [1.0, 9007199254740993]),
    ]
    with client(server) as http:
        for datatype, data in cases:
            tensor = {"name": "x", "datatype": datatype, "shape": [len(data)], "data": data}
            response = http.post(
                f"/v2/models/{datatype.lower()}/infer", content=json_body([tensor])
            )
            assert response.status_code == 200, response.text
            assert response.json()["outputs"][0]["data"] == [int(v) for v in data]
        # 9.223372036854775807e18 is the float 2**63: not an INT64, and not silently its minimum
        body = b'{"inputs":[{"name":"x","datatype":"INT64","shape":[1],"data":[9.223372036854775807e18]}]}'  # noqa: E501
        response = http.post("/v2/models/int64/infer", content=body)
    assert response.status_code == 400
    assert "beyond 2**53" in response.json()["error"]


# -- 4. BOOL bytes ------------------------------------------------------------------------------
def test_binary_bool_bytes_other_than_0_and_1_are_refused(server: ServerThread) -> None:
    array = np.array([False, True, True, True])
    body, headers = binary_body("x", "BOOL", array, raw=bytes([0, 1, 2, 255]))
    good, good_headers = binary_body("x", "BOOL", np.array([False, True]))
    with client(server) as http:
        refused = http.post("/v2/models/not/infer", content=body, headers=headers)
        answered = http.post("/v2/models/not/infer", content=good, headers=good_headers)
    assert refused.status_code == 400
    assert "BOOL bytes must be 0 (false) or 1 (true), got 2" in refused.json()["error"]
    assert answered.json()["outputs"][0]["data"] == [True, False]


# -- 5. non-finite floats -----------------------------------------------------------------------
def test_non_finite_outputs_are_named_in_json_and_accepted_back(server: ServerThread) -> None:
    x = np.array([1.5, np.inf, -np.inf, np.nan], dtype=np.float32)
    body, headers = binary_body("x", "FP32", x)
    with client(server) as http:
        first = http.post("/v2/models/fp32/infer", content=body, headers=headers)
        data = first.json()["outputs"][0]["data"]
        assert data == [1.5, "Infinity", "-Infinity", "NaN"]
        again = http.post(
            "/v2/models/fp32/infer",
            content=json_body([{"name": "x", "datatype": "FP32", "shape": [4], "data": data}]),
            headers={},
        )
    assert again.status_code == 200, again.text
    assert again.json()["outputs"][0]["data"] == data


@pytest.mark.parametrize(
    ("model", "datatype", "value"), [("fp32", "FP32", 1e39), ("fp16", "FP16", 70000.0)]
)
def test_json_floats_beyond_the_type_are_refused(
    server: ServerThread, model: str, datatype: str, value: float
) -> None:
    tensor = {"name": "x", "datatype": datatype, "shape": [2], "data": [1.0, value]}
    with client(server) as http:
        response = http.post(f"/v2/models/{model}/infer", content=json_body([tensor]))
    assert response.status_code == 400
    assert f"beyond {datatype}'s range" in response.json()["error"]


def test_unknown_strings_in_float_data_are_refused(server: ServerThread) -> None:
    tensor = {"name": "x", "datatype": "FP32", "shape": [1], "data": ["nan"]}
    with client(server) as http:
        response = http.post("/v2/models/fp32/infer", content=json_body([tensor]))
    assert response.status_code == 400
    assert "'NaN'" in response.json()["error"]


# -- 8. scalars ---------------------------------------------------------------------------------
def test_scalar_models_are_served_over_json_and_binary(server: ServerThread) -> None:
    body, headers = binary_body("x", "FP32", np.array(3.0, dtype=np.float32))
    with client(server) as http:
        as_json = http.post(
            "/v2/models/scalar/infer",
            content=json_body([{"name": "x", "datatype": "FP32", "shape": [], "data": 3.0}]),
        )
        as_binary = http.post("/v2/models/scalar/infer", content=body, headers=headers)
    for response in (as_json, as_binary):
        assert response.status_code == 200, response.text
        out = response.json()["outputs"][0]
        assert (out["shape"], out["data"]) == ([], [6.0])
