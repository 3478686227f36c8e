"""Property tests of the tensor codec: round-trips for every datatype, and hostile input.

Whatever bytes a client sends, ``decode_request`` must either return tensors or raise
``InvalidInput`` (a 400): any other exception reaches the client as a 500.
"""

from __future__ import annotations

import struct
from typing import Any

import numpy as np
import orjson
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from service.codec import (
    NON_FINITE_IN,
    decode_bytes_elements,
    decode_request,
    encode_bytes_elements,
    encode_response,
)
from service.datatypes import V2_TO_NUMPY
from service.errors import InvalidInput

FAST = settings(max_examples=80, deadline=None, suppress_health_check=[HealthCheck.too_slow])
NUMERIC = [d for d in V2_TO_NUMPY if d != "BYTES"]
shapes = hnp.array_shapes(min_dims=1, max_dims=3, min_side=0, max_side=5)


@st.composite
def tensors(draw: st.DrawFn, datatype: str, finite: bool = False) -> np.ndarray:
    """An array of ``datatype``; BYTES arrays are object arrays of arbitrary ``bytes``."""
    shape = draw(shapes)
    if datatype == "BYTES":
        flat = draw(
            st.lists(
                st.binary(max_size=20), min_size=int(np.prod(shape)), max_size=int(np.prod(shape))
            )
        )
        array = np.empty(len(flat), dtype=object)
        array[:] = flat
        return array.reshape(shape)
    dtype = V2_TO_NUMPY[datatype]
    elements = None
    if finite and dtype.kind == "f":
        elements = hnp.from_dtype(dtype, allow_nan=False, allow_infinity=False)
    return draw(hnp.arrays(dtype, shape, elements=elements))


def binary_body(tensors: dict[str, tuple[str, np.ndarray]]) -> tuple[bytes, int]:
    """A binary-extension request body as ``tritonclient`` builds it."""
    blobs, entries = [], []
    for name, (datatype, array) in tensors.items():
        blob = (
            encode_bytes_elements(array)
            if datatype == "BYTES"
            else array.astype(array.dtype.newbyteorder("<")).tobytes()
        )
        blobs.append(blob)
        entries.append(
            {
                "name": name,
                "datatype": datatype,
                "shape": list(array.shape),
                "parameters": {"binary_data_size": len(blob)},
            }
        )
    header = orjson.dumps({"inputs": entries})
    return header + b"".join(blobs), len(header)


def split_response(body: bytes, header_length: int | None) -> dict[str, np.ndarray]:
    """Decode an infer response the way a client does (JSON data or trailing binary blobs)."""
    head = orjson.loads(body if header_length is None else body[:header_length])
    offset = len(body) if header_length is None else header_length
    out = {}
    for tensor in head["outputs"]:
        shape = tuple(tensor["shape"])
        size = (tensor.get("parameters") or {}).get("binary_data_size")
        if size is None:
            data = tensor["data"]
            if tensor["datatype"] == "BYTES":
                array = np.array([s.encode() for s in data] or [], dtype=object)
            elif any(isinstance(v, str) for v in data):  # non-finite floats
                assert set(filter(lambda v: isinstance(v, str), data)) <= set(NON_FINITE_IN)
                array = np.array(
                    [NON_FINITE_IN.get(v, v) if isinstance(v, str) else v for v in data],
                    dtype=V2_TO_NUMPY[tensor["datatype"]],
                )
            else:
                array = np.array(data, dtype=V2_TO_NUMPY[tensor["datatype"]])
            out[tensor["name"]] = array.reshape(shape)
            continue
        blob = body[offset : offset + size]
        offset += size
        if tensor["datatype"] == "BYTES":
            array = np.empty(int(np.prod(shape)), dtype=object)
            array[:] = decode_bytes_elements(blob, tensor["name"])
        else:
            array = np.frombuffer(blob, dtype=V2_TO_NUMPY[tensor["datatype"]].newbyteorder("<"))
        out[tensor["name"]] = array.reshape(shape)
    assert offset == len(body), "response carries bytes no tensor announced"
    return out


def assert_same(got: np.ndarray, want: np.ndarray) -> None:
    assert got.shape == want.shape
    if want.dtype == object:
        assert list(got.reshape(-1)) == list(want.reshape(-1))
    else:
        assert got.dtype == want.dtype
        np.testing.assert_array_equal(got, want)  # NaN == NaN here


# -- round-trips -----------------------------------------------------------------------------
@FAST
@given(data=st.data(), datatype=st.sampled_from(list(V2_TO_NUMPY)))
def test_binary_request_round_trips_every_datatype(data: st.DataObject, datatype: str) -> None:
    a = data.draw(tensors(datatype), label="a")
    b = data.draw(tensors("INT64"), label="b")
    body, hlen = binary_body({"a": (datatype, a), "b": ("INT64", b)})
    decoded = decode_request(body, hlen).inputs
    assert_same(decoded["a"], a)
    assert_same(decoded["b"], b)


@FAST
@given(data=st.data(), datatype=st.sampled_from(NUMERIC))
def test_json_request_round_trips_every_numeric_datatype(
    data: st.DataObject, datatype: str
) -> None:
    array = data.draw(tensors(datatype, finite=True))  # JSON has no NaN or infinity
    doc = {
        "inputs": [
            {"name": "x", "datatype": datatype, "shape": list(array.shape), "data": array.tolist()}
        ]
    }
    assert_same(decode_request(orjson.dumps(doc)).inputs["x"], array)


INTEGER = [d for d in NUMERIC if V2_TO_NUMPY[d].kind in "iu"]


@st.composite
def integer_data(draw: st.DrawFn) -> tuple[str, list[int | float]]:
    """A datatype and JSON values for it: integers anywhere in its range, some written as
    integral floats (``1.0``) where a float can hold them exactly."""
    datatype = draw(st.sampled_from(INTEGER))
    info = np.iinfo(V2_TO_NUMPY[datatype])
    exact = st.integers(max(info.min, -(2**53)), min(info.max, 2**53)).map(float)
    values = draw(st.lists(st.integers(info.min, info.max) | exact, min_size=1, max_size=12))
    return datatype, values


@FAST
@given(case=integer_data())
# Found by the round-trip test above (``make test`` failed on one of two fresh clones): mixed
# with anything else, integers went through float64 and came back rounded or wrapped.
@example(case=("UINT64", [0, 1, 2**53 + 1, 2**63 - 1, 2**63 + 1, 2**64 - 1]))
@example(case=("INT64", [1.0, 9223372036854775807]))
@example(case=("INT64", [1.0, 9007199254740993]))
@example(case=("UINT64", [18446744073709549568, 1.0]))
def test_json_integers_are_exact(case: tuple[str, list[int | float]]) -> None:
    datatype, values = case
    doc = {"inputs": [{"name": "x", "datatype": datatype, "shape": [len(values)], "data": values}]}
    decoded = decode_request(orjson.dumps(doc)).inputs["x"]
    assert decoded.dtype == V2_TO_NUMPY[datatype]
    assert decoded.tolist() == [int(v) for v in values]


@FAST
@given(
    datatype=st.sampled_from(INTEGER),
    value=st.integers(-(2**64), 2**65) | st.floats(allow_nan=False, allow_infinity=False),
)
@example(datatype="INT64", value=9.223372036854775807e18)  # was INT64's minimum, silently
@example(datatype="UINT64", value=2**64)
def test_json_integers_are_exact_or_refused(datatype: str, value: int | float) -> None:
    doc = {"inputs": [{"name": "x", "datatype": datatype, "shape": [1], "data": [value]}]}
    try:
        body = orjson.dumps(doc)
    except orjson.JSONEncodeError:  # beyond 64 bits: no JSON encoder would send it
        return
    try:
        decoded = decode_request(body).inputs["x"]
    except InvalidInput:
        return
    parsed = orjson.loads(body)["inputs"][0]["data"][0]  # what the server saw
    assert decoded.tolist() == [parsed] and float(parsed).is_integer()
    assert isinstance(parsed, int) or abs(parsed) <= 2**53


@FAST
@given(st.lists(st.text(max_size=10), max_size=8))
def test_json_request_round_trips_bytes_as_utf8(texts: list[str]) -> None:
    doc = {"inputs": [{"name": "t", "datatype": "BYTES", "shape": [len(texts)], "data": texts}]}
    got = decode_request(orjson.dumps(doc)).inputs["t"]
    assert list(got) == [t.encode() for t in texts]


@FAST
@given(data=st.data(), datatype=st.sampled_from(list(V2_TO_NUMPY)), binary=st.booleans())
def test_response_round_trips_every_datatype(
    data: st.DataObject, datatype: str, binary: bool
) -> None:
    # JSON output carries NaN/infinity as the strings "NaN"/"Infinity"/"-Infinity" (never null);
    # it cannot carry non-UTF-8 BYTES.
    array = data.draw(tensors(datatype))
    if datatype == "BYTES" and not binary:
        texts = data.draw(st.lists(st.text(max_size=8), min_size=array.size, max_size=array.size))
        array = np.array([t.encode() for t in texts] or [], dtype=object).reshape(array.shape)
    body, hlen = encode_response("m", "1", [("y", datatype, array, binary)], request_id="r")
    assert (hlen is not None) == binary
    assert_same(split_response(body, hlen)["y"], array)


@FAST
@given(st.lists(st.binary(max_size=300), max_size=30))
def test_bytes_elements_round_trip(items: list[bytes]) -> None:
    array = np.empty(len(items), dtype=object)
    array[:] = items
    blob = encode_bytes_elements(array)
    assert len(blob) == sum(4 + len(i) for i in items)
    assert decode_bytes_elements(blob, "t") == items


# -- hostile input ---------------------------------------------------------------------------
json_scalars = (
    st.none()
    | st.booleans()
    | st.integers(-(2**63), 2**64 - 1)  # what JSON parsers (orjson) accept
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=8)
)
json_values = st.recursive(
    json_scalars,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=6), inner),
    max_leaves=20,
)
datatype_values = st.sampled_from([*V2_TO_NUMPY, "FP8", "", "fp32"]) | json_values
shape_values = st.lists(st.integers(-2, 2**40), max_size=4) | json_values


@st.composite
def tensor_entries(draw: st.DrawFn) -> dict[str, Any]:
    """An ``inputs`` entry that is plausible enough to get past the first checks."""
    keys = {
        "name": st.sampled_from(["x", "y"]) | json_values,
        "datatype": datatype_values,
        "shape": shape_values,
        "data": json_values,
        "parameters": st.fixed_dictionaries(
            {}, optional={"binary_data_size": st.integers(-5, 64) | json_values}
        )
        | json_values,
    }
    chosen = draw(st.sets(st.sampled_from(sorted(keys)), min_size=1))
    return {key: draw(keys[key]) for key in chosen}


request_docs = st.fixed_dictionaries(
    {"inputs": st.lists(tensor_entries(), min_size=1, max_size=3) | json_values},
    optional={
        "id": json_values,
        "parameters": st.fixed_dictionaries({}, optional={"binary_data_output": json_values})
        | json_values,
        "outputs": st.lists(
            st.fixed_dictionaries({"name": json_values}, optional={"parameters": json_values})
        )
        | json_values,
    },
)


def decode_or_invalid(body: bytes, header_length: int | None) -> None:
    """Call the decoder: returning or raising InvalidInput is fine; anything else fails."""
    try:
        request = decode_request(body, header_length)
    except InvalidInput as exc:
        assert exc.status_code == 400 and exc.message
        return
    assert request.inputs and all(isinstance(a, np.ndarray) for a in request.inputs.values())


@settings(max_examples=250, deadline=None)
@given(doc=request_docs, tail=st.binary(max_size=64), binary=st.booleans())
def test_arbitrary_json_headers_raise_only_invalid_input(
    doc: dict[str, Any], tail: bytes, binary: bool
) -> None:
    header = orjson.dumps(doc)
    if binary:
        decode_or_invalid(header + tail, len(header))
    else:
        decode_or_invalid(header, None)


@settings(max_examples=200, deadline=None)
@given(body=st.binary(max_size=200), header_length=st.none() | st.integers(-10, 250))
def test_arbitrary_bytes_raise_only_invalid_input(body: bytes, header_length: int | None) -> None:
    decode_or_invalid(body, header_length)


@settings(max_examples=200, deadline=None)
@given(st.binary(max_size=64))
def test_arbitrary_bytes_elements_decode_or_raise_invalid_input(blob: bytes) -> None:
    try:
        items = decode_bytes_elements(blob, "t")
    except InvalidInput:
        return
    assert sum(4 + len(i) for i in items) == len(blob)


def test_unhashable_datatype_is_invalid_input_not_a_crash() -> None:
    """Found by the property test above: ``"datatype": []`` raised TypeError (a 500)."""
    body = b'{"inputs":[{"name":"x","datatype":[],"shape":[1],"data":[1]}]}'
    decode_or_invalid(body, None)


def test_length_prefix_is_little_endian_uint32() -> None:
    """Pin the wire format the round-trips rely on (tritonclient's)."""
    array = np.array([b"ab"], dtype=object)
    assert encode_bytes_elements(array) == struct.pack("<I", 2) + b"ab"
