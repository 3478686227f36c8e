"""The standard ``grpc.health.v1`` service, SERVING only while the data plane is ready.

The load balancer's gRPC health check calls ``/grpc.health.v1.Health/Check`` and counts status
``0`` (OK with SERVING) as healthy. Readiness is re-read on every Check (cheap: no disk access)
and polled for ``Watch`` streams; after shutdown begins every service reads NOT_SERVING.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable
from typing import Any

from grpc_health.v1 import health_pb2
from grpc_health.v1._async import HealthServicer

from service.grpc.protos import SERVICE_NAME

SERVING = health_pb2.HealthCheckResponse.SERVING
NOT_SERVING = health_pb2.HealthCheckResponse.NOT_SERVING
# "" is the server as a whole (what the ALB asks about when its request names no service).
SERVICES = ("", SERVICE_NAME)


class ReadinessHealth(HealthServicer):
    """Health servicer whose status follows ``ready()``."""

    def __init__(self, ready: Callable[[], bool], poll_s: float = 1.0) -> None:
        super().__init__()
        self._ready = ready
        self._poll_s = poll_s
        self._task: asyncio.Task | None = None
        self._server_status = {service: NOT_SERVING for service in SERVICES}

    async def refresh(self) -> None:
        status = SERVING if self._ready() else NOT_SERVING
        for service in SERVICES:
            if self._server_status.get(service) != status:
                await self.set(service, status)

    async def Check(self, request: Any, context: Any) -> Any:
        await self.refresh()
        return await super().Check(request, context)

    def start(self) -> None:
        self._task = asyncio.create_task(self._follow())

    async def _follow(self) -> None:
        while True:
            await self.refresh()
            await asyncio.sleep(self._poll_s)

    async def shutdown(self) -> None:
        """NOT_SERVING from now on (the load balancer stops sending new calls)."""
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None
        await self.enter_graceful_shutdown()
