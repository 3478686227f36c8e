"""Protocol operations shared by every transport: health, metadata, inference.

HTTP handlers in ``app.py`` are thin: they pass raw bodies here and turn ``InferenceError``
into ``{"error": ...}`` responses (the MLServer ``handlers/dataplane.py`` split).
"""

from __future__ import annotations

from typing import Any

import numpy as np
from onnxruntime.capi.onnxruntime_pybind11_state import InvalidArgument as OrtInvalidArgument

from service import __version__
from service.codec import decode_request, encode_response
from service.errors import InvalidInput, ModelNotReady
from service.model import ModelVersion
from service.repository import ModelRegistry
from service.scheduler import Scheduler
from service.signature import validate_inputs, validate_outputs

SERVER_NAME = "onnx-ecs-serving"


class DataPlane:
    """The Open Inference Protocol's operations over a model registry."""

    def __init__(
        self,
        registry: ModelRegistry,
        scheduler: Scheduler,
        *,
        strict_readiness: bool = False,
        repository_api: bool = False,
    ) -> None:
        self.registry = registry
        self.scheduler = scheduler
        self.strict_readiness = strict_readiness
        self.repository_api = repository_api

    def server_metadata(self) -> dict[str, Any]:
        extensions = ["binary_tensor_data", "model_configuration"]
        if self.repository_api:
            extensions.append("model_repository")
        return {"name": SERVER_NAME, "version": __version__, "extensions": extensions}

    def ready(self) -> bool:
        return self.registry.ready(self.strict_readiness)

    def model_metadata(self, name: str, version: str | None) -> dict[str, Any]:
        model = self.registry.get(name, version)
        metadata = model.metadata()
        if version is None:
            metadata["versions"] = [str(v) for v in self.registry.versions(name)]
        return metadata

    def model_ready(self, name: str, version: str | None) -> bool:
        try:
            self.registry.get(name, version)
        except ModelNotReady:
            return False
        return True

    async def infer(
        self, name: str, version: str | None, body: bytes, header_length: int | None
    ) -> tuple[bytes, int | None]:
        """Run one inference request; returns (body, ``Inference-Header-Content-Length``)."""
        if not self.registry.initial_load_done:
            raise ModelNotReady("the service is still loading models; retry shortly")
        model = self.registry.get(name, version)
        request = decode_request(body, header_length)
        validate_inputs(model.name, model.inputs, request.inputs)
        if request.outputs is None:
            names = model.output_names
            binary = [request.binary_output] * len(names)
        else:
            names = [o.name for o in request.outputs]
            validate_outputs(model.name, model.outputs, names)
            binary = [o.binary for o in request.outputs]
        try:
            arrays = await self.scheduler.run(model, request.inputs, names)
        except OrtInvalidArgument as exc:  # ORT's own check of the input values
            raise InvalidInput(f"model '{model.name}' rejected the input: {exc}") from None
        specs = model.output_specs
        return encode_response(
            model.name,
            str(model.version),
            [(n, specs[n].datatype, a, b) for n, a, b in zip(names, arrays, binary, strict=True)],
            request.id,
        )

    async def infer_arrays(
        self,
        name: str,
        version: str | None,
        inputs: dict[str, np.ndarray],
        output_names: list[str] | None,
    ) -> tuple[ModelVersion, list[str], list[np.ndarray]]:
        """Run decoded inputs (the gRPC transport): the same checks, batcher and errors as
        ``infer``; returns the version that ran, the output names and their arrays."""
        if not self.registry.initial_load_done:
            raise ModelNotReady("the service is still loading models; retry shortly")
        model = self.registry.get(name, version)
        validate_inputs(model.name, model.inputs, inputs)
        if output_names is None:
            names = model.output_names
        else:
            names = output_names
            validate_outputs(model.name, model.outputs, names)
        try:
            arrays = await self.scheduler.run(model, inputs, names)
        except OrtInvalidArgument as exc:  # ORT's own check of the input values
            raise InvalidInput(f"model '{model.name}' rejected the input: {exc}") from None
        return model, names, arrays
