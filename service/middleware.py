"""Pure ASGI middleware for access logs, HTTP metrics and the in-flight gauge.

Pure ASGI (not BaseHTTPMiddleware) so it adds microseconds, not a task per request.
"""

from __future__ import annotations

import time
from typing import Any

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from service import logs
from service.metrics import Metrics

CLIENT_CLOSED = 499


def route_label(path: str) -> str:
    """Low-cardinality route name for metrics (model names stay out of HTTP labels)."""
    if path.endswith("/infer"):
        return "infer"
    if path.startswith("/v2/repository"):
        return "repository"
    if path.startswith("/v2/models"):
        return "ready" if path.endswith("/ready") else "metadata"
    if path in ("/health", "/v2/health/live", "/v2/health/ready"):
        return "health"
    if path in ("/v2", "/metrics", "/docs", "/openapi.json"):
        return path.strip("/") or "root"
    return "other"


class ObservabilityMiddleware:
    """Counts, times and logs each HTTP request."""

    def __init__(self, app: ASGIApp, metrics: Metrics, access_log: bool = True) -> None:
        self.app = app
        self.metrics = metrics
        self.access_log = access_log

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        # No response at all means the client went away first: 499, as nginx logs it, so client
        # aborts do not count as server errors. An exception before a response is a 500.
        status = CLIENT_CLOSED
        self.metrics.in_flight.inc()

        async def send_with_status(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, send_with_status)
        except BaseException:
            if status == CLIENT_CLOSED:
                status = 500
            raise
        finally:
            self.metrics.in_flight.dec()
            path = scope["path"]
            method = scope["method"]
            self.metrics.http_requests.labels(method, route_label(path), str(status)).inc()
            if self.access_log:
                self._log(scope, method, path, status, started)

    @staticmethod
    def _log(scope: Scope, method: str, path: str, status: int, started: float) -> None:
        user_agent = ""
        for key, value in scope.get("headers", ()):
            if key == b"user-agent":
                user_agent = value.decode("latin-1")
                break
        client: Any = scope.get("client")
        logs.access(
            method,
            path,
            status,
            round((time.perf_counter() - started) * 1000, 3),
            user_agent,
            client[0] if client else None,
        )
