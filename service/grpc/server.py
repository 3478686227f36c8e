"""The gRPC server: started and stopped with the HTTP app, on the same event loop.

Same loop because the batcher hands results back to the loop that submitted the request; one
process, one registry, one batcher for both transports. Message limits follow MAX_REQUEST_BYTES
(grpcio's own default would refuse anything over 4 MiB). ``SO_REUSEPORT`` is off so that a port
already in use fails the start instead of silently sharing the port with another process.
"""

from __future__ import annotations

import asyncio
import logging

import grpc
from grpc_health.v1 import health_pb2_grpc

from service.dataplane import DataPlane
from service.grpc.health import ReadinessHealth
from service.grpc.servicer import InferenceServicer
from service.metrics import Metrics

log = logging.getLogger("service.grpc")

# Room above MAX_REQUEST_BYTES for the protobuf framing, so that requests just over the limit
# reach the servicer and get the HTTP API's message; far bigger ones are refused by grpcio itself
# (RESOURCE_EXHAUSTED too, in its words).
FRAMING_HEADROOM = 1024 * 1024


class GrpcServer:
    """``inference.GRPCInferenceService`` + ``grpc.health.v1.Health`` on one port."""

    def __init__(
        self,
        plane: DataPlane,
        metrics: Metrics,
        *,
        host: str,
        port: int,
        max_request_bytes: int,
        access_log: bool = True,
        grace_s: float = 25.0,
    ) -> None:
        self.plane = plane
        self.host = host
        self.requested_port = port
        self.grace_s = grace_s
        self.limit = max_request_bytes
        self.servicer = InferenceServicer(
            plane, metrics, max_request_bytes=max_request_bytes, access_log=access_log
        )
        self.health = ReadinessHealth(plane.ready)
        self.port: int | None = None
        self._server: grpc.aio.Server | None = None
        self._stopping: asyncio.Task | None = None

    def options(self) -> list[tuple[str, int]]:
        return [
            ("grpc.max_receive_message_length", self.limit + FRAMING_HEADROOM),
            ("grpc.max_send_message_length", -1),
            ("grpc.so_reuseport", 0),
        ]

    async def start(self) -> int:
        """Bind and serve; returns the port (raises if it cannot be bound)."""
        server = grpc.aio.server(options=self.options())
        server.add_generic_rpc_handlers((self.servicer.generic_handler(),))
        health_pb2_grpc.add_HealthServicer_to_server(self.health, server)
        address = f"{self.host}:{self.requested_port}"
        try:
            port = server.add_insecure_port(address)
        except RuntimeError as exc:
            raise RuntimeError(f"gRPC cannot listen on {address} (GRPC_PORT): {exc}") from None
        await server.start()
        self._server, self.port = server, port
        self.health.start()
        log.info("gRPC listening", extra={"address": f"{self.host}:{port}"})
        return port

    def begin_shutdown(self) -> None:
        """Stop taking calls and drain in-flight ones (up to ``grace_s``); returns at once."""
        if self._stopping is None and self._server is not None:
            self._stopping = asyncio.create_task(self._stop(self._server))

    async def _stop(self, server: grpc.aio.Server) -> None:
        await self.health.shutdown()
        await server.stop(self.grace_s)
        log.info("gRPC stopped")

    async def stop(self) -> None:
        """Drain and stop (starts the drain if ``begin_shutdown`` has not)."""
        self.begin_shutdown()
        if self._stopping is not None:
            await self._stopping
