"""One loaded model version: an ONNX Runtime session plus its signature.

``InferenceSession.run`` releases the GIL and is thread-safe, so one session per version serves
every request thread. Session creation holds the GIL: it happens at start-up (before ready) or in
the background reloader, never on the request path.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import onnxruntime as ort

from service.batch_probe import probe_batching
from service.errors import InvalidInput
from service.model_config import BatchingConfig
from service.providers import CUDA, ProviderUnavailable
from service.signature import TensorSpec

log = logging.getLogger("service.model")

MODEL_FILENAME = "model.onnx"

# ORT writes a line to stderr for every failed run (an input's index out of range, say) before
# raising; the exception already carries the message and the client gets it as a 400. Those
# lines would let any client write to the error log at will, so runs log only fatal errors.
_QUIET_RUN = ort.RunOptions()
_QUIET_RUN.log_severity_level = 4


@dataclass(frozen=True, slots=True)
class SessionConfig:
    """How sessions are built: providers (preferred first) and ORT thread counts."""

    providers: tuple[str, ...]
    intra_op_threads: int = 0
    inter_op_threads: int = 1


class ModelVersion:
    """A ready-to-run version of a model."""

    platform = "onnxruntime_onnx"

    def __init__(
        self,
        name: str,
        version: int,
        path: Path,
        session: ort.InferenceSession,
        batching: BatchingConfig | None = None,
    ) -> None:
        self.name = name
        self.version = version
        self.path = path
        self.session = session
        self.inputs = [TensorSpec.from_node_arg(n) for n in session.get_inputs()]
        self.outputs = [TensorSpec.from_node_arg(n) for n in session.get_outputs()]
        self.output_names = [o.name for o in self.outputs]
        self.provider = session.get_providers()[0]
        self.output_specs = {o.name: o for o in self.outputs}
        self.output_index = {name: i for i, name in enumerate(self.output_names)}
        self.batching = batching or BatchingConfig()
        self._string_inputs = [s.name for s in self.inputs if s.datatype == "BYTES"]
        # Until ``decide_batching`` asked the model, trust the structure (tests build versions
        # directly); ``load`` always decides.
        self.dynamic_batching = self.batching.batching and self.batchable
        self.batching_reason = "not probed"
        self.file_config: Any = None  # ModelFileConfig, set by the loader (effective config)

    @classmethod
    def load(
        cls,
        name: str,
        version: int,
        path: Path,
        config: SessionConfig,
        batching: BatchingConfig | None = None,
    ) -> ModelVersion:
        """Create the session; raise if the requested accelerator did not come up."""
        if CUDA in config.providers and hasattr(ort, "preload_dlls"):
            ort.preload_dlls()  # CUDA/cuDNN from the nvidia-* wheels of the `cuda` extra
        options = ort.SessionOptions()
        options.intra_op_num_threads = config.intra_op_threads
        options.inter_op_num_threads = config.inter_op_threads
        options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        options.log_severity_level = 3
        session = ort.InferenceSession(str(path), sess_options=options, providers=config.providers)
        model = cls(name, version, path, session, batching)
        if config.providers[0] == CUDA and model.provider != CUDA:
            raise ProviderUnavailable(
                f"asked for {CUDA} but ONNX Runtime fell back to {model.provider} "
                "(CUDA/cuDNN libraries missing or GPU not usable)"
            )
        model.decide_batching()
        return model

    def decide_batching(self) -> None:
        """Dynamic batching on or off for this version, and why (logged, in the metadata).

        The model's config file wins: ``max_batch_size`` > 1 there turns batching on without a
        probe, 0 or 1 turns it off. Otherwise batching needs a shared dynamic first dimension and
        a probe showing that combined runs give every request its own answer."""
        config = self.batching
        if not config.batching:
            on, reason = False, f"max_batch_size is {config.max_batch_size}: batching off"
        elif not self.batchable:
            on, reason = False, "inputs/outputs share no dynamic first dimension: batching off"
        elif config.explicit:
            on, reason = True, "max_batch_size set in the model's config file: batching on"
        else:
            result = probe_batching(self.run, self.inputs, self.outputs)
            on, reason = result.safe, result.reason
        self.dynamic_batching, self.batching_reason = on, reason
        log.log(
            logging.INFO if on or not config.batching else logging.WARNING,
            "dynamic batching decided",
            extra={"model": self.name, "version": self.version, "batching": on, "reason": reason},
        )

    @property
    def batchable(self) -> bool:
        """True when the first dimension of every input and output is dynamic and the same one:
        the same symbolic name everywhere (e.g. "batch"), or no names at all (requests are then
        still checked row by row in the batcher)."""
        specs = (*self.inputs, *self.outputs)
        if not all(s.shape and s.shape[0] == -1 for s in specs):
            return False
        names = {s.dim_names[0] if s.dim_names else None for s in specs}
        return len(names) == 1

    def run(self, feeds: dict[str, np.ndarray]) -> list[np.ndarray]:
        """Run the session; every output, in ``output_names`` order."""
        return self.session.run(self.output_names, feeds, _QUIET_RUN)

    def prepare(self, feeds: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        """Request tensors as ONNX Runtime takes them. BYTES arrive as ``bytes``; ORT's Python
        binding turns a ``bytes`` object into the text of its repr (``b'cat'``), so string inputs
        become ``str`` (UTF-8, which is what ORT strings hold). Non-UTF-8 is refused."""
        for name in self._string_inputs:
            feeds[name] = utf8_strings(feeds[name], name)
        return feeds

    def warmup(self) -> float:
        """One real run with zeros of the input shapes (dynamic dims = 1); returns seconds."""
        started = time.perf_counter()
        self.run({spec.name: spec.zeros() for spec in self.inputs})
        return time.perf_counter() - started

    def metadata(self) -> dict:
        return {
            "name": self.name,
            "versions": [str(self.version)],
            "platform": self.platform,
            "inputs": [s.metadata() for s in self.inputs],
            "outputs": [s.metadata() for s in self.outputs],
            "parameters": {
                "execution_provider": self.provider,
                "dynamic_batching": self.dynamic_batching,
                "max_batch_size": self.batching.max_batch_size if self.dynamic_batching else 0,
                "batching_decision": self.batching_reason,
            },
        }


def utf8_strings(array: np.ndarray, name: str) -> np.ndarray:
    """An object array of ``str`` from one of ``bytes`` (or ``str``), refusing non-UTF-8."""
    flat = array.reshape(-1)
    out = np.empty(flat.size, dtype=object)
    for i, item in enumerate(flat):
        if isinstance(item, bytes):
            try:
                item = item.decode("utf-8")
            except UnicodeDecodeError:
                raise InvalidInput(
                    f"input '{name}': element {i} is not valid UTF-8; the model takes text "
                    "(ONNX string tensors hold UTF-8)"
                ) from None
        out[i] = item
    return out.reshape(array.shape)
