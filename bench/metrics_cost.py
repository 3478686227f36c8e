"""What the CloudWatch metrics path (service/emf.py) costs per request, EMF on vs off.

In process, so a busy machine does not drown a few microseconds: two apps on the bench's MLP
(one with ``EMF_METRICS=false``), driven through the real ASGI entry point (access-log middleware,
infer route, data plane, batching, ONNX Runtime) with batch-1 JSON bodies, 16 at a time;
interleaved rounds, CPU time of the process per request, medians. Plus the hooks alone.

    .venv/bin/python -m bench.metrics_cost [--rounds 12] [--requests 4000]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any

from bench.models import write_mlp
from bench.payloads import make_bodies, reference_session
from service.app import create_app
from service.emf import EmfMetrics
from service.settings import Settings


def hooks_us(n: int = 200_000) -> float:
    """CPU µs of the per-request hooks: request start/finish and one batch of one."""
    emf = EmfMetrics("bench")
    started = time.process_time()
    for _ in range(n):
        emf.request_started()
        emf.request_finished("m", 200, 0.004, False)
        emf.batch("m", 1, (0.0002,), 0.001, 1)
    return (time.process_time() - started) / n * 1e6


async def _drive(app: Any, body: bytes, n: int, concurrency: int = 16) -> float:
    scope = {
        "type": "http",
        "method": "POST",
        "path": "/v2/models/mlp/infer",
        "headers": [(b"content-type", b"application/json")],
        "client": ("127.0.0.1", 1),
    }

    async def one() -> None:
        statuses: list[int] = []

        async def receive() -> dict:
            return {"type": "http.request", "body": body, "more_body": False}

        async def send(message: dict) -> None:
            if message["type"] == "http.response.start":
                statuses.append(message["status"])

        await app(scope, receive, send)
        if statuses != [200]:
            raise RuntimeError(f"infer answered {statuses}")

    started = time.process_time()
    for _ in range(n // concurrency):
        await asyncio.gather(*(one() for _ in range(concurrency)))
    return (time.process_time() - started) / n * 1e6


async def measure(rounds: int, requests: int) -> dict[str, Any]:
    model_dir = Path(tempfile.mkdtemp(prefix="bench-emf-")) / "models"
    body = make_bodies(reference_session(write_mlp(model_dir)))["json1"].data
    apps: dict[bool, Any] = {}
    contexts = []
    for on in (True, False):
        settings = Settings(
            model_dir=model_dir,
            model_poll_interval_s=0,
            execution_provider="cpu",
            access_log=False,
            emf_metrics=on,
            ort_intra_op_threads=1,
            log_level="WARNING",
        )
        app = create_app(settings)
        context = app.router.lifespan_context(app)
        await context.__aenter__()
        contexts.append(context)
        while not app.state.plane.registry.initial_load_done:
            await asyncio.sleep(0.05)
        apps[on] = app
    per_request: dict[bool, list[float]] = {True: [], False: []}
    for r in range(rounds):
        for on in (True, False) if r % 2 == 0 else (False, True):
            per_request[on].append(await _drive(apps[on], body, requests))
    on, off = statistics.median(per_request[True]), statistics.median(per_request[False])
    return {
        "hooks_us": round(hooks_us(), 2),
        "emf_on_us": round(on, 1),
        "emf_off_us": round(off, 1),
        "cost_us": round(on - off, 1),
        "cost_percent": round(100 * (on - off) / off, 1),
        "rounds": rounds,
        "requests_per_round": requests,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=12)
    parser.add_argument("--requests", type=int, default=4000)
    args = parser.parse_args()
    result = asyncio.run(measure(args.rounds, args.requests))
    print(
        f"hooks {result['hooks_us']} µs; CPU per request EMF on {result['emf_on_us']} µs, "
        f"off {result['emf_off_us']} µs: {result['cost_us']:+} µs ({result['cost_percent']:+} %)",
        flush=True,
    )
    os._exit(0)  # batch worker threads and loaded sessions need no orderly teardown


if __name__ == "__main__":
    main()
