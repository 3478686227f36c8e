"""The gRPC load generator: closed loop like wrk, ``connections`` calls in flight at all times.

No wrk exists for gRPC here (ghz and friends are not in the package registries this project
uses), so this is a small grpc.aio client: the ModelInfer request is serialized once (batch-1
MLP, raw tensors, as tritonclient sends them) and sent as bytes through a generic method, so the
client spends nothing on protobuf per call; the calls are spread over a few HTTP/2 connections.
It runs in its own process pinned to the client CPU (``python -m bench.grpc_load``) and prints
one JSON line. Being Python, it can saturate its CPU before the server does: the row reports the
server CPU share, and a share well below 1 says the client (or the machine) was the limit.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import subprocess
import sys
import time
from pathlib import Path

import grpc
import numpy as np

from bench.wrk import WrkResult

METHOD = "/inference.GRPCInferenceService/ModelInfer"
CHANNELS = 4


def infer_request(model: str, name: str, x: np.ndarray) -> bytes:
    """A serialized ModelInferRequest with ``x`` as raw (binary) input contents."""
    from tritonclient.grpc import service_pb2

    request = service_pb2.ModelInferRequest(model_name=model)
    request.inputs.add(name=name, datatype="FP32", shape=list(x.shape))
    request.raw_input_contents.append(np.ascontiguousarray(x, dtype="<f4").tobytes())
    return request.SerializeToString()


def output_of(response: bytes) -> np.ndarray:
    from tritonclient.grpc import service_pb2

    message = service_pb2.ModelInferResponse.FromString(response)
    shape = list(message.outputs[0].shape)
    return np.frombuffer(message.raw_output_contents[0], dtype="<f4").reshape(shape)


def check_answer(
    label: str, port: int, body: bytes, expected: np.ndarray, tolerance: float
) -> float:
    """Send ``body`` once; the output must match ``expected`` (raises otherwise)."""
    with grpc.insecure_channel(f"127.0.0.1:{port}") as channel:
        answer = channel.unary_unary(METHOD)(body, timeout=30)
    diff = float(np.max(np.abs(output_of(answer) - expected)))
    if not diff <= tolerance:
        raise RuntimeError(f"{label} over gRPC: max |diff| {diff} > {tolerance}")
    return diff


async def _load(port: int, body: bytes, connections: int, seconds: float) -> dict:
    options = [("grpc.use_local_subchannel_pool", 1)]  # one HTTP/2 connection per channel
    channels = [
        grpc.aio.insecure_channel(f"127.0.0.1:{port}", options=options) for _ in range(CHANNELS)
    ]
    calls = [ch.unary_unary(METHOD) for ch in channels]  # bytes in, bytes out
    latencies: list[float] = []
    errors = 0
    stop = time.perf_counter() + seconds

    async def worker(index: int) -> None:
        nonlocal errors
        call = calls[index % len(calls)]
        while time.perf_counter() < stop:
            started = time.perf_counter()
            try:
                await call(body, timeout=10)
            except grpc.aio.AioRpcError:
                errors += 1
                continue
            latencies.append(time.perf_counter() - started)

    began = time.perf_counter()
    await asyncio.gather(*(worker(i) for i in range(connections)))
    elapsed = time.perf_counter() - began
    for channel in channels:
        await channel.close()
    ordered = np.sort(np.array(latencies or [0.0])) * 1e3
    return {
        "requests": len(latencies),
        "seconds": elapsed,
        "requests_s": len(latencies) / elapsed,
        "p50_ms": float(np.percentile(ordered, 50)),
        "p90_ms": float(np.percentile(ordered, 90)),
        "p99_ms": float(np.percentile(ordered, 99)),
        "non_2xx": errors,
        "socket_errors": 0,
    }


def run_grpc_load(
    port: int, body_path: Path, connections: int, seconds: float, cpu: int
) -> WrkResult:
    """One run of ``seconds`` on CPU ``cpu``, in a process of its own."""
    argv = ["taskset", "-c", str(cpu), sys.executable, "-m", "bench.grpc_load", str(port),
            str(body_path), str(connections), str(max(1.0, seconds))]  # fmt: skip
    done = subprocess.run(argv, capture_output=True, text=True, timeout=seconds + 60, check=True)
    return WrkResult(**json.loads(done.stdout.strip().splitlines()[-1]))


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.grpc_load")
    parser.add_argument("port", type=int)
    parser.add_argument("body", type=Path, help="a serialized ModelInferRequest")
    parser.add_argument("connections", type=int)
    parser.add_argument("seconds", type=float)
    args = parser.parse_args(argv)
    result = asyncio.run(_load(args.port, args.body.read_bytes(), args.connections, args.seconds))
    print(json.dumps(result))


if __name__ == "__main__":
    main()
