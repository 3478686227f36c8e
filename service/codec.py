"""Open Inference Protocol (KServe v2) request/response codec, JSON and binary tensor extension.

Decoding turns a raw HTTP body into numpy arrays; encoding turns output arrays into a body.
Nothing here knows about models: checks against a model's signature live in ``signature.py``.

Binary extension (as Triton and ``tritonclient`` speak it): the body is a JSON header of
``Inference-Header-Content-Length`` bytes followed by the raw tensors, in input order, each
announced by ``parameters.binary_data_size``. BYTES elements are 4-byte little-endian length
prefixed. Numeric tensors are little-endian, row-major.
"""

from __future__ import annotations

import math
import struct
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import orjson

from service.datatypes import SUPPORTED, V2_TO_NUMPY
from service.errors import InvalidInput

_NUMPY_OPTS = orjson.OPT_SERIALIZE_NUMPY


@dataclass(slots=True)
class RequestedOutput:
    """One entry of the request's ``outputs``: which tensor and whether to send it as binary."""

    name: str
    binary: bool


@dataclass(slots=True)
class InferRequest:
    """A decoded inference request."""

    inputs: dict[str, np.ndarray]
    id: str | None = None
    outputs: list[RequestedOutput] | None = None  # None: every model output
    binary_output: bool = False  # request-level ``binary_data_output``
    parameters: dict[str, Any] = field(default_factory=dict)


def _load_json(raw: bytes | memoryview) -> Any:
    try:
        return orjson.loads(raw)
    except orjson.JSONDecodeError as exc:
        raise InvalidInput(f"request body is not valid JSON: {exc}") from None


MAX_RANK = 32
MAX_ELEMENTS = 2**40  # far beyond any body the service accepts, far below numpy's limit


def _shape(tensor: dict[str, Any], name: str) -> tuple[int, ...]:
    shape = tensor.get("shape")
    if not isinstance(shape, list) or not all(
        isinstance(d, int) and not isinstance(d, bool) and d >= 0 for d in shape
    ):
        raise InvalidInput(
            f"input '{name}': 'shape' must be a list of non-negative integers, got {shape!r}"
        )
    if len(shape) > MAX_RANK:
        raise InvalidInput(
            f"input '{name}': 'shape' has {len(shape)} dimensions; at most {MAX_RANK} are accepted"
        )
    # Even a zero-element tensor must have a shape an array can describe: numpy (and ORT) refuse
    # one whose non-zero dimensions multiply past what memory could ever address.
    if math.prod(d for d in shape if d) > MAX_ELEMENTS:
        raise InvalidInput(
            f"input '{name}': shape {shape} is too large: the product of its non-zero "
            f"dimensions must be at most {MAX_ELEMENTS}"
        )
    return tuple(shape)


def _datatype(tensor: dict[str, Any], name: str) -> str:
    datatype = tensor.get("datatype")
    if not isinstance(datatype, str) or datatype not in V2_TO_NUMPY:
        raise InvalidInput(
            f"input '{name}': unknown datatype {datatype!r}; accepted datatypes: {SUPPORTED}"
        )
    return datatype


def _binary_size(tensor: dict[str, Any]) -> int | None:
    params = tensor.get("parameters")
    if not params:
        return None
    if not isinstance(params, dict):
        raise InvalidInput(f"input '{tensor.get('name')}': 'parameters' must be an object")
    size = params.get("binary_data_size")
    if size is None:
        return None
    if not isinstance(size, int) or isinstance(size, bool) or size < 0:
        raise InvalidInput(
            f"input '{tensor.get('name')}': binary_data_size must be a non-negative integer, "
            f"got {size!r}"
        )
    return size


def decode_bytes_elements(buf: bytes | memoryview, name: str) -> list[bytes]:
    """Split a BYTES tensor's binary form (length-prefixed elements) into its elements."""
    view = memoryview(buf)
    out: list[bytes] = []
    offset = 0
    while offset < len(view):
        if offset + 4 > len(view):
            raise InvalidInput(f"input '{name}': truncated BYTES element length prefix")
        (length,) = struct.unpack_from("<I", view, offset)
        offset += 4
        if offset + length > len(view):
            raise InvalidInput(f"input '{name}': BYTES element of {length} bytes is truncated")
        out.append(bytes(view[offset : offset + length]))
        offset += length
    return out


def encode_bytes_elements(array: np.ndarray) -> bytes:
    """The binary form of a BYTES tensor: each element as <uint32 length><bytes>."""
    parts: list[bytes] = []
    for item in array.reshape(-1):
        data = item if isinstance(item, bytes) else str(item).encode()
        parts.append(struct.pack("<I", len(data)))
        parts.append(data)
    return b"".join(parts)


def _from_binary(chunk: memoryview, datatype: str, shape: tuple[int, ...], name: str) -> np.ndarray:
    count = math.prod(shape)
    if datatype == "BYTES":
        items = decode_bytes_elements(chunk, name)
        if len(items) != count:
            raise InvalidInput(
                f"input '{name}': shape {list(shape)} has {count} elements but the binary data "
                f"holds {len(items)} BYTES elements"
            )
        array = np.empty(count, dtype=object)
        array[:] = items
        return array.reshape(shape)
    dtype = V2_TO_NUMPY[datatype]
    expected = count * dtype.itemsize
    if len(chunk) != expected:
        raise InvalidInput(
            f"input '{name}': binary_data_size is {len(chunk)} bytes but shape {list(shape)} "
            f"of {datatype} needs {expected} bytes"
        )
    if datatype == "BOOL":
        raw = np.frombuffer(chunk, dtype=np.uint8)
        if raw.size and raw.max() > 1:
            bad = int(raw[raw > 1][0])
            raise InvalidInput(
                f"input '{name}': BOOL bytes must be 0 (false) or 1 (true), got {bad}"
            )
    array = np.frombuffer(chunk, dtype=dtype.newbyteorder("<")).reshape(shape)
    if not array.flags.aligned or array.dtype.byteorder == ">":
        array = array.astype(dtype)
    return array


def raw_tensor(
    chunk: bytes | memoryview, datatype: str, shape: tuple[int, ...], name: str
) -> np.ndarray:
    """One tensor from its raw little-endian bytes (the binary extension's, or gRPC's
    ``raw_input_contents``): sizes checked, BOOL bytes 0/1 only, BYTES length-prefixed."""
    return _from_binary(memoryview(chunk), datatype, shape, name)


def _from_json(data: Any, datatype: str, shape: tuple[int, ...], name: str) -> np.ndarray:
    if not isinstance(data, list):
        data = [data]
    count = math.prod(shape)
    flat = _flatten(data, datatype, name)
    if len(flat) != count:
        raise InvalidInput(
            f"input '{name}': shape {list(shape)} has {count} elements but 'data' has {len(flat)}"
        )
    if datatype == "BYTES":
        if not all(isinstance(x, str) for x in flat):
            raise InvalidInput(f"input '{name}': BYTES data must be strings")
        array = np.empty(len(flat), dtype=object)
        array[:] = [x.encode() for x in flat]
    else:
        array = json_numbers(flat, datatype, name)
    return array.reshape(shape)


def _flatten(data: list[Any], datatype: str, name: str) -> list[Any] | np.ndarray:
    """The leaves of a (nested) JSON list, in row-major order, every Python value as parsed
    (no float64 detour, so integers stay exact). A flat list is returned as it is: no copy."""
    if not data or type(data[0]) is not list:  # lists further on fail the type checks
        return data
    try:
        nested = np.array(data, dtype=object)
    except ValueError:
        raise InvalidInput(
            f"input '{name}': 'data' cannot be read as {datatype}: it is a ragged nested list"
        ) from None
    flat = nested.reshape(-1)
    if any(type(x) is list for x in flat):  # lists at different depths
        raise InvalidInput(
            f"input '{name}': 'data' cannot be read as {datatype}: it is a ragged nested list"
        )
    return flat


# JSON has no NaN or infinity; like protobuf's JSON mapping, they travel as these strings.
NON_FINITE_IN = {"NaN": math.nan, "Infinity": math.inf, "-Infinity": -math.inf}
_EXACT_FLOAT_INT = 2**53  # beyond this a JSON float may already have lost integer digits
# The smallest magnitude that rounds to infinity (round-to-nearest-even: halfway past the
# largest finite value): anything below rounds to a finite value of the type.
_ROUNDS_TO_INFINITY = {"FP32": (2 - 2**-24) * 2.0**127, "FP16": 65520.0}


def json_numbers(flat: np.ndarray | list[Any], datatype: str, name: str) -> np.ndarray:
    """JSON values (a flat sequence) as a ``datatype`` array: exact or refused (InvalidInput).

    Refused: strings, nulls, booleans for numbers (and numbers for BOOL), fractions for integer
    types, integers outside the type's range, floats beyond 2**53 for integer types (JSON parsing
    may already have rounded them), and finite numbers a float type cannot hold (``1e39`` as FP32).
    Also used by transports that receive typed lists (gRPC)."""
    dtype = V2_TO_NUMPY[datatype]
    values = flat
    if len(values) == 0:
        return np.empty(0, dtype=dtype)
    if dtype.kind == "f" and type(values[0]) is not bool:
        # Fast path for the common case, plain numbers: numpy's own probe is exact for floats
        # (a float type rounds integers anyway). Strings, nulls, objects, integers past 64 bits
        # and nesting make the probe non-numeric and take the full check below. Booleans are
        # looked for on the first value only here, as numpy would turn them into 1.0/0.0.
        try:
            probe = np.array(values)
        except (ValueError, TypeError):
            probe = None
        if probe is not None and probe.ndim == 1 and probe.dtype.kind in "fiu":
            return _fit_float(probe.astype(np.float64, copy=False), False, dtype, datatype, name)
    types = set(map(type, values))
    if datatype == "BOOL":
        if types != {bool}:
            raise InvalidInput(f"input '{name}': BOOL data must be true/false values")
        return np.array(values, dtype=np.bool_)
    if bool in types:
        raise InvalidInput(f"input '{name}': 'data' holds booleans but datatype is {datatype}")
    if dtype.kind in "iu":
        return _integers(values, types, dtype, datatype, name)
    return _floats(values, types, dtype, datatype, name)


def _integers(
    values: np.ndarray | list[Any], types: set[type], dtype: np.dtype, datatype: str, name: str
) -> np.ndarray:
    if not types <= {int, float}:
        raise InvalidInput(
            f"input '{name}': 'data' cannot be read as {datatype}: it holds values that are not "
            "numbers (strings or nulls)"
        )
    if float in types:
        fixed = []
        for x in values:
            if type(x) is float:
                if not x.is_integer():
                    raise InvalidInput(
                        f"input '{name}': 'data' holds non-integer values ({x!r}) but datatype "
                        f"is {datatype}"
                    )
                if abs(x) > _EXACT_FLOAT_INT:
                    raise InvalidInput(
                        f"input '{name}': {x!r} is written as a float beyond 2**53, so its exact "
                        f"integer value is unknown; write {datatype} values as JSON integers"
                    )
                x = int(x)
            fixed.append(x)
        values = fixed
    info = np.iinfo(dtype)
    try:  # exact for Python ints (an out-of-range one raises, never wraps)
        wide: np.ndarray | None = np.array(values, dtype=np.int64)
    except OverflowError:  # above 2**63 - 1: only UINT64 can hold it, and only if none is < 0
        try:
            wide = np.array(values, dtype=np.uint64) if min(values) >= 0 else None
        except OverflowError:
            wide = None
    if wide is None or int(wide.min()) < info.min or int(wide.max()) > info.max:
        low, high = min(values), max(values)  # Python ints: exact at any size
        bad = low if low < info.min else high
        raise InvalidInput(
            f"input '{name}': 'data' cannot be read as {datatype}: {bad} is one of its "
            f"values outside [{info.min}, {info.max}]"
        )
    return wide.astype(dtype, copy=False)


def _floats(
    values: np.ndarray | list[Any], types: set[type], dtype: np.dtype, datatype: str, name: str
) -> np.ndarray:
    non_finite = str in types
    if non_finite:
        strings = [x for x in values if type(x) is str]
        unknown = next((s for s in strings if s not in NON_FINITE_IN), None)
        if unknown is not None:
            raise InvalidInput(
                f"input '{name}': 'data' cannot be read as {datatype}: it holds values that are "
                f"not numbers ({unknown!r}); {datatype} data takes JSON numbers and the strings "
                f"{sorted(NON_FINITE_IN)}"
            )
        values = [NON_FINITE_IN[x] if type(x) is str else x for x in values]
        types = set(map(type, values))
    if not types <= {int, float}:
        raise InvalidInput(
            f"input '{name}': 'data' cannot be read as {datatype}: it holds values that are not "
            "numbers (nulls, objects)"
        )
    try:
        wide = np.array(values, dtype=np.float64)
    except OverflowError:
        raise InvalidInput(f"input '{name}': a value is beyond {datatype}'s range") from None
    return _fit_float(wide, non_finite, dtype, datatype, name)


def _fit_float(
    wide: np.ndarray, non_finite: bool, dtype: np.dtype, datatype: str, name: str
) -> np.ndarray:
    """``wide`` (float64) as ``dtype``, refusing finite values that would become infinite."""
    limit = _ROUNDS_TO_INFINITY.get(datatype)
    if limit is None:  # FP64
        return wide
    magnitude = np.abs(wide[np.isfinite(wide)] if non_finite else wide)
    if magnitude.size and magnitude.max() >= limit:
        bad = float(magnitude[magnitude >= limit][0])
        raise InvalidInput(
            f"input '{name}': {bad!r} is beyond {datatype}'s range "
            f"(largest finite value {float(np.finfo(dtype).max)!r})"
        )
    return wide.astype(dtype)  # no overflow left: rounding only


def _requested_outputs(raw: Any, default_binary: bool) -> list[RequestedOutput] | None:
    if raw is None:
        return None
    if not isinstance(raw, list):
        raise InvalidInput("'outputs' must be a list of objects with a 'name'")
    result = []
    seen: set[str] = set()
    for item in raw:
        if not isinstance(item, dict) or not isinstance(item.get("name"), str):
            raise InvalidInput("each entry of 'outputs' must be an object with a string 'name'")
        if item["name"] in seen:  # each copy would be encoded again: a cheap way to a huge body
            raise InvalidInput(f"output '{item['name']}' is requested more than once")
        seen.add(item["name"])
        params = item.get("parameters") or {}
        if not isinstance(params, dict):
            raise InvalidInput(f"output '{item['name']}': 'parameters' must be an object")
        binary = params.get("binary_data", default_binary)
        if not isinstance(binary, bool):
            raise InvalidInput(
                f"output '{item['name']}': binary_data must be true or false, got {binary!r}"
            )
        result.append(RequestedOutput(item["name"], binary))
    return result


def decode_request(body: bytes, header_length: int | None = None) -> InferRequest:
    """Decode an infer request body (JSON, or JSON header + binary tensors)."""
    view = memoryview(body)
    if header_length is not None:
        if header_length < 0 or header_length > len(body):
            raise InvalidInput(
                f"Inference-Header-Content-Length is {header_length} but the body has only "
                f"{len(body)} bytes"
            )
        header, binary = view[:header_length], view[header_length:]
    else:
        header, binary = view, view[:0]
    doc = _load_json(header)
    if not isinstance(doc, dict):
        raise InvalidInput(
            f"request body must be a JSON object with 'inputs', got {type(doc).__name__}"
        )
    raw_inputs = doc.get("inputs")
    if not isinstance(raw_inputs, list) or not raw_inputs:
        raise InvalidInput("request must have a non-empty 'inputs' list")
    params = doc.get("parameters") or {}
    if not isinstance(params, dict):
        raise InvalidInput("'parameters' must be an object")

    inputs: dict[str, np.ndarray] = {}
    offset = 0
    for tensor in raw_inputs:
        if not isinstance(tensor, dict) or not isinstance(tensor.get("name"), str):
            raise InvalidInput("each entry of 'inputs' must be an object with a string 'name'")
        name = tensor["name"]
        if name in inputs:
            raise InvalidInput(f"input '{name}' is given more than once")
        datatype = _datatype(tensor, name)
        shape = _shape(tensor, name)
        size = _binary_size(tensor)
        if size is not None:
            if offset + size > len(binary):
                raise InvalidInput(
                    f"input '{name}': binary_data_size {size} runs past the end of the body "
                    f"({len(binary) - offset} binary bytes left)"
                )
            inputs[name] = _from_binary(binary[offset : offset + size], datatype, shape, name)
            offset += size
        elif "data" in tensor:
            inputs[name] = _from_json(tensor["data"], datatype, shape, name)
        else:
            raise InvalidInput(f"input '{name}' has neither 'data' nor binary_data_size")
    if offset != len(binary):
        raise InvalidInput(
            f"binary_data_size of the inputs adds up to {offset} bytes but the body carries "
            f"{len(binary)} binary bytes"
        )

    request_id = doc.get("id")
    if request_id is not None and not isinstance(request_id, str):
        raise InvalidInput(f"'id' must be a string, got {type(request_id).__name__}")
    binary_output = params.get("binary_data_output", False)
    if not isinstance(binary_output, bool):
        raise InvalidInput(f"binary_data_output must be true or false, got {binary_output!r}")
    return InferRequest(
        inputs=inputs,
        id=request_id,
        outputs=_requested_outputs(doc.get("outputs"), binary_output),
        binary_output=binary_output,
        parameters=params,
    )


NON_FINITE_OUT = {"nan": "NaN", "inf": "Infinity", "-inf": "-Infinity"}


def _json_data(array: np.ndarray) -> Any:
    if array.dtype == object or array.dtype.kind in ("U", "S"):
        return [
            x.decode("utf-8", "backslashreplace") if isinstance(x, bytes) else str(x)
            for x in array.reshape(-1)
        ]
    flat = np.ascontiguousarray(array).reshape(-1)
    if flat.dtype.kind == "f" and not np.isfinite(flat).all():
        # JSON has no NaN/infinity (orjson would write null, which no client can tell from a
        # missing value): they go out as the strings "NaN", "Infinity" and "-Infinity", as in
        # protobuf's JSON mapping, and the decoder accepts them back.
        return [x if math.isfinite(x) else NON_FINITE_OUT[str(x)] for x in flat.tolist()]
    return flat


def encode_response(
    model_name: str,
    model_version: str,
    outputs: list[tuple[str, str, np.ndarray, bool]],
    request_id: str | None = None,
) -> tuple[bytes, int | None]:
    """Encode outputs ``(name, datatype, array, as_binary)`` into a response body.

    Returns ``(body, header_length)``; ``header_length`` is None for a pure JSON body, else the
    value of the ``Inference-Header-Content-Length`` response header.
    """
    tensors: list[dict[str, Any]] = []
    blobs: list[bytes] = []
    for name, datatype, array, as_binary in outputs:
        tensor: dict[str, Any] = {"name": name, "datatype": datatype, "shape": list(array.shape)}
        if as_binary:
            blob = (
                encode_bytes_elements(array)
                if datatype == "BYTES"
                else np.ascontiguousarray(array, dtype=array.dtype.newbyteorder("<")).tobytes()
            )
            tensor["parameters"] = {"binary_data_size": len(blob)}
            blobs.append(blob)
        else:
            tensor["data"] = _json_data(array)
        tensors.append(tensor)
    doc: dict[str, Any] = {"model_name": model_name, "model_version": model_version}
    if request_id is not None:
        doc["id"] = request_id
    doc["outputs"] = tensors
    header = orjson.dumps(doc, option=_NUMPY_OPTS)
    if not blobs:
        return header, None
    return b"".join([header, *blobs]), len(header)
