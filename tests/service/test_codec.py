"""Unit tests of the v2 codec: JSON and binary tensors, both directions."""

from __future__ import annotations

import struct

import numpy as np
import orjson
import pytest

from service.codec import decode_request, encode_bytes_elements, encode_response
from service.errors import InvalidInput


def _binary_body(header: dict, *blobs: bytes) -> tuple[bytes, int]:
    head = orjson.dumps(header)
    return head + b"".join(blobs), len(head)


def test_json_flat_and_nested_data_decode_to_same_array() -> None:
    flat = {"inputs": [{"name": "x", "datatype": "FP32", "shape": [2, 2], "data": [1, 2, 3, 4]}]}
    nested = {
        "inputs": [{"name": "x", "datatype": "FP32", "shape": [2, 2], "data": [[1, 2], [3, 4]]}]
    }
    a = decode_request(orjson.dumps(flat)).inputs["x"]
    b = decode_request(orjson.dumps(nested)).inputs["x"]
    assert a.dtype == np.float32 and a.shape == (2, 2)
    np.testing.assert_array_equal(a, b)


def test_id_outputs_and_binary_output_flags() -> None:
    doc = {
        "id": "req-7",
        "inputs": [{"name": "x", "datatype": "INT64", "shape": [1], "data": [5]}],
        "outputs": [{"name": "y", "parameters": {"binary_data": True}}, {"name": "z"}],
    }
    req = decode_request(orjson.dumps(doc))
    assert req.id == "req-7"
    assert [(o.name, o.binary) for o in req.outputs or []] == [("y", True), ("z", False)]


def test_binary_inputs_are_split_in_order() -> None:
    a = np.arange(6, dtype=np.float32).reshape(2, 3)
    b = np.array([7, 8], dtype=np.int64)
    header = {
        "inputs": [
            {"name": "a", "datatype": "FP32", "shape": [2, 3],
             "parameters": {"binary_data_size": a.nbytes}},
            {"name": "b", "datatype": "INT64", "shape": [2],
             "parameters": {"binary_data_size": b.nbytes}},
        ]
    }  # fmt: skip
    body, hlen = _binary_body(header, a.tobytes(), b.tobytes())
    req = decode_request(body, hlen)
    np.testing.assert_array_equal(req.inputs["a"], a)
    np.testing.assert_array_equal(req.inputs["b"], b)


def test_bytes_tensor_binary_round_trip() -> None:
    values = np.array([b"hello", b"", "w\u00f6rld".encode()], dtype=object)
    blob = encode_bytes_elements(values)
    assert blob[:4] == struct.pack("<I", 5)
    header = {
        "inputs": [{"name": "t", "datatype": "BYTES", "shape": [3],
                    "parameters": {"binary_data_size": len(blob)}}]
    }  # fmt: skip
    body, hlen = _binary_body(header, blob)
    assert list(decode_request(body, hlen).inputs["t"]) == list(values)


def test_bytes_tensor_json() -> None:
    doc = {"inputs": [{"name": "t", "datatype": "BYTES", "shape": [2], "data": ["a", "bc"]}]}
    assert list(decode_request(orjson.dumps(doc)).inputs["t"]) == [b"a", b"bc"]


@pytest.mark.parametrize(
    ("body", "header_length", "message"),
    [
        (b"{not json", None, "not valid JSON"),
        (b"[1, 2]", None, "must be a JSON object"),
        (b"{}", None, "non-empty 'inputs'"),
        (b'{"inputs": [{"name": "x", "datatype": "FP99", "shape": [1], "data": [1]}]}', None,
         "unknown datatype 'FP99'"),
        (b'{"inputs": [{"name": "x", "datatype": "FP32", "shape": [2], "data": [1]}]}', None,
         "shape [2] has 2 elements but 'data' has 1"),
        (b'{"inputs": [{"name": "x", "datatype": "FP32", "shape": [-1], "data": [1]}]}', None,
         "non-negative integers"),
        (b'{"inputs": [{"name": "x", "datatype": "FP32", "shape": [1], "data": ["a"]}]}', None,
         "cannot be read as FP32"),
        (b'{"inputs": [{"name": "x", "datatype": "FP32", "shape": [1]}]}', None,
         "neither 'data' nor binary_data_size"),
        (b'{"inputs": [{"name": "x", "datatype": "UINT8", "shape": [1], "data": [300]}]}', None,
         "cannot be read as UINT8"),
        (b'{"inputs": [{"name": "x", "datatype": "FP32", "shape": [2], "data": [[1], [2, 3]]}]}',
         None, "cannot be read as FP32"),
        (b'{"inputs": [{"name": "x", "datatype": "INT32", "shape": [1], "data": [true]}]}', None,
         "holds booleans"),
        (b'{"inputs": [{"name": "x", "datatype": "FP32", "shape": [1], "data": [1]},'
         b'{"name": "x", "datatype": "FP32", "shape": [1], "data": [1]}]}', None,
         "more than once"),
        (b'{"id": 5, "inputs": [{"name": "x", "datatype": "FP32", "shape": [1], "data": [1]}]}',
         None, "'id' must be a string"),
        (b'{"inputs": []}', 400, "Inference-Header-Content-Length is 400"),
        (b'{"inputs": [{"name": "x", "datatype": "INT32", "shape": [2], "data": [1.7, 2]}]}',
         None, "non-integer values"),
        (b'{"inputs": [{"name": "x", "datatype": "FP32", "shape": [2], "data": [null, 1]}]}',
         None, "not numbers"),
        (b'{"inputs": [{"name": "x", "datatype": "FP32", "shape": [2], "data": ["1e3", "nan"]}]}',
         None, "not numbers"),
        (b'{"inputs": [{"name": "x", "datatype": "BOOL", "shape": [2], "data": [1, 0]}]}',
         None, "BOOL data must be true/false"),
        (b'{"inputs": [{"name": "x", "datatype": "INT8", "shape": [1], "data": [-129]}]}',
         None, "values outside [-128, 127]"),
        (b'{"inputs": [{"name": "x", "datatype": [], "shape": [1], "data": [1]}]}',
         None, "unknown datatype []"),
        (b'{"inputs": [{"name": "x", "datatype": "FP32", "shape": [1], "data": [1]}],'
         b' "outputs": [{"name": "y", "parameters": {"binary_data": "false"}}]}',
         None, "binary_data must be true or false"),
        (b'{"inputs": [{"name": "x", "datatype": "FP32", "shape": [1], "data": [1]}],'
         b' "parameters": {"binary_data_output": 1}}',
         None, "binary_data_output must be true or false"),
        (b'{"inputs": [{"name": "x", "datatype": "FP32", "shape": ' + str([1] * 33).encode()
         + b', "data": [1]}]}', None, "at most 32 are accepted"),
    ],
)  # fmt: skip
def test_malformed_requests_name_the_problem(
    body: bytes, header_length: int | None, message: str
) -> None:
    with pytest.raises(InvalidInput) as info:
        decode_request(body, header_length)
    assert message in info.value.message


def test_binary_sizes_must_add_up() -> None:
    a = np.zeros(4, dtype=np.float32)
    header = {"inputs": [{"name": "a", "datatype": "FP32", "shape": [4],
                          "parameters": {"binary_data_size": 16}}]}  # fmt: skip
    body, hlen = _binary_body(header, a.tobytes(), b"extra")
    with pytest.raises(InvalidInput, match="adds up to 16 bytes but the body carries 21"):
        decode_request(body, hlen)
    body, hlen = _binary_body(header, a.tobytes()[:8])
    with pytest.raises(InvalidInput, match="runs past the end"):
        decode_request(body, hlen)
    header["inputs"][0]["parameters"]["binary_data_size"] = 12
    body, hlen = _binary_body(header, a.tobytes()[:12])
    with pytest.raises(InvalidInput, match="needs 16 bytes"):
        decode_request(body, hlen)


def test_encode_json_response() -> None:
    y = np.array([[0.5, 1.5]], dtype=np.float32)
    body, hlen = encode_response("m", "3", [("y", "FP32", y, False)], "abc")
    assert hlen is None
    assert orjson.loads(body) == {
        "model_name": "m",
        "model_version": "3",
        "id": "abc",
        "outputs": [{"name": "y", "datatype": "FP32", "shape": [1, 2], "data": [0.5, 1.5]}],
    }


def test_encode_binary_response_appends_raw_tensors() -> None:
    y = np.arange(3, dtype=np.int32)
    z = np.array([1.0], dtype=np.float64)
    body, hlen = encode_response("m", "1", [("y", "INT32", y, True), ("z", "FP64", z, False)])
    assert hlen is not None
    header = orjson.loads(body[:hlen])
    assert header["outputs"][0]["parameters"] == {"binary_data_size": 12}
    assert "data" not in header["outputs"][0]
    assert header["outputs"][1]["data"] == [1.0]
    assert np.frombuffer(body[hlen:], dtype=np.int32).tolist() == [0, 1, 2]


def test_raw_tensor_is_the_binary_decoder_for_other_transports() -> None:
    """gRPC's raw_input_contents carry the same little-endian bytes: same checks, same result."""
    from service.codec import raw_tensor

    big = np.array([0, 2**64 - 1], dtype=np.uint64)
    assert raw_tensor(big.tobytes(), "UINT64", (2,), "x").tolist() == [0, 2**64 - 1]
    with pytest.raises(InvalidInput, match="BOOL bytes must be 0"):
        raw_tensor(bytes([0, 1, 2]), "BOOL", (3,), "b")
    with pytest.raises(InvalidInput, match="needs 8 bytes"):
        raw_tensor(b"\0" * 4, "INT64", (1,), "i")
