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

from service.model_config import BatchingConfig
from service.providers import CUDA, ProviderUnavailable
from service.signature import TensorSpec

log = logging.getLogger("service.model")

MODEL_FILENAME = "model.onnx"


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
        return model

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
        return self.session.run(self.output_names, feeds)

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
            "parameters": {"execution_provider": self.provider},
        }
