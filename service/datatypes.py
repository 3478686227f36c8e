"""Mapping between Open Inference Protocol datatypes, numpy dtypes and ONNX Runtime type strings."""

from __future__ import annotations

import numpy as np

# v2 datatype -> numpy dtype. BYTES tensors are numpy object arrays of ``bytes``.
V2_TO_NUMPY: dict[str, np.dtype] = {
    "BOOL": np.dtype(np.bool_),
    "UINT8": np.dtype(np.uint8),
    "UINT16": np.dtype(np.uint16),
    "UINT32": np.dtype(np.uint32),
    "UINT64": np.dtype(np.uint64),
    "INT8": np.dtype(np.int8),
    "INT16": np.dtype(np.int16),
    "INT32": np.dtype(np.int32),
    "INT64": np.dtype(np.int64),
    "FP16": np.dtype(np.float16),
    "FP32": np.dtype(np.float32),
    "FP64": np.dtype(np.float64),
    "BYTES": np.dtype(object),
}

# ONNX Runtime's ``NodeArg.type`` strings -> v2 datatype.
ORT_TO_V2: dict[str, str] = {
    "tensor(bool)": "BOOL",
    "tensor(uint8)": "UINT8",
    "tensor(uint16)": "UINT16",
    "tensor(uint32)": "UINT32",
    "tensor(uint64)": "UINT64",
    "tensor(int8)": "INT8",
    "tensor(int16)": "INT16",
    "tensor(int32)": "INT32",
    "tensor(int64)": "INT64",
    "tensor(float16)": "FP16",
    "tensor(float)": "FP32",
    "tensor(double)": "FP64",
    "tensor(string)": "BYTES",
}

_NUMPY_TO_V2 = {dtype: name for name, dtype in V2_TO_NUMPY.items()}

SUPPORTED = ", ".join(V2_TO_NUMPY)


def numpy_to_v2(dtype: np.dtype) -> str:
    """The v2 datatype of a numpy array (unicode/bytes/object arrays are BYTES)."""
    if dtype.kind in ("U", "S", "O"):
        return "BYTES"
    try:
        return _NUMPY_TO_V2[np.dtype(dtype)]
    except KeyError as exc:
        raise TypeError(f"numpy dtype {dtype} has no Open Inference Protocol datatype") from exc
