"""The inference endpoint as a pure ASGI handler, in front of FastAPI's router.

``POST /v2/models/{m}[/versions/{v}]/infer`` is the hot path: going through Starlette routing,
FastAPI's dependency solving and Request objects cost more than decoding, batching and running a
small model together (measured in ``bench/``). This handler reads the raw body (size-limited while
streaming), calls the data plane and writes the response itself. Every other route stays on
FastAPI. The OpenAPI schema documents this route too (``openapi_paths``).
"""

from __future__ import annotations

import asyncio
import logging
import re
import time
from typing import Any

import orjson
from starlette.types import ASGIApp, Receive, Scope, Send
from uvicorn.protocols.http import h11_impl, httptools_impl

from service.compression import parse_encoding
from service.dataplane import DataPlane
from service.errors import (
    InferenceError,
    InvalidInput,
    PayloadTooLarge,
    RequestTimeout,
    ServerBusy,
)
from service.metric_names import UNKNOWN_MODEL
from service.metrics import Metrics

log = logging.getLogger("service.app")

INFER_PATH = re.compile(r"^/v2/models/(?P<model>[^/]+)(?:/versions/(?P<version>[^/]+))?/infer$")
JSON = b"application/json"
OCTET = b"application/octet-stream"
_UVICORN_CYCLES = (httptools_impl.RequestResponseCycle, h11_impl.RequestResponseCycle)


class InferRoute:
    """ASGI middleware answering infer requests; everything else goes to ``app``."""

    def __init__(
        self,
        app: ASGIApp,
        plane: DataPlane,
        metrics: Metrics,
        max_request_bytes: int,
        body_timeout_s: float = 60.0,
    ) -> None:
        self.app = app
        self.plane = plane
        self.metrics = metrics
        self.limit = max_request_bytes
        self.body_timeout_s = body_timeout_s

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        match = INFER_PATH.match(scope["path"]) if scope["type"] == "http" else None
        if match is None:
            await self.app(scope, receive, send)
        elif scope["method"] == "POST":
            await self._infer(match["model"], match["version"], scope, receive, send)
        else:
            body = _error(f"method {scope['method']} not allowed on an infer endpoint; use POST")
            await _respond(send, 405, body, [(b"content-type", JSON), (b"allow", b"POST")])

    async def _infer(
        self, model: str, version: str | None, scope: Scope, receive: Receive, send: Send
    ) -> None:
        started = time.perf_counter()
        emf = self.metrics.emf
        if emf is None:
            await self._answer(model, version, scope, receive, send, started)
            return
        emf.request_started()
        status, shed = 499, False  # 499 if the task is cancelled: the client went away
        try:
            status, shed = await self._answer(model, version, scope, receive, send, started)
        finally:
            label = model if self.plane.registry.knows(model) else UNKNOWN_MODEL
            emf.request_finished(label, status, time.perf_counter() - started, shed)

    async def _answer(
        self,
        model: str,
        version: str | None,
        scope: Scope,
        receive: Receive,
        send: Send,
        started: float,
    ) -> tuple[int, bool]:
        """Answer one infer request; returns the status and whether it was shed (queue full)."""
        extra_headers: dict[str, str] = {}
        shed = False
        try:
            declared, header_length, encoding = _headers(scope)
            coding = parse_encoding(encoding)
            if declared is not None and declared > self.limit:
                raise PayloadTooLarge(
                    f"request body of {declared} bytes exceeds the limit of {self.limit} bytes "
                    "(MAX_REQUEST_BYTES)"
                )
            try:
                if _body_received(receive):  # nothing to wait for: no timer needed
                    body = await self._read_body(receive)
                else:
                    async with asyncio.timeout(self.body_timeout_s):
                        body = await self._read_body(receive)
            except TimeoutError:
                raise RequestTimeout(
                    f"the request body did not arrive within {self.body_timeout_s:g} s "
                    "(REQUEST_BODY_TIMEOUT_S)",
                    headers={"Connection": "close"},
                ) from None
            if body is None:
                return 499, False  # client went away
            payload, hlen = await self.plane.infer(
                model, version, body, header_length, content_encoding=coding
            )
            status = 200
        except InferenceError as exc:
            status, payload, hlen = exc.status_code, _error(exc.message), None
            extra_headers = exc.headers
            shed = isinstance(exc, ServerBusy)
        except Exception as exc:
            log.error("inference failed", extra={"model": model}, exc_info=exc)
            status, payload, hlen = 500, _error(f"internal error: {type(exc).__name__}"), None
        # Label only models the repository knows: URLs are client input, label values are not.
        label = model if self.plane.registry.knows(model) else UNKNOWN_MODEL
        self.metrics.inference_requests.labels(label, str(status)).inc()
        if status >= 400:
            self.metrics.inference_failures.labels(label, str(status)).inc()
        else:
            self.metrics.inference_latency.labels(label).observe(time.perf_counter() - started)
        headers = [(b"content-type", JSON if hlen is None else OCTET)]
        if hlen is not None:
            headers.append((b"inference-header-content-length", str(hlen).encode()))
        headers += [(k.lower().encode(), v.encode()) for k, v in extra_headers.items()]
        await _respond(send, status, payload, headers)
        return status, shed

    async def _read_body(self, receive: Receive) -> bytes | None:
        chunks: list[bytes] = []
        size = 0
        while True:
            message = await receive()
            if message["type"] == "http.disconnect":
                return None
            chunk = message.get("body", b"")
            size += len(chunk)
            if size > self.limit:
                raise PayloadTooLarge(
                    f"request body exceeds the limit of {self.limit} bytes (MAX_REQUEST_BYTES)"
                )
            chunks.append(chunk)
            if not message.get("more_body", False):
                return chunks[0] if len(chunks) == 1 else b"".join(chunks)


async def _respond(
    send: Send, status: int, body: bytes, headers: list[tuple[bytes, bytes]]
) -> None:
    headers.append((b"content-length", str(len(body)).encode()))
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body})


def _body_received(receive: Receive) -> bool:
    """Whether uvicorn already holds the whole request body, so reading it cannot wait.

    Small bodies usually arrive with the headers; then the body timeout's timer (created and
    cancelled per request) is pure cost. ``receive`` is uvicorn's ``RequestResponseCycle.receive``
    when no middleware wraps it; its ``more_body`` turns False once the body is complete. Any
    other ``receive`` gets the timeout.
    """
    cycle = getattr(receive, "__self__", None)
    return type(cycle) in _UVICORN_CYCLES and cycle.more_body is False  # type: ignore[union-attr]


def _error(message: str) -> bytes:
    return orjson.dumps({"error": message})


def _headers(scope: Scope) -> tuple[int | None, int | None, str | None]:
    """Content-Length and Inference-Header-Content-Length as integers, and Content-Encoding."""
    declared = header_length = encoding = None
    for key, value in scope["headers"]:
        if key == b"content-length" and value.isdigit():
            declared = int(value)
        elif key == b"content-encoding":
            encoding = value.decode("latin-1")
        elif key == b"inference-header-content-length":
            try:
                header_length = int(value)
            except ValueError:
                raise InvalidInput(
                    "Inference-Header-Content-Length must be an integer, "
                    f"got {value.decode('latin-1')!r}"
                ) from None
    return declared, header_length, encoding


def _operation(summary: str, with_version: bool) -> dict[str, Any]:
    params = [{"name": "model_name", "in": "path", "required": True, "schema": {"type": "string"}}]
    if with_version:
        params.append(
            {"name": "version", "in": "path", "required": True, "schema": {"type": "string"}}
        )
    error = {"content": {"application/json": {"schema": {"$ref": "#/components/schemas/Error"}}}}
    return {
        "post": {
            "summary": summary,
            "parameters": params,
            "requestBody": {
                "required": True,
                "content": {
                    "application/json": {"schema": {"type": "object", "required": ["inputs"]}},
                    "application/octet-stream": {"schema": {"type": "string", "format": "binary"}},
                },
            },
            "responses": {
                "200": {"description": "Inference response (JSON, or JSON + binary tensors)"},
                "400": {"description": "Invalid request", **error},
                "404": {"description": "Unknown model or version", **error},
                "408": {"description": "Body not received within REQUEST_BODY_TIMEOUT_S", **error},
                "413": {"description": "Body over MAX_REQUEST_BYTES", **error},
                "415": {"description": "Content-Encoding other than gzip/deflate", **error},
                "503": {"description": "Model not ready, or queue full", **error},
            },
        }
    }


def openapi_paths() -> dict[str, Any]:
    """OpenAPI entries for the routes this handler serves (FastAPI cannot see them)."""
    return {
        "/v2/models/{model_name}/infer": _operation("Inference", False),
        "/v2/models/{model_name}/versions/{version}/infer": _operation(
            "Inference on a version", True
        ),
    }
