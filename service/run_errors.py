"""Which ONNX Runtime failures the request caused (400, with ORT's reason) and which are ours.

Inputs reach ORT only after the signature checks (names, datatypes, ranks, fixed dimensions),
so a node that fails during ``run`` on them failed on the values: an index out of range, shapes
that do not broadcast, a reshape that does not fit. ORT reports these as ``InvalidArgument`` or,
depending on the kernel, as ``Fail`` (GatherElements) or ``RuntimeException``, always with
"Non-zero status code returned while running <op> node". Those are the client's to fix: 400,
no traceback in the error log (a client could flood it). Allocation failures and execution
provider errors stay server errors.
"""

from __future__ import annotations

import re

from onnxruntime.capi import onnxruntime_pybind11_state as ort_state

from service.errors import InvalidInput

NODE_FAILURE = "Non-zero status code returned while running"
_SERVER_SIDE = ("Failed to allocate memory", "bad_alloc", "CUDA", "cudnn", "out of memory")
_SOURCE_LOCATION = re.compile(r"/onnxruntime_src/\S+:\d+ (?:[^\[]*?\[with [^\]]*\] )?")
_MAYBE_INPUT = (ort_state.InvalidArgument, ort_state.Fail, ort_state.RuntimeException)


def client_error(model: str, exc: BaseException) -> InvalidInput | None:
    """An InvalidInput (400) for a failure the request's values caused, else None."""
    if not isinstance(exc, _MAYBE_INPUT):
        return None
    message = str(exc)
    if any(marker in message for marker in _SERVER_SIDE):
        return None
    if not isinstance(exc, ort_state.InvalidArgument) and NODE_FAILURE not in message:
        return None
    reason = _SOURCE_LOCATION.sub("", message)
    return InvalidInput(f"model '{model}' rejected the input: {reason}")
