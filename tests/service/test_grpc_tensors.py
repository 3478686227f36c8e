"""gRPC request decoding and error-code mapping, without a server."""

from __future__ import annotations

import grpc
import numpy as np
import pytest
from tritonclient.grpc import service_pb2

from service.errors import (
    InferenceError,
    InvalidInput,
    ModelNotFound,
    ModelNotReady,
    PayloadTooLarge,
    ServerBusy,
)
from service.grpc.status import HTTP_STATUS, grpc_code
from service.grpc.tensors import decode_infer_request, encode_infer_response


@pytest.mark.parametrize(
    ("error", "code"),
    [
        (InvalidInput("x"), grpc.StatusCode.INVALID_ARGUMENT),
        (ModelNotFound("x"), grpc.StatusCode.NOT_FOUND),
        (PayloadTooLarge("x"), grpc.StatusCode.RESOURCE_EXHAUSTED),
        (ServerBusy("x"), grpc.StatusCode.UNAVAILABLE),
        (ModelNotReady("x"), grpc.StatusCode.UNAVAILABLE),
        (InferenceError("x"), grpc.StatusCode.INTERNAL),
    ],
)
def test_codes_as_triton_maps_them(error: InferenceError, code: grpc.StatusCode) -> None:
    assert grpc_code(error) == code
    assert HTTP_STATUS[code] == error.status_code


def _request(**inputs: tuple[str, list[int]]) -> object:
    request = service_pb2.ModelInferRequest(model_name="m")
    for name, (datatype, shape) in inputs.items():
        request.inputs.add(name=name, datatype=datatype, shape=shape)
    return request


def test_raw_contents_little_endian_row_major() -> None:
    request = _request(x=("FP16", [2, 2]))
    x = np.arange(4, dtype=np.float16).reshape(2, 2)
    request.raw_input_contents.append(x.astype("<f2").tobytes())
    decoded = decode_infer_request(request)
    np.testing.assert_array_equal(decoded.inputs["x"], x)
    assert decoded.outputs is None


@pytest.mark.parametrize(
    ("datatype", "field", "values", "message"),
    [
        ("INT8", "int_contents", [200], r"int_contents holds values outside \[-128, 127\]"),
        ("UINT16", "uint_contents", [70000], r"outside \[0, 65535\]"),
        ("FP16", "fp32_contents", [1.0], "FP16 has no typed contents field"),
    ],
)
def test_typed_contents_are_checked(datatype: str, field: str, values: list, message: str) -> None:
    request = _request(x=(datatype, [1]))
    getattr(request.inputs[0].contents, field).extend(values)
    with pytest.raises(InvalidInput, match=message):
        decode_infer_request(request)


def test_raw_for_some_inputs_only_is_refused() -> None:
    request = _request(a=("FP32", [1]), b=("FP32", [1]))
    request.raw_input_contents.append(b"\0\0\0\0")
    with pytest.raises(
        InvalidInput, match="raw_input_contents has 1 entries but the request has 2"
    ):
        decode_infer_request(request)


def test_raw_size_must_match_shape() -> None:
    request = _request(x=("FP32", [3]))
    request.raw_input_contents.append(b"\0" * 8)
    with pytest.raises(InvalidInput, match="raw content is 8 bytes but shape \\[3\\] of FP32"):
        decode_infer_request(request)


def test_no_data_is_refused() -> None:
    with pytest.raises(InvalidInput, match="neither contents nor raw_input_contents"):
        decode_infer_request(_request(x=("FP32", [2])))


def test_classification_is_refused() -> None:
    request = _request(x=("FP32", [1]))
    request.inputs[0].contents.fp32_contents.append(1.0)
    request.outputs.add(name="y").parameters["classification"].int64_param = 3
    with pytest.raises(InvalidInput, match="classification extension is not supported"):
        decode_infer_request(request)


def test_response_bytes_and_bool() -> None:
    strings = np.array([b"a", b"bc"], dtype=object)
    flags = np.array([True, False])
    response = encode_infer_response(
        "m", "1", "id", [("s", "BYTES", strings), ("f", "BOOL", flags)]
    )
    assert response.raw_output_contents[0] == b"\x01\0\0\0a\x02\0\0\0bc"
    assert response.raw_output_contents[1] == b"\x01\x00"
    assert [list(o.shape) for o in response.outputs] == [[2], [2]]
