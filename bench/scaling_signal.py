"""How the candidate scaling signals track saturation: one service under rising concurrency.

The service (pinned to one CPU, EMF on, flushing every 4 s) is loaded by ``wrk`` (closed loop,
the other CPU) at 1, 2, 4 ... 128 connections; for each step it reports throughput and latency,
the server's CPU use, and what the service itself published: ``ConcurrentRequests``, ``QueueTime``
p50/p99 and the mean batch size, read back from its EMF records on stdout. The numbers in
docs/observability.md ("Scaling on the right signal") come from it.

    .venv/bin/python -m bench.scaling_signal [--seconds 16] [--connections 1,2,4,...]
"""

from __future__ import annotations

import argparse
import json
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any

from bench.models import write_mlp
from bench.payloads import make_bodies, reference_session
from bench.servers import service
from bench.wrk import run_wrk, write_script

INTERVAL_S = 4


def quantile(histogram: dict[str, Any], q: float) -> float:
    """A quantile of an EMF histogram value (Values/Counts)."""
    total, seen = sum(histogram["Counts"]), 0
    for value, count in zip(histogram["Values"], histogram["Counts"], strict=True):
        seen += count
        if seen >= q * total:
            return value
    return histogram["Values"][-1]


def emf_records(log: Path, since_ms: float, until_ms: float) -> list[dict[str, Any]]:
    records = []
    for line in log.read_text(errors="replace").splitlines():
        if '"_aws"' in line:
            doc = json.loads(line)
            if since_ms <= doc["_aws"]["Timestamp"] <= until_ms:
                records.append(doc)
    return records


def step(server: Any, script: Path, connections: int, seconds: float) -> dict[str, Any]:
    url = f"http://127.0.0.1:{server.port}/v2/models/mlp/infer"
    run_wrk(url, script, connections, 3, cpu=1)  # warm-up
    started_ms = time.time() * 1000
    cpu = server.cpu_seconds()
    result = run_wrk(url, script, connections, seconds, cpu=1)
    cpu = (server.cpu_seconds() - cpu) / result.seconds
    time.sleep(INTERVAL_S + 0.5)  # the last interval's records
    docs = emf_records(server.log, started_ms + INTERVAL_S * 1000, time.time() * 1000 - 4000)
    concurrency = [d["ConcurrentRequests"] for d in docs if "ConcurrentRequests" in d]
    queue = [d["QueueTime"] for d in docs if "QueueTime" in d]
    batch = [d["BatchSize"] for d in docs if "BatchSize" in d]

    def median_q(q: float) -> float | None:
        return round(statistics.median(quantile(h, q) for h in queue), 3) if queue else None

    return {
        "connections": connections,
        "req_s": result.requests_s,
        "p50_ms": result.p50_ms,
        "p99_ms": result.p99_ms,
        "server_cpu": round(cpu, 3),
        "concurrent_requests": round(statistics.mean(concurrency), 2) if concurrency else None,
        "queue_p50_ms": median_q(0.5),
        "queue_p99_ms": median_q(0.99),
        "mean_batch": round(sum(h["Sum"] for h in batch) / sum(h["Count"] for h in batch), 2)
        if batch
        else None,
        "errors": result.errors,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=16)
    parser.add_argument("--connections", default="1,2,4,8,16,32,64,128")
    args = parser.parse_args()
    folder = Path(tempfile.mkdtemp(prefix="bench-scaling-"))
    model = write_mlp(folder / "models")
    body = make_bodies(reference_session(model))["json1"]
    script = write_script(folder, "json1", body.write(folder), body.headers)
    server = service(folder / "models", folder / "service.log", cpu=0)
    server.env = {**server.env, "EMF_METRICS": "true", "EMF_INTERVAL_S": str(INTERVAL_S)}
    print(
        "| connections | req/s | p50 ms | p99 ms | server CPU | ConcurrentRequests | "
        "QueueTime p50 ms | QueueTime p99 ms | mean batch |"
    )
    print("| ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |")
    with server:
        for connections in (int(c) for c in args.connections.split(",")):
            row = step(server, script, connections, args.seconds)
            print(
                "| " + " | ".join(str(row[k]) for k in (
                    "connections", "req_s", "p50_ms", "p99_ms", "server_cpu",
                    "concurrent_requests", "queue_p50_ms", "queue_p99_ms", "mean_batch",
                )) + " |",
                flush=True,
            )  # fmt: skip


if __name__ == "__main__":
    main()
