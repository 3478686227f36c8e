"""Tensors of ``ModelInferRequest`` / ``ModelInferResponse`` to numpy arrays and back.

A request carries each input either as typed ``contents`` (``fp32_contents``, ``int64_contents``,
...) or, for every input at once, as ``raw_input_contents``: little-endian, row-major bytes, BYTES
elements 4-byte length-prefixed, exactly as the HTTP binary extension lays them out. Responses
always carry ``raw_output_contents``, as Triton does; both tritonclient and KServe's client read
them. UINT64 and INT64 travel as 64-bit integers (typed or raw), never through a float, so every
value round-trips exactly.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from service.codec import encode_bytes_elements, raw_tensor
from service.datatypes import SUPPORTED, V2_TO_NUMPY
from service.errors import InvalidInput
from service.grpc.protos import service_pb2

# The typed ``InferTensorContents`` field of each datatype (FP16 has none: raw only).
CONTENTS_FIELD: dict[str, str] = {
    "BOOL": "bool_contents",
    "INT8": "int_contents",
    "INT16": "int_contents",
    "INT32": "int_contents",
    "INT64": "int64_contents",
    "UINT8": "uint_contents",
    "UINT16": "uint_contents",
    "UINT32": "uint_contents",
    "UINT64": "uint64_contents",
    "FP32": "fp32_contents",
    "FP64": "fp64_contents",
    "BYTES": "bytes_contents",
}
# The numpy type the typed field's values are read as before the range check.
_WIDE = {"int_contents": np.int64, "uint_contents": np.uint64}


@dataclass(slots=True)
class GrpcInferRequest:
    """A decoded ``ModelInferRequest``."""

    inputs: dict[str, np.ndarray]
    outputs: list[str] | None  # None: every model output
    id: str


def _shape(tensor: Any) -> tuple[int, ...]:
    shape = tuple(tensor.shape)
    if shape and min(shape) < 0:
        raise InvalidInput(
            f"input '{tensor.name}': 'shape' must be a list of non-negative integers, "
            f"got {list(shape)}"
        )
    return shape


def _datatype(tensor: Any) -> str:
    if tensor.datatype not in V2_TO_NUMPY:
        raise InvalidInput(
            f"input '{tensor.name}': unknown datatype {tensor.datatype!r}; accepted datatypes: "
            f"{SUPPORTED}"
        )
    return tensor.datatype


def _from_raw(raw: bytes, datatype: str, shape: tuple[int, ...], name: str) -> np.ndarray:
    """The HTTP binary extension's decoder (sizes, BOOL bytes 0/1, BYTES prefixes, alignment),
    with the size mismatch named in gRPC's terms."""
    if datatype != "BYTES":
        count, itemsize = math.prod(shape), V2_TO_NUMPY[datatype].itemsize
        if len(raw) != count * itemsize:
            raise InvalidInput(
                f"input '{name}': raw content is {len(raw)} bytes but shape {list(shape)} of "
                f"{datatype} needs {count * itemsize} bytes"
            )
    return raw_tensor(raw, datatype, shape, name)


def _from_contents(contents: Any, datatype: str, shape: tuple[int, ...], name: str) -> np.ndarray:
    field = CONTENTS_FIELD.get(datatype)
    if field is None:
        raise InvalidInput(
            f"input '{name}': {datatype} has no typed contents field; send it in raw_input_contents"
        )
    values = getattr(contents, field)
    count = math.prod(shape)
    if len(values) != count:
        raise InvalidInput(
            f"input '{name}': shape {list(shape)} has {count} elements but {field} has "
            f"{len(values)}"
        )
    if datatype == "BYTES":
        array = np.empty(count, dtype=object)
        array[:] = list(values)
        return array.reshape(shape)
    dtype = V2_TO_NUMPY[datatype]
    wide = np.array(values, dtype=_WIDE.get(field, dtype))
    if field in _WIDE and count:
        info = np.iinfo(dtype)
        if wide.min() < info.min or wide.max() > info.max:
            raise InvalidInput(
                f"input '{name}': {field} holds values outside [{info.min}, {info.max}], the "
                f"range of {datatype}"
            )
    return wide.astype(dtype, copy=False).reshape(shape)


def _has_contents(tensor: Any) -> bool:
    return tensor.HasField("contents") and any(
        len(getattr(tensor.contents, f)) for f in set(CONTENTS_FIELD.values())
    )


def decode_infer_request(request: Any) -> GrpcInferRequest:
    """Numpy inputs of a ``ModelInferRequest``; InvalidInput names what is wrong."""
    if not request.inputs:
        raise InvalidInput("request must have a non-empty 'inputs' list")
    raw = request.raw_input_contents
    if raw and len(raw) != len(request.inputs):
        raise InvalidInput(
            f"raw_input_contents has {len(raw)} entries but the request has "
            f"{len(request.inputs)} inputs: when raw contents are used, every input needs one"
        )
    inputs: dict[str, np.ndarray] = {}
    for index, tensor in enumerate(request.inputs):
        name = tensor.name
        if name in inputs:
            raise InvalidInput(f"input '{name}' is given more than once")
        datatype, shape = _datatype(tensor), _shape(tensor)
        if raw:
            if _has_contents(tensor):
                raise InvalidInput(
                    f"input '{name}' has both typed contents and raw_input_contents; use one"
                )
            inputs[name] = _from_raw(raw[index], datatype, shape, name)
        elif tensor.HasField("contents") or math.prod(shape) == 0:
            inputs[name] = _from_contents(tensor.contents, datatype, shape, name)
        else:
            raise InvalidInput(f"input '{name}' has neither contents nor raw_input_contents")
    outputs = None
    if request.outputs:
        outputs = []
        for output in request.outputs:
            if "classification" in output.parameters:
                raise InvalidInput(
                    f"output '{output.name}': the classification extension is not supported"
                )
            outputs.append(output.name)
    return GrpcInferRequest(inputs=inputs, outputs=outputs, id=request.id)


def raw_bytes(datatype: str, array: np.ndarray) -> bytes:
    """An output's raw content: little-endian row-major, BYTES length-prefixed."""
    if datatype == "BYTES":
        return encode_bytes_elements(array)
    return np.ascontiguousarray(array, dtype=array.dtype.newbyteorder("<")).tobytes()


def encode_infer_response(
    model_name: str,
    model_version: str,
    request_id: str,
    outputs: Sequence[tuple[str, str, np.ndarray]],
) -> Any:
    """A ``ModelInferResponse`` with every output in ``raw_output_contents``."""
    response = service_pb2.ModelInferResponse(
        model_name=model_name, model_version=model_version, id=request_id
    )
    for name, datatype, array in outputs:
        response.outputs.add(name=name, datatype=datatype, shape=array.shape)
        response.raw_output_contents.append(raw_bytes(datatype, array))
    return response
