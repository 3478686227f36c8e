"""Soak: tens of thousands of requests against one service process, RSS watched throughout.

``python -m bench.soak [--requests 50000] [--clients 4]`` starts ``python -m service`` on a free
loopback port with the benchmark MLP, warms it up, then sends a fixed mix of requests (JSON and
binary bodies, several batch sizes, plus requests the service must refuse with 400/404) from a
few keep-alive client threads. It prints progress with the process's resident set size read from
``/proc/<pid>/status`` (``VmRSS``) and ends with RSS at start (after warm-up) and at the end.

A leak shows as RSS that keeps climbing with the request count; allocator noise and ONNX Runtime's
arena settle during warm-up. ``ServiceProcess`` (the service as a child process, logs to a file)
is shared with ``bench.overload`` and the robustness tests.
"""

from __future__ import annotations

import argparse
import itertools
import json
import os
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Self

import httpx
import numpy as np

from bench.models import INPUT, LAYERS, NAME, write_mlp

REPO_ROOT = Path(__file__).resolve().parent.parent


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def rss_kib(pid: int) -> int:
    """Resident set size of ``pid`` in KiB, from ``/proc/<pid>/status`` (Linux only)."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    raise RuntimeError(f"no VmRSS line for pid {pid}")


@dataclass
class ServiceProcess:
    """``python -m service`` as a child process on 127.0.0.1, stdout/stderr to ``log_path``.

    Logs go to a file, not a pipe: under load the access log would fill a pipe nobody reads and
    block the server. ``preexec`` runs in the child before exec (privilege dropping in tests).
    """

    model_dir: Path
    log_path: Path
    env: dict[str, str] = field(default_factory=dict)
    preexec: Callable[[], None] | None = None
    port: int = field(default_factory=free_port)
    proc: subprocess.Popen[bytes] | None = None

    @property
    def base(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def pid(self) -> int:
        assert self.proc is not None, "not started"
        return self.proc.pid

    def start(self) -> Self:
        env = os.environ | {
            "MODEL_POLL_INTERVAL_S": "0",
            "EXECUTION_PROVIDER": "cpu",
            "PYTHONUNBUFFERED": "1",
            "GRPC_PORT": "0",  # HTTP-only runs: never collide with a service on 8001
        }
        with open(self.log_path, "ab") as log:
            self.proc = subprocess.Popen(
                [
                    sys.executable,
                    "-m",
                    "service",
                    "--host",
                    "127.0.0.1",
                    "--port",
                    str(self.port),
                    "--model-dir",
                    str(self.model_dir),
                ],
                env=env | self.env,
                stdout=log,
                stderr=subprocess.STDOUT,
                cwd=REPO_ROOT,
                preexec_fn=self.preexec,
            )
        return self

    def wait_for(self, path: str, status: int = 200, timeout: float = 60.0) -> None:
        """Poll ``path`` until it answers ``status``; fail early if the process died."""
        deadline = time.monotonic() + timeout
        while True:
            assert self.proc is not None
            if self.proc.poll() is not None:
                raise RuntimeError(f"service exited with {self.proc.returncode}:\n{self.tail()}")
            try:
                if httpx.get(self.base + path, timeout=2).status_code == status:
                    return
            except httpx.TransportError:
                pass
            if time.monotonic() > deadline:
                raise TimeoutError(f"{path} never answered {status}:\n{self.tail()}")
            time.sleep(0.05)

    def wait_ready(self, timeout: float = 60.0) -> Self:
        self.wait_for("/health", 200, timeout)
        return self

    def terminate(self, timeout: float = 60.0) -> int:
        """SIGTERM, then wait; returns the exit status."""
        assert self.proc is not None
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
        return self.proc.wait(timeout=timeout)

    def kill(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(timeout=10)

    def log_text(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""

    def tail(self, chars: int = 3000) -> str:
        return self.log_text()[-chars:]

    def records(self) -> list[dict[str, Any]]:
        """The JSON log records written so far (non-JSON lines, e.g. a raw traceback, skipped)."""
        out = []
        for line in self.log_text().splitlines():
            try:
                record = json.loads(line)
            except ValueError:
                continue
            if isinstance(record, dict):
                out.append(record)
        return out

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.kill()


# -- the request mix -------------------------------------------------------------------------
@dataclass(frozen=True)
class Probe:
    """One kind of request in the mix and the status the service must answer it with."""

    name: str
    path: str
    body: bytes
    headers: dict[str, str]
    expect: int


def json_request(rows: int, seed: int = 0) -> bytes:
    data = np.random.default_rng(seed).standard_normal((rows, LAYERS[0])).astype(np.float32)
    doc = {
        "id": f"soak-{rows}",
        "inputs": [
            {
                "name": INPUT,
                "datatype": "FP32",
                "shape": [rows, LAYERS[0]],
                "data": data.reshape(-1).tolist(),
            }
        ],
    }
    return json.dumps(doc).encode()


def binary_request(rows: int, seed: int = 0) -> tuple[bytes, dict[str, str]]:
    """A binary-extension body (JSON header + raw FP32 rows) and its header-length header."""
    data = np.random.default_rng(seed).standard_normal((rows, LAYERS[0])).astype(np.float32)
    tensor = {
        "name": INPUT,
        "datatype": "FP32",
        "shape": [rows, LAYERS[0]],
        "parameters": {"binary_data_size": data.nbytes},
    }
    doc = {"inputs": [tensor], "parameters": {"binary_data_output": True}}
    header = json.dumps(doc).encode()
    return header + data.tobytes(), {"Inference-Header-Content-Length": str(len(header))}


def request_mix() -> list[Probe]:
    """What a soak cycles through: mostly good traffic, some requests that must be refused."""
    infer = f"/v2/models/{NAME}/infer"
    json_h = {"Content-Type": "application/json"}
    binary_4, binary_headers = binary_request(4, seed=1)
    wrong_shape = json.dumps(
        {"inputs": [{"name": INPUT, "datatype": "FP32", "shape": [1, 3], "data": [1, 2, 3]}]}
    ).encode()
    return [
        Probe("json-1", infer, json_request(1), json_h, 200),
        Probe("binary-4", infer, binary_4, binary_headers, 200),
        Probe("json-8", infer, json_request(8, seed=2), json_h, 200),
        Probe("json-1", infer, json_request(1, seed=3), json_h, 200),
        Probe("binary-4", infer, binary_4, binary_headers, 200),
        Probe("bad-shape", infer, wrong_shape, json_h, 400),
        Probe("bad-json", infer, b'{"inputs": [', json_h, 400),
        Probe("no-model", "/v2/models/missing/infer", json_request(1), json_h, 404),
    ]


# -- the soak --------------------------------------------------------------------------------
@dataclass
class SoakResult:
    """What a soak measured; RSS values in KiB."""

    requests: int
    seconds: float
    statuses: Counter[str]
    unexpected: Counter[str]
    rss_start_kib: int
    rss_end_kib: int
    rss_peak_kib: int
    samples: list[tuple[int, int]]  # (requests done, RSS KiB)

    @property
    def growth_kib(self) -> int:
        return self.rss_end_kib - self.rss_start_kib

    def summary(self) -> dict[str, Any]:
        return {
            "requests": self.requests,
            "seconds": round(self.seconds, 1),
            "requests_per_s": round(self.requests / self.seconds, 1) if self.seconds else 0,
            "statuses": dict(self.statuses),
            "unexpected": dict(self.unexpected),
            "rss_start_mib": round(self.rss_start_kib / 1024, 1),
            "rss_end_mib": round(self.rss_end_kib / 1024, 1),
            "rss_peak_mib": round(self.rss_peak_kib / 1024, 1),
            "rss_growth_mib": round(self.growth_kib / 1024, 1),
        }


def _send_all(
    base: str, probes: list[Probe], count: int, clients: int, on_done: Callable[[int], None]
) -> tuple[Counter[str], Counter[str]]:
    """Send ``count`` requests from ``clients`` keep-alive threads; count outcomes."""
    statuses: Counter[str] = Counter()
    unexpected: Counter[str] = Counter()
    lock = threading.Lock()
    tickets: Iterator[int] = itertools.count()

    def worker() -> None:
        with httpx.Client(base_url=base, timeout=30) as http:
            while (n := next(tickets)) < count:
                probe = probes[n % len(probes)]
                try:
                    status = str(
                        http.post(probe.path, content=probe.body, headers=probe.headers).status_code
                    )
                except httpx.HTTPError as exc:
                    status = type(exc).__name__
                with lock:
                    statuses[status] += 1
                    if status != str(probe.expect):
                        unexpected[f"{probe.name}->{status}"] += 1
                on_done(n + 1)

    threads = [threading.Thread(target=worker, daemon=True) for _ in range(clients)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return statuses, unexpected


def soak(
    base: str,
    pid: int,
    requests: int,
    *,
    warmup: int = 1000,
    clients: int = 4,
    samples: int = 20,
    progress: Callable[[str], None] | None = None,
) -> SoakResult:
    """Warm up, read RSS, send ``requests``, read RSS again (sampling it along the way)."""
    probes = request_mix()
    _send_all(base, probes, warmup, clients, lambda _: None)
    start_rss = rss_kib(pid)
    trace: list[tuple[int, int]] = [(0, start_rss)]
    every = max(1, requests // samples)
    lock = threading.Lock()
    started = time.perf_counter()

    def on_done(done: int) -> None:
        if done % every == 0 or done == requests:
            rss = rss_kib(pid)
            with lock:
                trace.append((done, rss))
            if progress is not None:
                rate = done / (time.perf_counter() - started)
                mib = rss / 1024
                progress(f"{done:>7}/{requests} requests  {rate:7.0f} req/s  RSS {mib:7.1f} MiB")

    statuses, unexpected = _send_all(base, probes, requests, clients, on_done)
    seconds = time.perf_counter() - started
    end_rss = rss_kib(pid)
    trace.sort()
    return SoakResult(
        requests=requests,
        seconds=seconds,
        statuses=statuses,
        unexpected=unexpected,
        rss_start_kib=start_rss,
        rss_end_kib=end_rss,
        rss_peak_kib=max(r for _, r in [*trace, (requests, end_rss)]),
        samples=trace,
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.soak", description=__doc__)
    parser.add_argument("--requests", type=int, default=50_000, help="default 50000")
    parser.add_argument("--warmup", type=int, default=2000, help="default 2000")
    parser.add_argument("--clients", type=int, default=4, help="keep-alive client threads")
    parser.add_argument("--json", type=Path, help="also write the summary here")
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="soak-") as tmp:
        root = Path(tmp)
        write_mlp(root / "models")
        service = ServiceProcess(root / "models", root / "service.log")
        with service:
            service.wait_ready()
            print(f"service pid {service.pid} on {service.base}; RSS {rss_kib(service.pid)} KiB")
            result = soak(
                service.base,
                service.pid,
                args.requests,
                warmup=args.warmup,
                clients=args.clients,
                progress=print,
            )
            code = service.terminate()
        summary = result.summary() | {"exit_code": code}
    print(json.dumps(summary, indent=2))
    if args.json:
        args.json.write_text(json.dumps(summary, indent=2) + "\n")
    return 0 if not result.unexpected and code == 0 else 1


if __name__ == "__main__":
    sys.exit(main())
