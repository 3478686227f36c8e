"""SIGTERM under sustained load: no accepted request is lost, and the process exits 0 in time.

Several client threads keep requests in flight (keep-alive and one-connection-per-request
clients) while the service gets SIGTERM. Every request must end one of two ways: a 200, or a
transport error for a request the service never accepted. "Never accepted" is checked, not
assumed: each request carries a unique User-Agent, which the service writes into its access log
for every request it handled, so a failed request must be absent from that log, and every
request in the log must have been answered 200 to its client.
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass
from pathlib import Path

import httpx
import numpy as np

from tests.robustness.conftest import Spawn
from tests.service.helpers import write_model
from tests.service.test_shutdown import WIDTH, slow_model

GRACE_S = 10
CLIENTS = 6
ROWS = 256  # ~0.1 s per request, one at a time: the last of 6 ends ~0.6 s after SIGTERM


@dataclass(frozen=True, slots=True)
class Result:
    agent: str
    started: float
    ended: float
    status: int | None
    error: str | None


def body() -> tuple[bytes, dict[str, str]]:
    x = np.ones((ROWS, WIDTH), dtype=np.float32)
    header = (
        b'{"inputs":[{"name":"x","datatype":"FP32","shape":[%d,%d],'
        b'"parameters":{"binary_data_size":%d}}],'
        b'"outputs":[{"name":"y","parameters":{"binary_data":true}}]}'
    ) % (ROWS, WIDTH, x.nbytes)
    return header + x.tobytes(), {"Inference-Header-Content-Length": str(len(header))}


def test_sigterm_under_load_loses_no_accepted_request(tmp_path: Path, spawn: Spawn) -> None:
    write_model(tmp_path / "models" / "slow" / "1" / "model.onnx", slow_model())
    service = spawn(tmp_path / "models", GRACEFUL_SHUTDOWN_S=str(GRACE_S), ORT_INTRA_OP_THREADS="1")
    service.wait_ready()
    url = f"{service.base}/v2/models/slow/infer"
    content, headers = body()
    results: list[Result] = []
    lock = threading.Lock()
    stop = threading.Event()

    def client(index: int) -> None:
        keep_alive = index % 2 == 0  # half reuse connections, half open one per request
        limits = httpx.Limits(max_keepalive_connections=1 if keep_alive else 0)
        refused_in_a_row = 0
        with httpx.Client(timeout=GRACE_S + 20, limits=limits) as http:
            for n in range(100_000):
                if stop.is_set() or refused_in_a_row >= 3:
                    return
                agent = f"robustness/{index}/{n}"
                started = time.monotonic()
                try:
                    response = http.post(
                        url, content=content, headers=headers | {"User-Agent": agent}
                    )
                    status, error = response.status_code, None
                except httpx.TransportError as exc:
                    status, error = None, type(exc).__name__
                refused_in_a_row = refused_in_a_row + 1 if error == "ConnectError" else 0
                with lock:
                    results.append(Result(agent, started, time.monotonic(), status, error))
                if error:
                    time.sleep(0.02)

    threads = [threading.Thread(target=client, args=(i,), daemon=True) for i in range(CLIENTS)]
    for t in threads:
        t.start()
    # Sustained load: at least 2 s and at least 10 answered requests (on a loaded machine 2 s
    # alone was sometimes 6 requests, and the test then proved nothing and failed).
    started = time.monotonic()
    while time.monotonic() - started < 2.0 or (
        len(results) < 10 and time.monotonic() - started < 30
    ):
        time.sleep(0.05)
    with lock:
        before = len(results)
    sigterm_at = time.monotonic()
    code = service.terminate(timeout=GRACE_S + 20)
    elapsed = time.monotonic() - sigterm_at
    stop.set()
    for t in threads:
        t.join(timeout=GRACE_S + 30)
    assert not any(t.is_alive() for t in threads), "a client hung"
    log = service.tail()

    assert code == 0, log
    assert elapsed < GRACE_S, f"took {elapsed:.1f} s to stop"
    assert before >= 10, f"only {before} requests before SIGTERM: no sustained load"

    bad = [r for r in results if r.status is not None and r.status != 200]
    assert not bad, f"non-200 answers: {bad[:5]}"
    finished_after = [r for r in results if r.status == 200 and r.ended > sigterm_at]
    assert finished_after, "no request was in flight at SIGTERM: the test proved nothing"
    failed = [r for r in results if r.error is not None]
    assert all(r.ended > sigterm_at for r in failed), f"failures before SIGTERM: {failed[:5]}"

    handled = {
        r["user_agent"]: r["status"]
        for r in service.records()
        if r.get("logger") == "service.access" and r.get("path", "").endswith("/infer")
    }
    answered = {r.agent for r in results if r.status == 200}
    assert set(handled.values()) == {200}, "the service answered some request with non-200"
    assert set(handled) == answered, (
        f"accepted but not answered: {sorted(set(handled) - answered)[:5]}; "
        f"answered but not logged: {sorted(answered - set(handled))[:5]}"
    )
    messages = [r.get("message", "") for r in service.records()]
    assert "service stopped" in messages
    assert not any("timeout graceful shutdown exceeded" in m for m in messages)
