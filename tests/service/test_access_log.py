"""The access log written by ``service.logs.access`` (orjson + a buffered line writer): the same
records as the ``logging`` path it replaced, one JSON object per line, lines from concurrent
writers never mixed, and nothing lost at shutdown.

Its cost is shown by ``make bench`` (the ``ACCESS_LOG=false`` A/B rows in bench/README.md), not
timed here.
"""

from __future__ import annotations

import asyncio
import io
import json
import logging
import os
import re
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pytest

from service import logs
from service.logs import ACCESS_LOGGER, LineWriter, configure_logging, flush_logs, json_formatter
from service.metrics import Metrics
from service.middleware import ObservabilityMiddleware
from tests.service.helpers import free_port, wait_healthy, write_model
from tests.service.test_shutdown import WIDTH, slow_model

REPO = Path(__file__).resolve().parents[2]
TIME = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{6}\+00:00$")


@pytest.fixture
def stdout(monkeypatch: pytest.MonkeyPatch) -> Iterator[io.TextIOWrapper]:
    """stdout as in a container (a binary stream under a text layer), logging configured on it
    as ``python -m service`` does."""
    stream = io.TextIOWrapper(io.BytesIO(), encoding="utf-8", write_through=True)
    monkeypatch.setattr(sys, "stdout", stream)
    root = logging.getLogger()
    saved = (root.handlers[:], root.level, logging.getLogger("uvicorn.access").disabled)
    configure_logging("INFO")
    try:
        yield stream
    finally:
        logs._close_writer()
        root.handlers[:] = saved[0]
        root.setLevel(saved[1])
        logging.getLogger("uvicorn.access").disabled = saved[2]


def printed(stream: io.TextIOWrapper) -> list[str]:
    flush_logs()
    buffer = stream.buffer
    assert isinstance(buffer, io.BytesIO)
    return buffer.getvalue().decode("utf-8").splitlines()


def legacy_record(
    method: str, path: str, status: int, duration_ms: float, user_agent: str, client: str | None
) -> dict[str, Any]:
    """The access record as the service wrote it before (``logging.getLogger(ACCESS_LOGGER)
    .info(message, extra=...)`` through the service's JSON formatter)."""
    out = io.StringIO()
    handler = logging.StreamHandler(out)
    handler.setFormatter(json_formatter())
    logger = logging.Logger(ACCESS_LOGGER)  # a private logger: the root's handlers stay out
    logger.addHandler(handler)
    logger.info(
        f"{method} {path} {status}",
        extra={
            "method": method,
            "path": path,
            "status": status,
            "duration_ms": duration_ms,
            "user_agent": user_agent,
            "client": client,
        },
    )
    (line,) = out.getvalue().splitlines()
    return json.loads(line)


def through_middleware(
    path: str, status: int, headers: list[tuple[bytes, bytes]], client: tuple[str, int] | None
) -> None:
    """One request through the service's real middleware."""

    async def app(scope: dict, receive: Callable, send: Callable) -> None:
        await send({"type": "http.response.start", "status": status, "headers": []})
        await send({"type": "http.response.body", "body": b"{}"})

    async def receive() -> dict:
        return {"type": "http.request", "body": b"", "more_body": False}

    async def send(message: dict) -> None:
        return None

    scope = {"type": "http", "method": "POST", "path": path, "headers": headers, "client": client}
    asyncio.run(ObservabilityMiddleware(app, Metrics())(scope, receive, send))


CASES = [
    ("/v2/models/mlp/infer", 200, [(b"user-agent", b"tritonclient/2.45")], ("10.0.1.2", 40000)),
    ("/v2/models/nope/infer", 404, [(b"user-agent", b"python-requests/2.32")], ("10.0.1.3", 1)),
    ("/v2/models/mlp/infer", 503, [], None),  # no user agent, no client (a Unix socket)
    ("/v2/models/caf\u00e9/infer", 400, [(b"user-agent", "Mozilla/5.0 \u00e9".encode())], None),
    ("/health", 200, [(b"user-agent", b"ELB-HealthChecker/2.0")], ("10.0.0.9", 5)),
]


@pytest.mark.parametrize(("path", "status", "headers", "client"), CASES)
def test_access_record_has_the_fields_and_values_of_the_logging_record(
    stdout: io.TextIOWrapper,
    path: str,
    status: int,
    headers: list[tuple[bytes, bytes]],
    client: tuple[str, int] | None,
) -> None:
    through_middleware(path, status, headers, client)
    (line,) = printed(stdout)
    record = json.loads(line)
    ua = next((v.decode("latin-1") for k, v in headers if k == b"user-agent"), "")
    expected = legacy_record(
        "POST", path, status, record["duration_ms"], ua, client[0] if client else None
    )
    assert list(record) == list(expected)  # same keys, same order
    assert {k: v for k, v in record.items() if k != "time"} == {
        k: v for k, v in expected.items() if k != "time"
    }
    assert TIME.match(record["time"]), record["time"]
    assert isinstance(record["status"], int) and record["level"] == "INFO"
    assert record["logger"] == ACCESS_LOGGER


@pytest.mark.parametrize(
    "created",
    [1_700_000_000.0, 1_700_000_000.5, 1_700_000_000.999999, 1_764_720_000.000001, 0.25],
)
def test_access_time_is_the_formatters_time(created: float) -> None:
    formatted = datetime.fromtimestamp(created, tz=UTC).isoformat(timespec="microseconds")
    assert logs._iso_time(created) == formatted


def test_a_path_orjson_refuses_is_still_logged(stdout: io.TextIOWrapper) -> None:
    """A lone surrogate (orjson refuses it) goes the ``logging`` way, still one JSON line."""
    logs.access("GET", "/v2/models/\ud800", 404, 0.1, "ua", None)
    (line,) = printed(stdout)
    record = json.loads(line)
    assert record["path"] == "/v2/models/\ud800" and record["status"] == 404


def test_access_log_follows_the_log_level(stdout: io.TextIOWrapper) -> None:
    logging.getLogger().setLevel("WARNING")
    through_middleware("/v2/models/mlp/infer", 200, [], None)
    logging.getLogger().setLevel("INFO")
    through_middleware("/v2/models/mlp/infer", 201, [], None)
    assert [json.loads(line)["status"] for line in printed(stdout)] == [201]


def test_on_an_event_loop_the_loop_writes_the_lines_a_moment_later(
    stdout: io.TextIOWrapper,
) -> None:
    """No writer thread is involved for lines from an event loop: a timer on that loop writes
    them ``interval_s`` later."""
    buffer = stdout.buffer
    assert isinstance(buffer, io.BytesIO)

    async def main() -> tuple[bytes, bytes]:
        logs.access("POST", "/a", 200, 1.0, "", None)
        before = buffer.getvalue()
        await asyncio.sleep(0.3)  # the default interval is 0.05 s
        return before, buffer.getvalue()

    before, after = asyncio.run(main())
    assert before == b""
    assert json.loads(after)["path"] == "/a"
    assert logs._writer is not None and logs._writer._thread is None


def test_other_records_keep_their_order_with_access_records(stdout: io.TextIOWrapper) -> None:
    log = logging.getLogger("service.test")
    logs.access("POST", "/a", 200, 1.0, "", None)
    log.warning("between")
    logs.access("POST", "/b", 200, 1.0, "", None)
    log.info("after")
    records = [json.loads(line) for line in printed(stdout)]
    assert [r.get("path") or r["message"] for r in records] == ["/a", "between", "/b", "after"]


def test_an_error_record_is_written_at_once_with_the_access_lines_before_it(
    stdout: io.TextIOWrapper,
) -> None:
    """Errors must not wait for the writer thread (the process may be about to die)."""
    logs.access("POST", "/a", 500, 1.0, "", None)
    logging.getLogger("service.test").error("boom")
    buffer = stdout.buffer
    assert isinstance(buffer, io.BytesIO)
    lines = buffer.getvalue().decode().splitlines()  # no flush_logs(): already written
    assert [json.loads(line).get("status", "error") for line in lines] == [500, "error"]


def test_without_the_services_logging_the_access_log_goes_through_logging(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """An app embedding the service with its own logging set-up still gets the records."""
    logs._close_writer()
    with caplog.at_level(logging.INFO, logger=ACCESS_LOGGER):
        through_middleware("/v2/models/mlp/infer", 200, [(b"user-agent", b"x/1")], None)
    (record,) = [r for r in caplog.records if r.name == ACCESS_LOGGER]
    assert record.status == 200 and record.user_agent == "x/1"  # type: ignore[attr-defined]


def test_concurrent_writers_never_mix_lines(tmp_path: Path) -> None:
    """Threads writing access lines (some longer than a pipe's atomic 4 KiB) and ordinary
    records at once into one file: every line is one whole JSON object, none is missing, and
    each thread's lines keep their order."""
    threads, per_thread = 8, 400
    out_path = tmp_path / "stdout"
    with out_path.open("w", encoding="utf-8") as stream:
        writer = LineWriter(stream, interval_s=0.001, high_water=16, max_pending=64)
        logger = logging.Logger("service.test")
        handler = logs._LineHandler(writer)
        handler.setFormatter(json_formatter())
        logger.addHandler(handler)
        start = threading.Barrier(threads)

        def work(t: int) -> None:
            start.wait()
            for n in range(per_thread):
                if n % 10 == 0:
                    logger.info("ordinary", extra={"worker": t, "n": n})
                else:
                    ua = f"agent-{t}-" + "x" * (5000 if n % 7 == 0 else 10)
                    line = json.dumps({"worker": t, "n": n, "user_agent": ua}) + "\n"
                    writer.buffer(line.encode())

        workers = [threading.Thread(target=work, args=(t,)) for t in range(threads)]
        for w in workers:
            w.start()
        for w in workers:
            w.join()
        writer.close()
    lines = out_path.read_text(encoding="utf-8").splitlines()
    assert len(lines) == threads * per_thread
    seen: dict[int, list[int]] = {t: [] for t in range(threads)}
    for line in lines:
        record = json.loads(line)  # raises on a torn or merged line
        seen[record["worker"]].append(record["n"])
    assert all(ns == list(range(per_thread)) for ns in seen.values())


def test_a_slow_reader_holds_writers_back_instead_of_losing_lines() -> None:
    """With stdout blocked (a log router that does not read), at most ``max_pending`` lines
    wait in memory; the writer then blocks like a plain write, and every line arrives."""
    read_fd, write_fd = os.pipe()
    stream = open(write_fd, "w", encoding="utf-8")  # noqa: SIM115 (closed below)
    writer = LineWriter(stream, interval_s=0.001, high_water=8, max_pending=100)
    line = b'{"x":"' + b"y" * 1000 + b'"}\n'
    total = 2000  # 2 MB: far more than a pipe holds (64 KiB)
    most_pending = 0

    def produce() -> None:
        nonlocal most_pending
        for _ in range(total):
            writer.buffer(line)
            most_pending = max(most_pending, len(writer._pending))
        writer.close()
        stream.close()

    producer = threading.Thread(target=produce)
    producer.start()
    time.sleep(0.3)  # nobody reads: the producer must be blocked, not piling lines up
    assert producer.is_alive()
    assert len(writer._pending) <= writer.max_pending
    received = b""
    with open(read_fd, "rb") as reader:
        while chunk := reader.read(65536):
            received += chunk
    producer.join(timeout=30)
    assert received == line * total
    assert most_pending <= writer.max_pending


def test_long_lines_are_bounded_by_bytes_too() -> None:
    """A few huge lines (long user agents) count against the byte bound, not only the line
    count: the writer writes them itself once about ``max_pending_bytes`` wait."""
    stream = io.TextIOWrapper(io.BytesIO(), encoding="utf-8", write_through=True)
    writer = LineWriter(stream, interval_s=3600, high_water=1000, max_pending_bytes=50_000)
    line = b"x" * 20_000 + b"\n"
    for _ in range(3):
        writer.buffer(line)
    assert len(writer._pending) == 0  # the third line crossed 50 kB: all written at once
    buffer = stream.buffer
    assert isinstance(buffer, io.BytesIO)
    assert buffer.getvalue() == line * 3
    writer.close()


@pytest.mark.parametrize("on_loop", [False, True])
def test_lines_still_buffered_at_exit_are_written(on_loop: bool) -> None:
    """The interpreter's exit runs the writer's final flush (atexit), whatever the interval,
    for lines from a thread and from an event loop whose timer never ran."""
    code = (
        "import asyncio\n"
        "from service import logs\n"
        "logs.configure_logging('INFO')\n"
        "logs._writer.interval_s = 3600\n"
        "def log():\n"
        "    for n in range(5000):\n"
        "        logs.access('POST', f'/v2/models/m/infer/{n}', 200, 1.0, 'ua', None)\n"
        "async def main():\n"
        "    log()\n" + ("asyncio.run(main())\n" if on_loop else "log()\n")
    )
    done = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, cwd=REPO, timeout=60, check=True
    )
    lines = done.stdout.decode().splitlines()
    assert [json.loads(line)["path"] for line in lines] == [
        f"/v2/models/m/infer/{n}" for n in range(5000)
    ]


def test_sigterm_with_requests_in_flight_loses_no_access_line(tmp_path: Path) -> None:
    """The service (access log on, as deployed) writes to a pipe, as under the ECS log driver;
    SIGTERM arrives while requests run: every request it answered has its access line, each
    line is one JSON object, and the last access line comes before "service stopped"."""
    write_model(tmp_path / "slow" / "1" / "model.onnx", slow_model())
    port = free_port()
    env = os.environ | {
        "MODEL_POLL_INTERVAL_S": "0", "GRACEFUL_SHUTDOWN_S": "20", "EXECUTION_PROVIDER": "cpu",
        "ORT_INTRA_OP_THREADS": "1",
    }  # fmt: skip
    env.pop("ACCESS_LOG", None)
    proc = subprocess.Popen(
        [sys.executable, "-m", "service", "--host", "127.0.0.1", "--port", str(port),
         "--model-dir", str(tmp_path)],
        env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, cwd=REPO,
    )  # fmt: skip
    assert proc.stdout is not None
    output: list[bytes] = []
    reader = threading.Thread(target=lambda: output.extend(proc.stdout or []), daemon=True)
    reader.start()
    base = f"http://127.0.0.1:{port}"
    answered: list[str] = []
    try:
        wait_healthy(base, alive=lambda: proc.poll() is None, detail=lambda: b"".join(output))
        x = np.ones((1, WIDTH), dtype=np.float32)
        body = json.dumps(
            {"inputs": [{"name": "x", "datatype": "FP32", "shape": list(x.shape),
                         "data": x.ravel().tolist()}]}
        )  # fmt: skip
        for n in range(50):  # quick ones first: lines in the writer's buffer at SIGTERM
            agent = f"before/{n}"
            r = httpx.post(f"{base}/v2/models/slow/infer", content=body, timeout=60,
                           headers={"User-Agent": agent})  # fmt: skip
            assert r.status_code == 200
            answered.append(agent)

        def send(n: int) -> None:
            agent = f"in-flight/{n}"
            big = np.ones((512, WIDTH), dtype=np.float32)
            payload = json.dumps(
                {"inputs": [{"name": "x", "datatype": "FP32", "shape": list(big.shape),
                             "data": big.ravel().tolist()}]}
            )  # fmt: skip
            try:
                r = httpx.post(f"{base}/v2/models/slow/infer", content=payload, timeout=60,
                               headers={"User-Agent": agent})  # fmt: skip
            except httpx.TransportError:
                return  # not accepted before the listener closed: nothing to log
            if r.status_code == 200:
                answered.append(agent)

        senders = [threading.Thread(target=send, args=(n,)) for n in range(4)]
        for s in senders:
            s.start()
        time.sleep(1.0)  # the big requests are decoded and running
        proc.send_signal(signal.SIGTERM)
        for s in senders:
            s.join(timeout=60)
        code = proc.wait(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
    reader.join(timeout=10)
    text = b"".join(output).decode()
    assert code == 0, text[-2000:]
    records = [json.loads(line) for line in text.splitlines()]  # every line is one object
    access = [r for r in records if r.get("logger") == ACCESS_LOGGER]
    logged = {r["user_agent"] for r in access if r["path"].endswith("/infer")}
    assert any(a.startswith("in-flight/") for a in answered), "nothing was in flight"
    assert set(answered) <= logged, f"answered, not logged: {sorted(set(answered) - logged)}"
    stopped = next(i for i, r in enumerate(records) if r.get("message") == "service stopped")
    last_access = max(i for i, r in enumerate(records) if r.get("logger") == ACCESS_LOGGER)
    assert last_access < stopped
