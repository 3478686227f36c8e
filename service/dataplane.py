"""Protocol operations shared by every transport: health, metadata, inference.

HTTP handlers in ``app.py`` are thin: they pass raw bodies here and turn ``InferenceError``
into ``{"error": ...}`` responses (the MLServer ``handlers/dataplane.py`` split).
"""

from __future__ import annotations

import asyncio
from typing import Any

import numpy as np

from service import __version__
from service.codec import InferRequest, decode_request, encode_response
from service.compression import decompress
from service.decode_offload import INLINE_BYTES, PROCESS_JSON_BYTES, ByteBudget
from service.decode_worker import DecodeWorker
from service.errors import ModelNotReady
from service.model import ModelVersion
from service.repository import ModelRegistry
from service.run_errors import client_error
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
        max_request_bytes: int = 64 * 1024 * 1024,
    ) -> None:
        self.registry = registry
        self.scheduler = scheduler
        self.strict_readiness = strict_readiness
        self.repository_api = repository_api
        self.max_request_bytes = max_request_bytes
        self._decode_budget = ByteBudget(max_request_bytes)
        self._decode_worker = DecodeWorker()

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

    async def decode(
        self, body: bytes, header_length: int | None, content_encoding: str | None = None
    ) -> InferRequest:
        """Decode a request body (decompressing it first); big ones off the event loop."""
        if content_encoding is None and len(body) <= INLINE_BYTES:
            return decode_request(body, header_length)
        return await self._decode_budget.run(
            len(body), self._decode_large, body, header_length, content_encoding
        )

    async def _decode_large(
        self, body: bytes, header_length: int | None, content_encoding: str | None
    ) -> InferRequest:
        if content_encoding is not None:  # zlib releases the GIL while it inflates
            body = await asyncio.to_thread(
                decompress, body, content_encoding, self.max_request_bytes
            )
        json_bytes = len(body) if header_length is None else header_length
        if json_bytes > PROCESS_JSON_BYTES:  # JSON parsing would hold the GIL for too long
            return await self._decode_worker.decode(body, header_length)
        return await asyncio.to_thread(decode_request, body, header_length)

    async def close(self) -> None:
        """Stop the decoder process (at shutdown)."""
        await self._decode_worker.close()

    async def infer(
        self,
        name: str,
        version: str | None,
        body: bytes,
        header_length: int | None,
        content_encoding: str | None = None,
    ) -> tuple[bytes, int | None]:
        """Run one inference request; returns (body, ``Inference-Header-Content-Length``).

        ``content_encoding``: gzip or deflate when the body is compressed (see compression.py).
        """
        model = self._ready_model(name, version)
        request = await self.decode(body, header_length, content_encoding)
        requested = None if request.outputs is None else [o.name for o in request.outputs]
        names, arrays = await self._run(model, request.inputs, requested)
        if request.outputs is None:
            binary = [request.binary_output] * len(names)
        else:
            binary = [o.binary for o in request.outputs]
        specs = model.output_specs
        outputs = [
            (n, specs[n].datatype, a, b) for n, a, b in zip(names, arrays, binary, strict=True)
        ]
        if sum(a.nbytes for a in arrays) <= INLINE_BYTES:
            return encode_response(model.name, str(model.version), outputs, request.id)
        return await asyncio.to_thread(
            encode_response, model.name, str(model.version), outputs, request.id
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
        model = self._ready_model(name, version)
        names, arrays = await self._run(model, inputs, output_names)
        return model, names, arrays

    def _ready_model(self, name: str, version: str | None) -> ModelVersion:
        """The version to run, once the first load is done (503 before, 404 if unknown)."""
        if not self.registry.initial_load_done:
            raise ModelNotReady("the service is still loading models; retry shortly")
        return self.registry.get(name, version)

    async def _run(
        self, model: ModelVersion, inputs: dict[str, np.ndarray], output_names: list[str] | None
    ) -> tuple[list[str], list[np.ndarray]]:
        """Validate, prepare and batch one request's inputs (HTTP and gRPC alike); a model
        failure caused by the values is the client's error (``client_error``)."""
        validate_inputs(model.name, model.inputs, inputs)
        feeds = model.prepare(inputs)
        if output_names is None:
            names = model.output_names
        else:
            names = output_names
            validate_outputs(model.name, model.outputs, names)
        try:
            arrays = await self.scheduler.run(model, feeds, names)
        except Exception as exc:  # the values made a node fail: the client's error, not ours
            rejected = client_error(model.name, exc)
            if rejected is None:
                raise
            raise rejected from None
        return names, arrays
