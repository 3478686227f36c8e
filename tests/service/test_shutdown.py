"""Graceful shutdown: SIGTERM lets the request in flight finish, refuses new ones, exits 0."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import httpx
import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

from tests.service.helpers import free_port, wait_healthy, write_model

WIDTH = 1024
LAYERS = 12


def slow_model() -> onnx.ModelProto:
    """A chain of square MatMuls: big batches take about a second on a laptop core."""
    rng = np.random.default_rng(0)
    nodes, inits, x = [], [], "x"
    for i in range(LAYERS):
        w = (rng.standard_normal((WIDTH, WIDTH)) / np.sqrt(WIDTH)).astype(np.float32)
        inits.append(numpy_helper.from_array(w, f"w{i}"))
        out = "y" if i == LAYERS - 1 else f"h{i}"
        nodes.append(helper.make_node("MatMul", [x, f"w{i}"], [out]))
        x = out
    graph = helper.make_graph(
        nodes, "slow",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["n", WIDTH])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["n", WIDTH])],
        initializer=inits,
    )  # fmt: skip
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 9
    return model


def test_sigterm_finishes_in_flight_request_and_exits(tmp_path: Path) -> None:
    write_model(tmp_path / "slow" / "1" / "model.onnx", slow_model())
    port = free_port()
    env = os.environ | {
        "MODEL_POLL_INTERVAL_S": "0", "GRACEFUL_SHUTDOWN_S": "20", "EXECUTION_PROVIDER": "cpu",
        "ORT_INTRA_OP_THREADS": "1",
    }  # fmt: skip
    proc = subprocess.Popen(
        [sys.executable, "-m", "service", "--host", "127.0.0.1", "--port", str(port),
         "--model-dir", str(tmp_path)],
        env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
    )  # fmt: skip
    base = f"http://127.0.0.1:{port}"
    try:
        wait_healthy(base)

        batch = np.ones((2048, WIDTH), dtype=np.float32)
        header = (
            b'{"inputs":[{"name":"x","datatype":"FP32","shape":[2048,%d],'
            b'"parameters":{"binary_data_size":%d}}],'
            b'"outputs":[{"name":"y","parameters":{"binary_data":true}}]}'
        ) % (WIDTH, batch.nbytes)
        result: dict = {}

        def send() -> None:
            response = httpx.post(
                f"{base}/v2/models/slow/infer",
                content=header + batch.tobytes(),
                headers={"Inference-Header-Content-Length": str(len(header))},
                timeout=60,
            )
            result["status"] = response.status_code
            result["header_length"] = response.headers.get("inference-header-content-length")

        sender = threading.Thread(target=send)
        sender.start()
        in_flight = 0.0
        deadline = time.monotonic() + 20
        while in_flight < 2 and time.monotonic() < deadline:  # this scrape counts itself too
            metrics = httpx.get(f"{base}/metrics", timeout=5).text
            line = next(m for m in metrics.splitlines() if m.startswith("http_requests_in_flight"))
            in_flight = float(line.split()[-1])
        assert in_flight >= 2, "the slow request never reached the server"

        stopped_at = time.monotonic()
        proc.send_signal(signal.SIGTERM)
        time.sleep(0.3)
        refused = False
        try:
            httpx.get(f"{base}/health", timeout=2)
        except httpx.TransportError:
            refused = True
        sender.join(timeout=60)
        code = proc.wait(timeout=30)
        elapsed = time.monotonic() - stopped_at
    finally:
        if proc.poll() is None:
            proc.kill()
    log = proc.stdout.read().decode() if proc.stdout else ""
    assert result.get("status") == 200, log[-2000:]
    assert result["header_length"] is not None
    assert refused, "a new connection was accepted after SIGTERM"
    assert code == 0, log[-2000:]
    assert elapsed < 20
    assert '"message": "service stopped"' in log
