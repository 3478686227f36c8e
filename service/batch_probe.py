"""Is the first dimension of a model really a batch axis? Ask the model, once, at load time.

A dynamic first dimension does not prove it: ``x - mean(x, axis=0)``, a running sum over a
sequence-first tensor, or an LSTM in ONNX's default ``[seq, batch, ...]`` layout all accept any
first dimension, and combining requests along it hands every client other clients' data. So
before dynamic batching is turned on for a version, distinct requests (1, 2 and 1 rows of
random data) are run alone and then combined: batching stays on only when every output row of
the combined run equals the same row run alone, within a tolerance for the last bits batched
kernels may change (Triton leaves this to the model's configuration; here the safe answer is
the default and ``max_batch_size`` in the model's config file still decides it either way).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np

from service.datatypes import V2_TO_NUMPY
from service.signature import TensorSpec

PROBE_ROWS = (1, 2, 1)
# |combined - alone| <= ATOL + RTOL * max|alone|, per output: batched GEMMs and reductions
# reorder float additions (last bits), while mixing rows changes results at the scale of the data.
TOLERANCE = {"FP16": (1e-2, 1e-3), "FP32": (1e-4, 1e-5), "FP64": (1e-9, 1e-12)}

Run = Callable[[dict[str, np.ndarray]], list[np.ndarray]]


@dataclass(frozen=True, slots=True)
class ProbeResult:
    safe: bool
    reason: str


def probe_feeds(specs: Sequence[TensorSpec], rows: int, rng: np.random.Generator) -> dict:
    """Random inputs with ``rows`` in the first dimension (other dynamic dimensions 1). Integers
    are 0 or 1 so that index-like inputs (token or item ids, positions) stay valid for any size."""
    feeds = {}
    for spec in specs:
        shape = (rows, *(d if d >= 0 else 1 for d in spec.shape[1:]))
        count = int(np.prod(shape))
        if spec.datatype == "BYTES":
            array = np.array([f"probe-{int(v)}" for v in rng.integers(0, 1000, count)], object)
        elif spec.datatype == "BOOL":
            array = rng.integers(0, 2, count).astype(np.bool_)
        else:
            dtype = V2_TO_NUMPY[spec.datatype]
            values = rng.standard_normal(count) if dtype.kind == "f" else rng.integers(0, 2, count)
            array = values.astype(dtype)
        feeds[spec.name] = array.reshape(shape)
    return feeds


def _differs(combined: np.ndarray, alone: np.ndarray, datatype: str) -> bool:
    if combined.shape != alone.shape:
        return True
    if datatype not in TOLERANCE:
        return not np.array_equal(combined, alone)
    rtol, atol = TOLERANCE[datatype]
    a, b = combined.astype(np.float64), alone.astype(np.float64)
    both_nan = np.isnan(a) & np.isnan(b)
    scale = float(np.nanmax(np.abs(b), initial=0.0)) if b.size else 0.0
    with np.errstate(invalid="ignore"):
        diff = np.where(both_nan, 0.0, np.abs(a - b))
    return bool(np.nan_to_num(diff, nan=np.inf).max(initial=0.0) > atol + rtol * scale)


def probe_batching(
    run: Run, inputs: Sequence[TensorSpec], outputs: Sequence[TensorSpec], seed: int = 0
) -> ProbeResult:
    """Compare a combined run of distinct requests with the requests run alone."""
    rng = np.random.default_rng(seed)
    requests = [probe_feeds(inputs, rows, rng) for rows in PROBE_ROWS]
    combined_feeds = {
        spec.name: np.concatenate([r[spec.name] for r in requests]) for spec in inputs
    }
    try:
        alone = [run(r) for r in requests]
        combined = run(combined_feeds)
    except Exception as exc:
        return ProbeResult(False, f"probe run failed ({type(exc).__name__}): batching off")
    total = sum(PROBE_ROWS)
    offset = 0
    for rows, answers in zip(PROBE_ROWS, alone, strict=True):
        for spec, whole, single in zip(outputs, combined, answers, strict=True):
            if whole.shape[:1] != (total,):
                return ProbeResult(
                    False, f"output '{spec.name}' has no row per input row: batching off"
                )
            if _differs(whole[offset : offset + rows], single, spec.datatype):
                return ProbeResult(
                    False,
                    f"output '{spec.name}' of a combined run differs from the same rows run "
                    "alone (the first dimension is not a batch axis): batching off",
                )
        offset += rows
    return ProbeResult(True, "combined runs equal separate runs: batching on")
