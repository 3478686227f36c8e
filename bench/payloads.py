"""Request bodies of the scenarios, and the check that a server's answers match ONNX Runtime.

Bodies are what ordinary clients send: JSON built from ``ndarray.tolist()`` (every FP32 value
written as the double that holds it exactly), or the binary tensor extension with an
``Inference-Header-Content-Length`` header. The expected outputs come from an in-process,
unbatched ``InferenceSession.run`` on the same input, so a server that batches requests
together must still give each request its own rows, within ``TOLERANCE``.
"""

from __future__ import annotations

import http.client
import json
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import onnxruntime as ort

from bench.models import INPUT, LAYERS, NAME, OUTPUT

TOLERANCE = 1e-5
INFER_PATH = f"/v2/models/{NAME}/infer"


class CheckFailed(RuntimeError):
    """A server answered wrongly: the benchmark must not report its numbers."""


@dataclass(frozen=True)
class Body:
    """One request body, its HTTP headers and the output it must produce."""

    name: str
    rows: int
    data: bytes
    headers: dict[str, str]
    expected: np.ndarray = field(repr=False)

    def write(self, folder: Path) -> Path:
        path = folder / f"{self.name}.body"
        path.write_bytes(self.data)
        return path


def reference_session(model_path: Path) -> ort.InferenceSession:
    """The unbatched reference: one intra-op thread, CPU, default optimisations."""
    options = ort.SessionOptions()
    options.intra_op_num_threads = 1
    options.inter_op_num_threads = 1
    options.log_severity_level = 3
    return ort.InferenceSession(str(model_path), options, providers=["CPUExecutionProvider"])


def random_input(rows: int, seed: int) -> np.ndarray:
    return np.random.default_rng(seed).standard_normal((rows, LAYERS[0])).astype(np.float32)


def json_body(x: np.ndarray) -> bytes:
    doc = {"inputs": [{"name": INPUT, "shape": list(x.shape), "datatype": "FP32", "data": []}]}
    doc["inputs"][0]["data"] = x.reshape(-1).tolist()
    return json.dumps(doc).encode()


def binary_body(x: np.ndarray) -> tuple[bytes, int]:
    """Binary tensor extension: JSON header, then the raw little-endian FP32 input."""
    blob = np.ascontiguousarray(x, dtype="<f4").tobytes()
    header = json.dumps(
        {
            "inputs": [
                {
                    "name": INPUT,
                    "shape": list(x.shape),
                    "datatype": "FP32",
                    "parameters": {"binary_data_size": len(blob)},
                }
            ],
            "outputs": [{"name": OUTPUT, "parameters": {"binary_data": True}}],
        }
    ).encode()
    return header + blob, len(header)


def make_bodies(session: ort.InferenceSession) -> dict[str, Body]:
    """The three bodies the scenarios use: batch-1 JSON, batch-1 binary, batch-8 JSON."""
    one, eight = random_input(1, seed=1), random_input(8, seed=8)
    expect_one = session.run([OUTPUT], {INPUT: one})[0]
    expect_eight = session.run([OUTPUT], {INPUT: eight})[0]
    data, header_length = binary_body(one)
    json_headers = {"Content-Type": "application/json"}
    return {
        "json1": Body("json1", 1, json_body(one), json_headers, expect_one),
        "binary1": Body(
            "binary1",
            1,
            data,
            {
                "Content-Type": "application/octet-stream",
                "Inference-Header-Content-Length": str(header_length),
            },
            expect_one,
        ),
        "json8": Body("json8", 8, json_body(eight), json_headers, expect_eight),
    }


def post(
    port: int, data: bytes, headers: dict[str, str], timeout: float = 30.0
) -> tuple[int, dict[str, str], bytes]:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout)
    try:
        conn.request("POST", INFER_PATH, body=data, headers=headers)
        response = conn.getresponse()
        return response.status, {k.lower(): v for k, v in response.getheaders()}, response.read()
    finally:
        conn.close()


def decode_output(headers: dict[str, str], body: bytes) -> np.ndarray:
    """The OUTPUT tensor of a v2 response, JSON or binary extension."""
    header_length = headers.get("inference-header-content-length")
    doc = json.loads(body[: int(header_length)] if header_length else body)
    tensor = next(t for t in doc["outputs"] if t["name"] == OUTPUT)
    if "data" in tensor:
        array = np.asarray(tensor["data"], dtype=np.float32)
    else:
        offset = int(header_length or 0)
        for t in doc["outputs"]:  # binary outputs follow the header in output order
            size = t["parameters"]["binary_data_size"]
            if t["name"] == OUTPUT:
                array = np.frombuffer(body[offset : offset + size], dtype="<f4")
                break
            offset += size
    return array.reshape(tensor["shape"])


def check_answer(server: str, port: int, body: Body, expected: np.ndarray | None = None) -> float:
    """POST one body; raise CheckFailed unless the output equals ``expected`` within TOLERANCE."""
    status, headers, payload = post(port, body.data, body.headers)
    if status != 200:
        raise CheckFailed(f"{server}: {body.name} answered HTTP {status}: {payload[:300]!r}")
    got = decode_output(headers, payload)
    want = body.expected if expected is None else expected
    if got.shape != want.shape:
        raise CheckFailed(f"{server}: {body.name} output shape {got.shape}, expected {want.shape}")
    diff = float(np.max(np.abs(got - want)))
    if diff > TOLERANCE:
        raise CheckFailed(f"{server}: {body.name} output differs from ONNX Runtime by {diff:.3g}")
    return diff


def check_concurrent(
    server: str, port: int, session: ort.InferenceSession, requests: int = 256, clients: int = 32
) -> float:
    """Distinct batch-1 inputs sent concurrently (so a batching server combines them); each
    answer must equal that input run alone. Returns the largest difference seen."""
    inputs = [random_input(1, seed=1000 + i) for i in range(requests)]
    bodies = [
        Body(f"concurrent-{i}", 1, json_body(x), {"Content-Type": "application/json"}, x)
        for i, x in enumerate(inputs)
    ]
    expected = [session.run([OUTPUT], {INPUT: x})[0] for x in inputs]
    with ThreadPoolExecutor(max_workers=clients) as pool:
        diffs = list(pool.map(lambda b, e: check_answer(server, port, b, e), bodies, expected))
    return max(diffs)
