"""A model's input/output signature and the checks a request must pass before it reaches ORT.

ONNX Runtime's own errors are terse and sometimes surface as 500s; checking here gives the
client a 400 that names the input, what was sent and what the model expects.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from service.datatypes import ORT_TO_V2, numpy_to_v2
from service.errors import InvalidInput


@dataclass(frozen=True, slots=True)
class TensorSpec:
    """One model input or output: name, v2 datatype and shape (-1 for a dynamic dimension)."""

    name: str
    datatype: str
    shape: tuple[int, ...]
    # Symbolic names of dynamic dimensions ("batch"), None where fixed or unnamed: inputs that
    # share a name must agree on that dimension.
    dim_names: tuple[str | None, ...] = ()

    @classmethod
    def from_node_arg(cls, node: Any) -> TensorSpec:
        """Build from an ``onnxruntime.NodeArg`` (symbolic or missing dims become -1)."""
        datatype = ORT_TO_V2.get(node.type)
        if datatype is None:
            raise ValueError(f"tensor '{node.name}' has unsupported type {node.type}")
        dims = node.shape or []
        shape = tuple(d if isinstance(d, int) and d >= 0 else -1 for d in dims)
        names = tuple(d if isinstance(d, str) and d else None for d in dims)
        return cls(node.name, datatype, shape, names)

    def metadata(self) -> dict[str, Any]:
        return {"name": self.name, "datatype": self.datatype, "shape": list(self.shape)}

    def describe(self) -> str:
        return f"{self.name} ({self.datatype} {list(self.shape)})"

    def zeros(self, batch: int = 1) -> np.ndarray:
        """A zero tensor of this shape (dynamic dims set to ``batch``), used for warm-up."""
        from service.datatypes import V2_TO_NUMPY

        shape = tuple(batch if d < 0 else d for d in self.shape)
        if self.datatype == "BYTES":
            return np.full(shape, "", dtype=object)
        return np.zeros(shape, dtype=V2_TO_NUMPY[self.datatype])


def _expected(specs: Sequence[TensorSpec]) -> str:
    return ", ".join(s.describe() for s in specs)


def validate_inputs(
    model: str, specs: Sequence[TensorSpec], inputs: Mapping[str, np.ndarray]
) -> None:
    """Raise InvalidInput unless ``inputs`` match the model's inputs exactly."""
    wanted = {s.name for s in specs}
    missing = sorted(wanted - inputs.keys())
    unknown = sorted(inputs.keys() - wanted)
    if missing or unknown:
        parts = []
        if missing:
            parts.append(f"missing inputs {missing}")
        if unknown:
            parts.append(f"unknown inputs {unknown}")
        raise InvalidInput(
            f"model '{model}': {' and '.join(parts)}; expected inputs: {_expected(specs)}"
        )
    for spec in specs:
        array = inputs[spec.name]
        datatype = numpy_to_v2(array.dtype)
        if datatype != spec.datatype:
            raise InvalidInput(
                f"input '{spec.name}' has datatype {datatype} but model '{model}' expects "
                f"{spec.datatype}"
            )
        if array.ndim != len(spec.shape):
            raise InvalidInput(
                f"input '{spec.name}' has shape {list(array.shape)} (rank {array.ndim}) but "
                f"model '{model}' expects rank {len(spec.shape)}: {list(spec.shape)}"
            )
        for axis, (got, want) in enumerate(zip(array.shape, spec.shape, strict=True)):
            if want >= 0 and got != want:
                raise InvalidInput(
                    f"input '{spec.name}' has shape {list(array.shape)} but model '{model}' "
                    f"expects {list(spec.shape)}: dimension {axis} must be {want}"
                )
    _check_shared_dims(model, specs, inputs)


def _check_shared_dims(
    model: str, specs: Sequence[TensorSpec], inputs: Mapping[str, np.ndarray]
) -> None:
    """Dynamic dimensions with the same symbolic name (e.g. "batch") must be equal."""
    seen: dict[str, tuple[str, int]] = {}
    for spec in specs:
        for axis, dim in enumerate(spec.dim_names):
            if dim is None:
                continue
            size = inputs[spec.name].shape[axis]
            first = seen.setdefault(dim, (spec.name, size))
            if first[1] != size:
                raise InvalidInput(
                    f"inputs '{first[0]}' and '{spec.name}' of model '{model}' must agree on "
                    f"dimension '{dim}': {first[1]} != {size}"
                )


def validate_outputs(model: str, specs: Sequence[TensorSpec], names: Sequence[str]) -> None:
    """Raise InvalidInput if a requested output does not exist."""
    known = {s.name for s in specs}
    unknown = [n for n in names if n not in known]
    if unknown:
        raise InvalidInput(
            f"model '{model}' has no outputs {unknown}; available outputs: {_expected(specs)}"
        )
