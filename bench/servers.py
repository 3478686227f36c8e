"""Start and stop the servers under test: each one process, in its own process group, on one CPU.

``Server`` is a context manager: it picks free ports, starts the command under
``taskset -c CPU``, waits for ``GET /v2/health/ready`` to answer 200 and, on the way out (also
after an error or Ctrl-C), sends SIGTERM to the whole process group, then SIGKILL if it lingers.
The server's output goes to a log file whose tail is shown when it fails to start.
"""

from __future__ import annotations

import contextlib
import http.client
import json
import os
import signal
import socket
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from types import TracebackType

from bench.models import NAME

REPO = Path(__file__).resolve().parent.parent
BENCH = REPO / "bench"
MLSERVER_VENV = BENCH / ".venv-mlserver"
MLSERVER_VERSION = "1.7.1"


class ServerFailed(RuntimeError):
    """A server did not start, or died."""


def free_ports(count: int) -> list[int]:
    """Ports nobody listens on now (all held open together, so they differ)."""
    sockets = [socket.socket() for _ in range(count)]
    try:
        for s in sockets:
            s.bind(("127.0.0.1", 0))
        return [s.getsockname()[1] for s in sockets]
    finally:
        for s in sockets:
            s.close()


def free_port() -> int:
    return free_ports(1)[0]


@dataclass
class Server:
    """One server process: ``command`` may hold ``{port}``, formatted with a fresh free port."""

    name: str
    command: list[str]
    env: dict[str, str]
    log: Path
    cpu: int
    cwd: Path = REPO
    start_timeout_s: float = 90.0
    port: int = 0
    grpc_port: int = 0  # this service's gRPC port (a free one, so instances never collide)
    process: subprocess.Popen | None = field(default=None, repr=False)

    def __enter__(self) -> Server:
        self.port = self.port or free_port()
        argv = ["taskset", "-c", str(self.cpu), *(a.format(port=self.port) for a in self.command)]
        env = {**os.environ, **{k: v.format(port=self.port) for k, v in self.env.items()}}
        with self.log.open("wb") as out:
            self.process = subprocess.Popen(
                argv,
                cwd=self.cwd,
                env=env,
                stdout=out,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                start_new_session=True,
            )
        try:
            self._wait_ready()
        except BaseException:
            self.stop()
            raise
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    def _wait_ready(self) -> None:
        deadline = time.monotonic() + self.start_timeout_s
        while time.monotonic() < deadline:
            self.assert_alive()
            if self.get("/v2/health/ready")[0] == 200:
                return
            time.sleep(0.2)
        raise ServerFailed(
            f"{self.name} was not ready within {self.start_timeout_s:.0f} s\n{self.log_tail()}"
        )

    def get(self, path: str) -> tuple[int, bytes]:
        conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=5)
        try:
            conn.request("GET", path)
            response = conn.getresponse()
            return response.status, response.read()
        except OSError:
            return 0, b""
        finally:
            conn.close()

    def assert_alive(self) -> None:
        if self.process is None or self.process.poll() is not None:
            code = None if self.process is None else self.process.returncode
            raise ServerFailed(f"{self.name} exited (status {code})\n{self.log_tail()}")

    def log_tail(self, lines: int = 30) -> str:
        try:
            text = self.log.read_text(errors="replace").splitlines()
        except OSError:
            return ""
        return "\n".join(f"  | {line}" for line in text[-lines:])

    def cpu_seconds(self) -> float:
        """User + system CPU time used so far by every process of the server's group."""
        if self.process is None:
            return 0.0
        return group_cpu_seconds(self.process.pid)

    def stop(self) -> None:
        """SIGTERM the process group, SIGKILL after 10 s; safe to call twice."""
        process, self.process = self.process, None
        if process is None:
            return
        for sig, wait_s in ((signal.SIGTERM, 10.0), (signal.SIGKILL, 5.0)):
            try:
                os.killpg(process.pid, sig)
            except ProcessLookupError:
                break
            try:
                process.wait(timeout=wait_s)
                break
            except subprocess.TimeoutExpired:
                continue
        with contextlib.suppress(ProcessLookupError):  # children that outlived the leader
            os.killpg(process.pid, signal.SIGKILL)


_TICKS = os.sysconf("SC_CLK_TCK")


def group_cpu_seconds(pgid: int) -> float:
    """Sum utime + stime (all threads) of the processes in process group ``pgid`` (Linux)."""
    total = 0
    for entry in os.scandir("/proc"):
        if not entry.name.isdigit():
            continue
        try:
            with open(f"/proc/{entry.name}/stat") as f:
                fields = f.read().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(fields[2]) == pgid:  # field 5 of stat, counted after "pid (comm)"
            total += int(fields[11]) + int(fields[12])  # fields 14 and 15: utime, stime
    return total / _TICKS


def cpu_busy_seconds(cpu: int) -> float:
    """Busy time of one CPU so far, whoever used it (user, nice, system, irq, softirq, steal)."""
    with open("/proc/stat") as f:
        for line in f:
            if line.startswith(f"cpu{cpu} "):
                user, nice, system, _idle, _iowait, irq, softirq, steal = map(
                    int, line.split()[1:9]
                )
                return (user + nice + system + irq + softirq + steal) / _TICKS
    raise ValueError(f"no CPU {cpu} in /proc/stat")


def service(
    model_dir: Path, log: Path, cpu: int, env: dict[str, str] | None = None, name: str = "service"
) -> Server:
    """This project's service, as `python -m service` runs it in the container: with its
    defaults (only MODEL_DIR set, as a user deploys it), plus the overrides in ``env`` for an
    A/B variant (e.g. ``{"ACCESS_LOG": "false"}``). gRPC is on, as by default, on a free port
    of its own per instance (``--grpc-port``), so that instances never collide on 8001."""
    grpc_port = free_port()
    return Server(
        name=name,
        command=[
            sys.executable,
            "-m",
            "service",
            "--host",
            "127.0.0.1",
            "--port",
            "{port}",
            "--grpc-port",
            str(grpc_port),
        ],
        grpc_port=grpc_port,
        env={"MODEL_DIR": str(model_dir), **(env or {})},
        log=log,
        cpu=cpu,
    )


def naive(model_path: Path, log: Path, cpu: int, async_endpoint: bool = False) -> Server:
    """The tutorial-style FastAPI server (bench/naive_server.py) under plain uvicorn, with a
    ``def`` endpoint or (``async_endpoint``) an ``async def`` one."""
    return Server(
        name="naive",
        command=[
            sys.executable,
            "-m",
            "uvicorn",
            "bench.naive_server:app",
            "--host",
            "127.0.0.1",
            "--port",
            "{port}",
            "--no-access-log",
        ],
        env={
            "MODEL_PATH": str(model_path),
            "ORT_INTRA_OP_THREADS": "1",
            "NAIVE_ASYNC": "1" if async_endpoint else "0",
        },
        log=log,
        cpu=cpu,
    )


def mlserver(
    model_path: Path,
    workdir: Path,
    log: Path,
    cpu: int,
    max_batch_time_s: float,
    extra_settings: dict | None = None,
) -> Server:
    """MLServer with adaptive batching and the custom ONNX runtime, in one process
    (``parallel_workers: 0``): its settings files are written into ``workdir``."""
    workdir.mkdir(parents=True, exist_ok=True)
    model_folder = workdir / NAME
    model_folder.mkdir(exist_ok=True)
    http, grpc, metrics = free_ports(3)
    settings = {
        "debug": False,  # no per-request access log, like the other servers
        # wrk asks for no compression; the GZip middleware still cost ~10% CPU per request
        "gzip_enabled": False,
        "parallel_workers": 0,
        "host": "127.0.0.1",
        "http_port": http,
        "grpc_port": grpc,
        "metrics_port": metrics,
        **(extra_settings or {}),
    }
    (workdir / "settings.json").write_text(json.dumps(settings, indent=2))
    model_settings = {
        "name": NAME,
        "implementation": "onnx_model.OnnxModel",
        "max_batch_size": 32,
        "max_batch_time": max_batch_time_s,
        "parameters": {
            "uri": str(model_path),
            "version": "1",
            "extra": {"intra_op_threads": 1},
        },
    }
    (model_folder / "model-settings.json").write_text(json.dumps(model_settings, indent=2))
    return Server(
        name="mlserver",
        command=[str(MLSERVER_VENV / "bin" / "mlserver"), "start", str(workdir)],
        env={"PYTHONPATH": str(BENCH / "mlserver_runtime")},
        log=log,
        cpu=cpu,
        cwd=workdir,
        port=http,
    )


def ensure_mlserver(ort_version: str, log: Path) -> str | None:
    """Create bench/.venv-mlserver with MLServer and the same ONNX Runtime version as the
    project; returns None when ready, else why it could not be installed."""
    stamp = MLSERVER_VENV / ".bench-stamp"
    want = f"mlserver=={MLSERVER_VERSION} onnxruntime=={ort_version}"
    if stamp.is_file() and stamp.read_text() == want:
        return None
    steps = [
        [sys.executable, "-m", "venv", str(MLSERVER_VENV)],
        [str(MLSERVER_VENV / "bin" / "python"), "-m", "pip", "install", "-q", *want.split()],
    ]
    with log.open("ab") as out:
        for step in steps:
            try:
                done = subprocess.run(step, stdout=out, stderr=subprocess.STDOUT, timeout=900)
            except subprocess.TimeoutExpired:
                return f"`{' '.join(step)}` took over 15 minutes"
            if done.returncode != 0:
                tail = log.read_text(errors="replace").splitlines()[-8:]
                return f"`{' '.join(step)}` failed ({done.returncode}):\n" + "\n".join(tail)
    stamp.write_text(want)
    return None
