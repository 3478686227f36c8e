"""Overload: what a bounded queue does at twice the service's capacity.

``python -m bench.overload [--queue 16] [--rows 256] [--factor 2] [--seconds 15]`` starts
``python -m service`` on loopback with the benchmark MLP and a per-model ``config.json`` that
bounds the queue (``dynamic_batching.max_queue_size``), then:

1. finds the capacity: a closed loop (``--concurrency`` clients, each sending its next request
   when the last one is answered) for ``--seconds``; capacity = answered 200s per second;
2. drives an open loop at ``--factor`` x capacity: request *i* leaves at ``t0 + i / rate``
   whatever happened to the earlier ones (a fixed arrival schedule, as real users arrive),
   bounded by ``--seconds`` and ``--max-requests``. Latency counts from the scheduled send time,
   so time spent waiting for a free client connection is not hidden (no coordinated omission).

It reports accepted p50/p99/max, the rejected fraction, how fast rejections came back (p50/p99)
and any other outcome (another status or a transport error), which should be none.
The open-loop client is also used by ``tests/robustness/test_overload.py``.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import sys
import tempfile
import time
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiohttp
import httpx
import numpy as np

from bench.models import NAME, write_mlp
from bench.soak import ServiceProcess, binary_request


@dataclass(frozen=True, slots=True)
class Outcome:
    """One request of a run: when it was due, sent and answered, and how."""

    due: float
    sent: float
    done: float
    status: int | None  # None: transport error or client timeout
    error: str | None = None
    retry_after: str | None = None

    @property
    def latency(self) -> float:
        """Seconds from the scheduled send time to the answer."""
        return self.done - self.due


@dataclass(frozen=True, slots=True)
class Target:
    """What to send: one infer request, sent again and again."""

    url: str
    body: bytes
    headers: dict[str, str]


def mlp_target(base: str, rows: int) -> Target:
    body, headers = binary_request(rows)
    return Target(f"{base}/v2/models/{NAME}/infer", body, headers)


async def _one(http: aiohttp.ClientSession, target: Target, due: float) -> Outcome:
    sent = time.perf_counter()
    try:
        async with http.post(target.url, data=target.body, headers=target.headers) as response:
            await response.read()
            return Outcome(
                due,
                sent,
                time.perf_counter(),
                response.status,
                retry_after=response.headers.get("Retry-After"),
            )
    except (aiohttp.ClientError, TimeoutError) as exc:
        return Outcome(due, sent, time.perf_counter(), None, error=type(exc).__name__)


def _session(connections: int, timeout_s: float) -> aiohttp.ClientSession:
    return aiohttp.ClientSession(
        connector=aiohttp.TCPConnector(limit=connections, force_close=False),
        timeout=aiohttp.ClientTimeout(total=timeout_s),
    )


async def closed_loop(
    target: Target, concurrency: int, seconds: float, timeout_s: float = 30.0
) -> list[Outcome]:
    """``concurrency`` clients, each sending its next request as soon as it has an answer."""
    outcomes: list[Outcome] = []
    stop = time.perf_counter() + seconds

    async def client(http: aiohttp.ClientSession) -> None:
        while time.perf_counter() < stop:
            outcomes.append(await _one(http, target, time.perf_counter()))

    async with _session(concurrency, timeout_s) as http:
        await asyncio.gather(*(client(http) for _ in range(concurrency)))
    return outcomes


async def open_loop(
    target: Target,
    rate: float,
    seconds: float,
    *,
    max_requests: int = 100_000,
    connections: int = 512,
    timeout_s: float = 30.0,
) -> list[Outcome]:
    """Send at a fixed ``rate`` (requests/s) for ``seconds``, never waiting for answers."""
    count = min(max_requests, max(1, int(rate * seconds)))
    tasks: list[asyncio.Task[Outcome]] = []
    async with _session(connections, timeout_s) as http:
        start = time.perf_counter()
        for i in range(count):
            due = start + i / rate
            delay = due - time.perf_counter()
            if delay > 0:
                await asyncio.sleep(delay)
            tasks.append(asyncio.create_task(_one(http, target, due)))
        return list(await asyncio.gather(*tasks))


def percentile(values: list[float], q: float) -> float | None:
    return float(np.percentile(values, q)) if values else None


def summarize(outcomes: list[Outcome], seconds: float | None = None) -> dict[str, Any]:
    """Counts and latency percentiles (milliseconds) of accepted (200) and rejected (503)."""
    accepted = [o.latency for o in outcomes if o.status == 200]
    rejected = [o.latency for o in outcomes if o.status == 503]
    other = Counter(str(o.status or o.error) for o in outcomes if o.status not in (200, 503))

    def ms(values: list[float], q: float) -> float | None:
        p = percentile(values, q)
        return None if p is None else round(p * 1000, 1)

    span = seconds or (max(o.done for o in outcomes) - min(o.due for o in outcomes))
    return {
        "requests": len(outcomes),
        "accepted": len(accepted),
        "rejected": len(rejected),
        "rejected_fraction": round(len(rejected) / len(outcomes), 3) if outcomes else 0.0,
        "rejected_with_retry_after": sum(
            1 for o in outcomes if o.status == 503 and o.retry_after is not None
        ),
        "other": dict(other),
        "accepted_per_s": round(len(accepted) / span, 1) if span else 0.0,
        "accepted_ms": {"p50": ms(accepted, 50), "p99": ms(accepted, 99), "max": ms(accepted, 100)},
        "rejected_ms": {"p50": ms(rejected, 50), "p99": ms(rejected, 99), "max": ms(rejected, 100)},
        "send_lag_ms_p99": ms([o.sent - o.due for o in outcomes], 99),
    }


_SERIES = {
    "batches": "inference_execution_duration_seconds_count",
    "busy_s": "inference_execution_duration_seconds_sum",
    "rows": "inference_batch_size_sum",
    "queued": "inference_queue_duration_seconds_count",
    "queue_s": "inference_queue_duration_seconds_sum",
}


def model_counters(base: str, model: str = NAME) -> dict[str, float]:
    """The batching counters of ``model`` from ``/metrics`` (sums and counts since start)."""
    text = httpx.get(f"{base}/metrics", timeout=30).text
    values = dict.fromkeys(_SERIES, 0.0)
    for key, series in _SERIES.items():
        prefix = f'{series}{{model="{model}"}} '
        for line in text.splitlines():
            if line.startswith(prefix):
                values[key] = float(line[len(prefix) :])
    return values


def model_activity(before: dict[str, float], after: dict[str, float], seconds: float) -> dict:
    """How busy the model was between two scrapes: a starved model shows a low busy fraction."""
    d = {k: after[k] - before[k] for k in _SERIES}
    return {
        "batches": int(d["batches"]),
        "rows_per_batch": round(d["rows"] / d["batches"], 1) if d["batches"] else 0.0,
        "busy_fraction": round(d["busy_s"] / seconds, 2) if seconds else 0.0,
        "mean_queue_ms": round(1000 * d["queue_s"] / d["queued"], 1) if d["queued"] else 0.0,
    }


def write_repository(root: Path, queue: int, max_batch: int) -> Path:
    """The MLP with a bounded queue, configured the way a user would (``config.json``)."""
    write_mlp(root)
    (root / NAME / "config.json").write_text(
        json.dumps({"max_batch_size": max_batch, "dynamic_batching": {"max_queue_size": queue}})
    )
    return root


def _cpus(text: str) -> set[int]:
    """``0``, ``0,2`` or ``0-3`` as a CPU set."""
    cpus: set[int] = set()
    for part in text.split(","):
        low, _, high = part.partition("-")
        cpus.update(range(int(low), int(high or low) + 1))
    return cpus


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.overload", description=__doc__)
    parser.add_argument("--queue", type=int, default=16, help="max_queue_size (default 16)")
    parser.add_argument("--max-batch", type=int, default=1024, help="max_batch_size in rows")
    parser.add_argument("--rows", type=int, default=256, help="rows per request (default 256)")
    parser.add_argument("--concurrency", type=int, default=16, help="closed-loop clients")
    parser.add_argument("--factor", type=float, default=2.0, help="open-loop rate / capacity")
    parser.add_argument("--seconds", type=float, default=15.0, help="length of each phase")
    parser.add_argument("--max-requests", type=int, default=60_000, help="open-loop cap")
    parser.add_argument("--connections", type=int, default=512, help="open-loop client pool")
    parser.add_argument("--server-cpus", type=_cpus, help="pin the service, e.g. 0 or 0-1")
    parser.add_argument("--client-cpus", type=_cpus, help="pin this client, e.g. 1")
    parser.add_argument("--json", type=Path, help="also write the results here")
    args = parser.parse_args(argv)
    if args.client_cpus:
        os.sched_setaffinity(0, args.client_cpus)
    server_cpus = args.server_cpus
    pin = (lambda: os.sched_setaffinity(0, server_cpus)) if server_cpus else None

    with tempfile.TemporaryDirectory(prefix="overload-") as tmp:
        root = Path(tmp)
        models = write_repository(root / "models", args.queue, args.max_batch)
        with ServiceProcess(models, root / "service.log", preexec=pin) as service:
            service.wait_ready()
            target = mlp_target(service.base, args.rows)
            asyncio.run(closed_loop(target, args.concurrency, 2.0))  # warm-up
            before = model_counters(service.base)
            closed = asyncio.run(closed_loop(target, args.concurrency, args.seconds))
            after_closed = model_counters(service.base)
            capacity = sum(1 for o in closed if o.status == 200) / args.seconds
            rate = capacity * args.factor
            print(
                f"capacity {capacity:.0f} req/s (closed loop, {args.concurrency} clients); "
                f"open loop at {rate:.0f} req/s for {args.seconds:.0f} s"
            )
            opened = asyncio.run(
                open_loop(
                    target,
                    rate,
                    args.seconds,
                    max_requests=args.max_requests,
                    connections=args.connections,
                )
            )
            open_span = max(o.done for o in opened) - min(o.due for o in opened)
            after_open = model_counters(service.base)
            code = service.terminate()
    result = {
        "setup": vars(args)
        | {
            "json": None,
            "server_cpus": sorted(server_cpus or os.sched_getaffinity(0)),
            "client_cpus": sorted(os.sched_getaffinity(0)),
        },
        "capacity_per_s": round(capacity, 1),
        "closed_loop": summarize(closed, args.seconds),
        "closed_loop_model": model_activity(before, after_closed, args.seconds),
        "open_loop_rate_per_s": round(rate, 1),
        "open_loop": summarize(opened),
        "open_loop_model": model_activity(after_closed, after_open, open_span),
        "exit_code": code,
    }
    print(json.dumps(result, indent=2))
    if args.json:
        args.json.write_text(json.dumps(result, indent=2) + "\n")
    return 0 if not result["open_loop"]["other"] and code == 0 else 1


if __name__ == "__main__":
    sys.exit(main())
