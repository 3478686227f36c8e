"""``inference.GRPCInferenceService``: the Open Inference Protocol over gRPC, on the data plane
the HTTP routes use (same registry, same batcher, same checks and error messages).

Handlers are registered as generic handlers rather than through the generated servicer base so
that ``ModelInfer`` can see the size of the serialized request before parsing it: a request over
MAX_REQUEST_BYTES gets RESOURCE_EXHAUSTED with the HTTP API's 413 message. RPCs this service does
not implement (statistics, shared memory, trace and log settings) answer UNIMPLEMENTED.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from typing import Any

import grpc
from google.protobuf.message import DecodeError

from service import logs
from service.dataplane import DataPlane
from service.effective_config import model_config_proto
from service.errors import (
    InferenceError,
    InvalidInput,
    ModelNotFound,
    PayloadTooLarge,
    ServerBusy,
)
from service.grpc.protos import SERVICE_NAME, service_pb2
from service.grpc.status import HTTP_STATUS, grpc_code
from service.grpc.tensors import decode_infer_request, encode_infer_response
from service.metric_names import UNKNOWN_MODEL
from service.metrics import Metrics

log = logging.getLogger("service.grpc")

pb = service_pb2
Handler = Callable[[Any, Any], Awaitable[Any]]


@dataclass(frozen=True, slots=True)
class Malformed:
    """Stands in for a request that is not a valid message of its type."""

    message: str


def _parse(message_type: Any) -> Callable[[bytes], Any]:
    """A deserializer that turns bad bytes into INVALID_ARGUMENT (grpcio's own answer to a
    deserializer that raises is INTERNAL, which would blame the server)."""
    name = message_type.DESCRIPTOR.full_name

    def parse(data: bytes) -> Any:
        try:
            return message_type.FromString(data)
        except DecodeError as exc:
            return Malformed(f"the request is not a valid {name}: {exc}")

    return parse


@dataclass(frozen=True, slots=True)
class TooLarge:
    """Stands in for a ``ModelInferRequest`` whose serialized size is over the limit."""

    size: int


def _version(value: str) -> str | None:
    return value or None


def _peer_host(peer: str) -> str | None:
    """``ipv4:10.0.1.5:53211`` / ``ipv6:[::1]:5000`` -> the address part."""
    kind, _, rest = peer.partition(":")
    if kind not in ("ipv4", "ipv6"):
        return peer or None
    host, _, _port = rest.rpartition(":")
    return host.strip("[]") or None


class InferenceServicer:
    """The RPC handlers, plus the per-call metrics and access log."""

    def __init__(
        self, plane: DataPlane, metrics: Metrics, *, max_request_bytes: int, access_log: bool
    ) -> None:
        self.plane = plane
        self.metrics = metrics
        self.limit = max_request_bytes
        self.access_log = access_log
        self._children: dict[tuple, Any] = {}  # metric children by labels (labels() is slow)

    def _child(self, metric: Any, *labels: str) -> Any:
        key = (id(metric), *labels)
        child = self._children.get(key)
        if child is None:
            child = self._children[key] = metric.labels(*labels)
        return child

    # -- registration ---------------------------------------------------------------------------
    def generic_handler(self) -> grpc.GenericRpcHandler:
        unary = {
            "ServerLive": (self.server_live, _parse(pb.ServerLiveRequest)),
            "ServerReady": (self.server_ready, _parse(pb.ServerReadyRequest)),
            "ModelReady": (self.model_ready, _parse(pb.ModelReadyRequest)),
            "ServerMetadata": (self.server_metadata, _parse(pb.ServerMetadataRequest)),
            "ModelMetadata": (self.model_metadata, _parse(pb.ModelMetadataRequest)),
            "ModelInfer": (self.model_infer, self._parse_infer),
            "ModelConfig": (self.model_config, _parse(pb.ModelConfigRequest)),
            "RepositoryIndex": (self.repository_index, _parse(pb.RepositoryIndexRequest)),
            "RepositoryModelLoad": (self.repository_load, _parse(pb.RepositoryModelLoadRequest)),
            "RepositoryModelUnload": (
                self.repository_unload,
                _parse(pb.RepositoryModelUnloadRequest),
            ),
        }
        handlers: dict[str, grpc.RpcMethodHandler] = {
            name: grpc.unary_unary_rpc_method_handler(
                self._observed(name, fn),
                request_deserializer=parse,
                response_serializer=_serialize,
            )
            for name, (fn, parse) in unary.items()
        }
        handlers["ModelStreamInfer"] = grpc.stream_stream_rpc_method_handler(
            self.model_stream_infer,
            request_deserializer=self._parse_infer,
            response_serializer=_serialize,
        )
        return grpc.method_handlers_generic_handler(SERVICE_NAME, handlers)

    def _parse_infer(self, data: bytes) -> Any:
        if len(data) > self.limit:
            return TooLarge(len(data))
        return _parse(pb.ModelInferRequest)(data)

    # -- observability --------------------------------------------------------------------------
    def _observed(self, method: str, fn: Handler) -> Handler:
        path = f"/{SERVICE_NAME}/{method}"

        async def handler(request: Any, context: grpc.aio.ServicerContext) -> Any:
            started = time.perf_counter()
            code, message = grpc.StatusCode.OK, ""
            try:
                if isinstance(request, Malformed):
                    raise InvalidInput(request.message)
                return await fn(request, context)
            except InferenceError as exc:
                code, message = grpc_code(exc), exc.message
            except asyncio.CancelledError:
                code = grpc.StatusCode.CANCELLED
                raise
            except Exception as exc:
                log.error("gRPC call failed", extra={"method": method}, exc_info=exc)
                code, message = grpc.StatusCode.INTERNAL, f"internal error: {type(exc).__name__}"
            finally:
                self._record(method, path, code, started, context)
            await context.abort(code, message)

        return handler

    def _record(
        self,
        method: str,
        path: str,
        code: grpc.StatusCode,
        started: float,
        context: grpc.aio.ServicerContext,
    ) -> None:
        self._child(self.metrics.grpc_requests, method, code.name).inc()
        if not self.access_log:
            return
        user_agent = ""
        for key, value in context.invocation_metadata() or ():
            if key == "user-agent":
                user_agent = value if isinstance(value, str) else value.decode("latin-1")
                break
        # The HTTP access log's own cheap writer (service.logs.access): one record format for
        # both transports (path: the gRPC method; status: its HTTP equivalent).
        logs.access(
            "POST",
            path,
            HTTP_STATUS.get(code, 500),
            round((time.perf_counter() - started) * 1000, 3),
            user_agent,
            _peer_host(context.peer()),
        )

    def _inference_metrics(self, model: str, status: int, started: float) -> None:
        label = model if self.plane.registry.knows(model) else UNKNOWN_MODEL
        metrics = self.metrics
        self._child(metrics.inference_requests, label, str(status)).inc()
        if status >= 400:
            self._child(metrics.inference_failures, label, str(status)).inc()
        else:
            latency = time.perf_counter() - started
            self._child(metrics.inference_latency, label).observe(latency)

    # -- health and metadata --------------------------------------------------------------------
    async def server_live(self, request: Any, context: Any) -> Any:
        return pb.ServerLiveResponse(live=True)

    async def server_ready(self, request: Any, context: Any) -> Any:
        return pb.ServerReadyResponse(ready=self.plane.ready())

    async def model_ready(self, request: Any, context: Any) -> Any:
        return pb.ModelReadyResponse(
            ready=self.plane.model_ready(request.name, _version(request.version))
        )

    async def server_metadata(self, request: Any, context: Any) -> Any:
        return pb.ServerMetadataResponse(**self.plane.server_metadata())

    async def model_metadata(self, request: Any, context: Any) -> Any:
        doc = self.plane.model_metadata(request.name, _version(request.version))
        tensor = pb.ModelMetadataResponse.TensorMetadata
        return pb.ModelMetadataResponse(
            name=doc["name"],
            versions=doc["versions"],
            platform=doc["platform"],
            inputs=[tensor(**t) for t in doc["inputs"]],
            outputs=[tensor(**t) for t in doc["outputs"]],
        )

    async def model_config(self, request: Any, context: Any) -> Any:
        model = self.plane.registry.get(request.name, _version(request.version))
        return pb.ModelConfigResponse(config=model_config_proto(model))

    # -- inference ------------------------------------------------------------------------------
    async def model_infer(self, request: Any, context: Any) -> Any:
        started = time.perf_counter()
        name = getattr(request, "model_name", "")
        emf = self.metrics.emf  # CloudWatch metrics (in flight, latency, errors) as HTTP's
        if emf is not None:
            emf.request_started()
        status, shed = 499, False  # 499 if the call is cancelled: the client went away
        try:
            response = await self._infer(request)
            status = 200
        except InferenceError as exc:
            status, shed = exc.status_code, isinstance(exc, ServerBusy)
            raise
        except Exception:
            status = 500
            raise
        finally:
            if status != 499:
                self._inference_metrics(name, status, started)
            if emf is not None:
                label = name if self.plane.registry.knows(name) else UNKNOWN_MODEL
                emf.request_finished(label, status, time.perf_counter() - started, shed)
        return response

    async def _infer(self, request: Any) -> Any:
        if isinstance(request, Malformed):
            raise InvalidInput(request.message)
        if isinstance(request, TooLarge):
            raise PayloadTooLarge(
                f"request body of {request.size} bytes exceeds the limit of {self.limit} bytes "
                "(MAX_REQUEST_BYTES)"
            )
        decoded = decode_infer_request(request)
        model, names, arrays = await self.plane.infer_arrays(
            request.model_name, _version(request.model_version), decoded.inputs, decoded.outputs
        )
        specs = model.output_specs
        return encode_infer_response(
            model.name,
            str(model.version),
            decoded.id,
            [(n, specs[n].datatype, a) for n, a in zip(names, arrays, strict=True)],
        )

    async def model_stream_infer(
        self, requests: AsyncIterator[Any], context: grpc.aio.ServicerContext
    ) -> AsyncIterator[Any]:
        """Triton's streaming extension: one response (or error message) per request, in order."""
        path = f"/{SERVICE_NAME}/ModelStreamInfer"
        started = time.perf_counter()
        code = grpc.StatusCode.OK
        try:
            async for request in requests:
                try:
                    response = await self.model_infer(request, context)
                except InferenceError as exc:
                    yield pb.ModelStreamInferResponse(error_message=exc.message)
                else:
                    yield pb.ModelStreamInferResponse(infer_response=response)
        except asyncio.CancelledError:
            code = grpc.StatusCode.CANCELLED
            raise
        finally:
            self._record("ModelStreamInfer", path, code, started, context)

    # -- repository extension ---------------------------------------------------------------------
    def _require_repository_api(self) -> None:
        if not self.plane.repository_api:
            raise ModelNotFound(
                "the model repository API is disabled; set REPOSITORY_API=true to enable it"
            )

    async def repository_index(self, request: Any, context: Any) -> Any:
        self._require_repository_api()
        entries = await asyncio.to_thread(self.plane.registry.index, request.ready)
        index = pb.RepositoryIndexResponse.ModelIndex
        return pb.RepositoryIndexResponse(models=[index(**entry) for entry in entries])

    async def repository_load(self, request: Any, context: Any) -> Any:
        self._require_repository_api()
        name = request.model_name
        report = await asyncio.to_thread(self.plane.registry.load_model, name)
        if report.failed and not report.loaded:
            raise InvalidInput(f"model '{name}' failed to load: {report.failed}")
        return pb.RepositoryModelLoadResponse()

    async def repository_unload(self, request: Any, context: Any) -> Any:
        self._require_repository_api()
        await asyncio.to_thread(self.plane.registry.unload_model, request.model_name)
        return pb.RepositoryModelUnloadResponse()


def _serialize(message: Any) -> bytes:
    return message.SerializeToString()
