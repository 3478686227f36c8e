"""``python -m service``: run the inference service with uvicorn.

Options default to the environment (MODEL_DIR, HOST, PORT, ...) so the same command works on a
laptop and as a container entrypoint. uvicorn handles SIGTERM: it stops accepting, lets in-flight
requests finish for up to GRACEFUL_SHUTDOWN_S, then exits with status 0 (ECS sends SIGKILL after
stopTimeout, so keep GRACEFUL_SHUTDOWN_S below it).
"""

from __future__ import annotations

import argparse
import logging
import math
import signal
from pathlib import Path

import uvicorn

from service.app import create_app
from service.http_protocol import http_protocol
from service.logs import configure_logging
from service.settings import Settings


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    defaults = Settings()
    parser = argparse.ArgumentParser(prog="python -m service", description=__doc__)
    parser.add_argument("--host", default=defaults.host, help=f"default {defaults.host} (HOST)")
    parser.add_argument(
        "--port", type=int, default=defaults.port, help=f"default {defaults.port} (PORT)"
    )
    parser.add_argument(
        "--grpc-port",
        type=int,
        default=defaults.grpc_port,
        help=f"gRPC port, 0 turns gRPC off; default {defaults.grpc_port} (GRPC_PORT)",
    )
    parser.add_argument(
        "--model-dir",
        type=Path,
        default=defaults.model_dir,
        help=f"model repository root, default {defaults.model_dir} (MODEL_DIR)",
    )
    return parser.parse_args(argv)


class DrainingServer(uvicorn.Server):
    """uvicorn, plus: the gRPC server starts draining the moment HTTP does (not after it)."""

    async def shutdown(self, sockets: list | None = None) -> None:
        grpc_server = getattr(self.config.app.state, "grpc", None)
        if grpc_server is not None:
            grpc_server.begin_shutdown()
        await super().shutdown(sockets)


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    settings = Settings(
        host=args.host, port=args.port, model_dir=args.model_dir, grpc_port=args.grpc_port
    )
    configure_logging(settings.log_level)
    logging.getLogger("service").info(
        "configuration",
        extra={k: str(v) for k, v in settings.model_dump().items()},
    )
    config = uvicorn.Config(
        create_app(settings),
        host=settings.host,
        port=settings.port,
        loop="uvloop",
        http=http_protocol(settings),
        log_config=None,
        access_log=False,
        timeout_graceful_shutdown=math.ceil(settings.graceful_shutdown_s),
        timeout_keep_alive=settings.keep_alive_timeout_s,
        server_header=False,
    )
    # uvicorn re-raises the SIGTERM it handled once shutdown is done, under the handler that was
    # in place before it started; ignoring SIGTERM here makes a graceful stop exit 0, so ECS and
    # the "exit code anything-but 0" alert rule do not report every deployment as a failure.
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    DrainingServer(config).run()


if __name__ == "__main__":
    main()
