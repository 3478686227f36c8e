"""The HTTP transport: FastAPI routes for the Open Inference Protocol (KServe v2) plus ops routes.

Inference bodies are read raw (``tritonclient`` sends no Content-Type, and the binary extension
is not JSON), size-limited while streaming, and passed to the data plane. Every error leaves as
``{"error": "..."}`` with a 4xx/5xx status.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import threading
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import orjson
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import Response
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from starlette.exceptions import HTTPException as StarletteHTTPException

from service import __version__
from service.dataplane import DataPlane
from service.errors import InferenceError, InvalidInput, ModelNotFound, PayloadTooLarge
from service.metrics import Metrics
from service.middleware import ObservabilityMiddleware
from service.model import ModelVersion, SessionConfig
from service.providers import nvidia_gpu_present, resolve_providers
from service.repository import ModelRegistry
from service.scheduler import DirectScheduler, Scheduler
from service.settings import Settings

log = logging.getLogger("service.app")

HEADER_LENGTH = "inference-header-content-length"
JSON_TYPE = "application/json"


def json_response(doc: Any, status: int = 200, headers: dict[str, str] | None = None) -> Response:
    return Response(orjson.dumps(doc), status_code=status, media_type=JSON_TYPE, headers=headers)


def error_response(status: int, message: str, headers: dict[str, str] | None = None) -> Response:
    return json_response({"error": message}, status, headers)


async def read_body(request: Request, limit: int) -> bytes:
    """The whole body, refusing (413) as soon as it is known to exceed ``limit`` bytes."""
    declared = request.headers.get("content-length")
    if declared is not None and declared.isdigit() and int(declared) > limit:
        raise PayloadTooLarge(
            f"request body of {declared} bytes exceeds the limit of {limit} bytes "
            "(MAX_REQUEST_BYTES)"
        )
    chunks: list[bytes] = []
    size = 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise PayloadTooLarge(
                f"request body exceeds the limit of {limit} bytes (MAX_REQUEST_BYTES)"
            )
        chunks.append(chunk)
    return b"".join(chunks)


def header_length(request: Request) -> int | None:
    raw = request.headers.get(HEADER_LENGTH)
    if raw is None:
        return None
    try:
        return int(raw)
    except ValueError:
        raise InvalidInput(
            f"Inference-Header-Content-Length must be an integer, got {raw!r}"
        ) from None


def build_scheduler(settings: Settings, metrics: Metrics) -> Scheduler:
    workers = settings.inference_workers or os.cpu_count() or 1
    return DirectScheduler(workers)


def build_registry(settings: Settings, on_unload: Any = None) -> ModelRegistry:
    providers = resolve_providers(
        settings.execution_provider,
        available=_available_providers(),
        gpu_present=nvidia_gpu_present(),
    )
    config = SessionConfig(
        providers=tuple(providers),
        intra_op_threads=settings.ort_intra_op_threads,
        inter_op_threads=settings.ort_inter_op_threads,
    )
    log.info(
        "execution providers chosen",
        extra={"setting": settings.execution_provider, "providers": providers},
    )

    def loader(name: str, version: int, path: Any) -> ModelVersion:
        return ModelVersion.load(name, version, path, config)

    return ModelRegistry(settings.model_dir, loader, warmup=settings.warmup, on_unload=on_unload)


def _available_providers() -> list[str]:
    import onnxruntime as ort

    return ort.get_available_providers()


async def _poll_repository(plane: DataPlane, interval_s: float) -> None:
    """Pick up published or removed versions; loading happens off the event loop."""
    while True:
        await asyncio.sleep(interval_s)
        try:
            await asyncio.to_thread(plane.registry.sync)
        except Exception:
            log.exception("model repository poll failed")


def create_app(settings: Settings, scheduler: Scheduler | None = None) -> FastAPI:
    """Build the ASGI app. Models load in a background thread once the server starts."""
    metrics = Metrics()
    scheduler = scheduler or build_scheduler(settings, metrics)
    registry = build_registry(settings, on_unload=scheduler.release)
    plane = DataPlane(
        registry,
        scheduler,
        strict_readiness=settings.strict_readiness,
        repository_api=settings.repository_api,
    )

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        loader = threading.Thread(target=registry.sync, name="model-loader", daemon=True)
        loader.start()
        poller = None
        if settings.model_poll_interval_s > 0:
            poller = asyncio.create_task(_poll_repository(plane, settings.model_poll_interval_s))
        log.info(
            "service starting",
            extra={"version": __version__, "model_dir": str(settings.model_dir)},
        )
        try:
            yield
        finally:
            plane.shutting_down = True
            if poller is not None:
                poller.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await poller
            scheduler.close()
            log.info("service stopped")

    app = FastAPI(
        title="ONNX inference service (Open Inference Protocol)",
        version=__version__,
        lifespan=lifespan,
        docs_url="/docs",
        redoc_url=None,
    )
    app.state.plane = plane
    app.state.metrics = metrics
    app.state.settings = settings

    @app.exception_handler(InferenceError)
    async def _inference_error(request: Request, exc: InferenceError) -> Response:
        return error_response(exc.status_code, exc.message, exc.headers)

    @app.exception_handler(StarletteHTTPException)
    async def _http_error(request: Request, exc: StarletteHTTPException) -> Response:
        return error_response(exc.status_code, str(exc.detail), getattr(exc, "headers", None))

    @app.exception_handler(RequestValidationError)
    async def _validation_error(request: Request, exc: RequestValidationError) -> Response:
        return error_response(400, f"invalid request: {exc.errors()}")

    @app.exception_handler(Exception)
    async def _unexpected(request: Request, exc: Exception) -> Response:
        log.error("unhandled error", extra={"path": request.url.path}, exc_info=exc)
        return error_response(500, f"internal error: {type(exc).__name__}")

    # -- health ------------------------------------------------------------------------------
    @app.get("/health", summary="Load balancer health check: 200 only when ready")
    async def health() -> Response:
        if plane.ready():
            return json_response({"status": "ready"})
        return error_response(503, "not ready: models are loading or none could be loaded")

    @app.get("/v2/health/live", summary="Liveness")
    async def live() -> Response:
        return json_response({"live": True})

    @app.get("/v2/health/ready", summary="Readiness")
    async def ready() -> Response:
        if plane.ready():
            return json_response({"ready": True})
        return json_response({"ready": False, "error": "not ready"}, 503)

    @app.get("/v2", summary="Server metadata")
    async def server_metadata() -> Response:
        return json_response(plane.server_metadata())

    # -- models ------------------------------------------------------------------------------
    @app.get("/v2/models/{model_name}", summary="Model metadata (highest ready version)")
    async def model_metadata(model_name: str) -> Response:
        return json_response(plane.model_metadata(model_name, None))

    @app.get("/v2/models/{model_name}/versions/{version}", summary="Model version metadata")
    async def model_version_metadata(model_name: str, version: str) -> Response:
        return json_response(plane.model_metadata(model_name, version))

    @app.get("/v2/models/{model_name}/ready", summary="Model readiness")
    async def model_ready(model_name: str) -> Response:
        return _ready_response(model_name, None)

    @app.get("/v2/models/{model_name}/versions/{version}/ready", summary="Version readiness")
    async def model_version_ready(model_name: str, version: str) -> Response:
        return _ready_response(model_name, version)

    def _ready_response(name: str, version: str | None) -> Response:
        if plane.model_ready(name, version):
            return json_response({"name": name, "ready": True})
        return json_response({"name": name, "ready": False, "error": "model not ready"}, 503)

    infer_body = {
        "requestBody": {
            "required": True,
            "content": {
                JSON_TYPE: {"schema": {"type": "object", "required": ["inputs"]}},
                "application/octet-stream": {"schema": {"type": "string", "format": "binary"}},
            },
        }
    }

    async def _infer(request: Request, model_name: str, version: str | None) -> Response:
        started = time.perf_counter()
        status = 500
        try:
            body = await read_body(request, settings.max_request_bytes)
            payload, hlen, _ = await plane.infer(model_name, version, body, header_length(request))
            status = 200
        except InferenceError as exc:
            status = exc.status_code
            raise
        finally:
            metrics.inference_requests.labels(model_name, str(status)).inc()
            if status >= 400:
                metrics.inference_failures.labels(model_name, str(status)).inc()
            else:
                metrics.inference_latency.labels(model_name).observe(time.perf_counter() - started)
        if hlen is None:
            return Response(payload, media_type=JSON_TYPE)
        return Response(
            payload,
            media_type="application/octet-stream",
            headers={"Inference-Header-Content-Length": str(hlen)},
        )

    @app.post("/v2/models/{model_name}/infer", summary="Inference", openapi_extra=infer_body)
    async def infer(request: Request, model_name: str) -> Response:
        return await _infer(request, model_name, None)

    @app.post(
        "/v2/models/{model_name}/versions/{version}/infer",
        summary="Inference on a version",
        openapi_extra=infer_body,
    )
    async def infer_version(request: Request, model_name: str, version: str) -> Response:
        return await _infer(request, model_name, version)

    # -- repository extension ----------------------------------------------------------------
    def _require_repository_api() -> None:
        if not plane.repository_api:
            raise ModelNotFound(
                "the model repository API is disabled; set REPOSITORY_API=true to enable it"
            )

    @app.post("/v2/repository/index", summary="Repository index")
    async def repository_index() -> Response:
        _require_repository_api()
        return json_response(registry.index())

    @app.post("/v2/repository/models/{model_name}/load", summary="Load or reload a model")
    async def repository_load(model_name: str) -> Response:
        _require_repository_api()
        report = await asyncio.to_thread(registry.load_model, model_name)
        if report.failed and not report.loaded:
            return error_response(400, f"model '{model_name}' failed to load: {report.failed}")
        return json_response({"name": model_name, "loaded": report.loaded, "failed": report.failed})

    @app.post("/v2/repository/models/{model_name}/unload", summary="Unload a model")
    async def repository_unload(model_name: str) -> Response:
        _require_repository_api()
        registry.unload_model(model_name)
        return json_response({"name": model_name, "unloaded": True})

    # -- metrics -----------------------------------------------------------------------------
    @app.get("/metrics", summary="Prometheus metrics")
    async def prometheus_metrics() -> Response:
        metrics.models_ready.set(sum(1 for e in registry.index() if e["state"] == "READY"))
        return Response(generate_latest(metrics.registry), media_type=CONTENT_TYPE_LATEST)

    app.add_middleware(ObservabilityMiddleware, metrics=metrics, access_log=settings.access_log)
    return app
