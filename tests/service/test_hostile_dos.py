"""Issue 15, cheap denial of service and wrong statuses, through the HTTP API of a real server:
duplicate outputs, big JSON bodies against the health check, huge zero-element shapes,
compressed bodies (and bombs), a model's own rejection of its input, slow clients."""

from __future__ import annotations

import gzip
import json
import logging
import socket
import threading
import time
import zlib
from collections.abc import Iterator

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper

from tests.service.conftest import settings_for
from tests.service.helpers import ServerThread, client, serving, write_model
from tests.service.hostile_models import identity

X = {"name": "x", "datatype": "FP32", "shape": [4], "data": [1, 2, 3, 4]}


def sum_model() -> onnx.ModelProto:
    """y = sum(x): a big input, a tiny answer."""
    graph = helper.make_graph(
        [helper.make_node("ReduceSum", ["x"], ["y"], keepdims=0)],
        "sum",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["n"])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [])],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 9
    return model


def gather_elements() -> onnx.ModelProto:
    """Two request inputs; an out-of-range index fails the node with ORT's ``Fail`` (not
    ``InvalidArgument``, which a one-input Gather raises)."""
    graph = helper.make_graph(
        [helper.make_node("GatherElements", ["data", "indices"], ["y"], axis=1)],
        "gather",
        [
            helper.make_tensor_value_info("data", TensorProto.FLOAT, ["n", 3]),
            helper.make_tensor_value_info("indices", TensorProto.INT64, ["n", 3]),
        ],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["n", 3])],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 9
    return model


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerThread]:
    root = tmp_path_factory.mktemp("dos")
    write_model(root / "fp32" / "1" / "model.onnx", identity(TensorProto.FLOAT))
    write_model(root / "sum" / "1" / "model.onnx", sum_model())
    write_model(root / "gather" / "1" / "model.onnx", gather_elements())
    with serving(settings_for(root, max_request_bytes=64 * 1024 * 1024)) as running:
        yield running


@pytest.fixture(scope="module")
def impatient(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerThread]:
    """A server with 1 s header and body deadlines, for the slow-client tests."""
    root = tmp_path_factory.mktemp("impatient")
    write_model(root / "fp32" / "1" / "model.onnx", identity(TensorProto.FLOAT))
    settings = settings_for(
        root,
        request_header_timeout_s=1.0,
        request_body_timeout_s=1.0,
        keep_alive_timeout_s=3.0,
    )
    with serving(settings) as running:
        yield running


def infer_body(*tensors: dict, **doc: object) -> bytes:
    return json.dumps({"inputs": list(tensors), **doc}).encode()


# -- 6. duplicate outputs -----------------------------------------------------------------------
def test_an_output_requested_twice_is_refused(server: ServerThread) -> None:
    body = infer_body(X, outputs=[{"name": "y"}] * 1000)
    with client(server) as http:
        response = http.post("/v2/models/fp32/infer", content=body)
    assert response.status_code == 400
    assert response.json() == {"error": "output 'y' is requested more than once"}


# -- 7. a big JSON body does not stall the health check -----------------------------------------
def test_health_answers_within_1s_while_a_64mb_json_body_is_decoded(server: ServerThread) -> None:
    """The load balancer's health check times out at 2 s and fails a task after two misses."""
    count = 5_500_000  # just under MAX_REQUEST_BYTES (64 MiB); the report saw stalls from 48 MB
    body = b'{"inputs":[{"name":"x","datatype":"FP32","shape":[%d],"data":[' % count
    body += b",".join([b"0.125000000"] * count) + b"]}]}"
    assert 64_000_000 < len(body) < 64 * 1024 * 1024
    result: dict = {}
    done = threading.Event()

    def post() -> None:
        with client(server) as http:
            result["response"] = http.post("/v2/models/sum/infer", content=body)
        done.set()

    probes: list[float] = []
    sender = threading.Thread(target=post)
    with client(server) as http:
        # the decoder process starts on the first big JSON body: start it first, as a service
        # that has run for a while has, so the probe measures the decode and not a process start
        warm = b'{"inputs":[{"name":"x","datatype":"FP32","shape":[1200000],"data":[%s]}]}'
        warm %= b",".join([b"0.5"] * 1_200_000)
        assert len(warm) > 4 * 1024 * 1024  # PROCESS_JSON_BYTES
        assert http.post("/v2/models/sum/infer", content=warm).status_code == 200
        http.get("/v2/health/ready")  # connection open before the big body arrives
        sender.start()
        while not done.is_set():
            started = time.perf_counter()
            assert http.get("/v2/health/ready").status_code == 200
            probes.append(time.perf_counter() - started)
            time.sleep(0.02)
    sender.join()
    response = result["response"]
    assert response.status_code == 200, response.text[:200]
    assert response.json()["outputs"][0]["data"] == [0.125 * count]
    assert len(probes) >= 5, "the request finished before the health check could be probed"
    print(f"{len(probes)} health probes during the request, slowest {max(probes):.3f} s")
    assert max(probes) < 1.0, f"health check stalled {max(probes):.2f} s by the decode"


# -- 9. zero elements, huge dimension --------------------------------------------------------
def test_zero_element_tensor_with_a_huge_dimension_is_400(server: ServerThread) -> None:
    tensor = {"name": "x", "datatype": "FP32", "shape": [0, 2**62], "data": []}
    with client(server) as http:
        response = http.post("/v2/models/fp32/infer", content=infer_body(tensor))
    assert response.status_code == 400
    assert "too large" in response.json()["error"]


# -- 10. compressed bodies --------------------------------------------------------------------
def test_gzip_and_deflate_bodies_are_accepted(server: ServerThread) -> None:
    body = infer_body(X)
    raw_deflate = zlib.compressobj(wbits=-zlib.MAX_WBITS)
    encodings = {
        "gzip": gzip.compress(body),
        "deflate": zlib.compress(body),
        "Deflate": raw_deflate.compress(body) + raw_deflate.flush(),
    }
    with client(server) as http:
        for coding, data in encodings.items():
            response = http.post(
                "/v2/models/fp32/infer", content=data, headers={"Content-Encoding": coding}
            )
            assert response.status_code == 200, (coding, response.text)
            assert response.json()["outputs"][0]["data"] == [1, 2, 3, 4]


def test_tritonclient_request_compression_works(server: ServerThread) -> None:
    import tritonclient.http as triton

    tc = triton.InferenceServerClient(server.url)
    x = triton.InferInput("x", [3], "FP32")
    x.set_data_from_numpy(np.array([1, 2, 3], dtype=np.float32))
    for algorithm in ("gzip", "deflate"):
        result = tc.infer("fp32", [x], request_compression_algorithm=algorithm)
        assert result.as_numpy("y").tolist() == [1, 2, 3]


def test_a_compression_bomb_is_413_not_memory(server: ServerThread) -> None:
    bomb = gzip.compress(b" " * (200 * 1024 * 1024), compresslevel=9)  # 200 MiB of spaces
    assert len(bomb) < 1_000_000
    with client(server) as http:
        response = http.post(
            "/v2/models/fp32/infer", content=bomb, headers={"Content-Encoding": "gzip"}
        )
    assert response.status_code == 413
    assert "decompressed request body exceeds the limit" in response.json()["error"]


def test_other_encodings_are_415_and_corrupt_data_400(server: ServerThread) -> None:
    with client(server) as http:
        brotli = http.post(
            "/v2/models/fp32/infer", content=b"...", headers={"Content-Encoding": "br"}
        )
        corrupt = http.post(
            "/v2/models/fp32/infer", content=b"not gzip", headers={"Content-Encoding": "gzip"}
        )
    assert brotli.status_code == 415
    assert "accepted: gzip, deflate, identity" in brotli.json()["error"]
    assert corrupt.status_code == 400
    assert "not valid gzip data" in corrupt.json()["error"]


# -- 11. a model's own rejection of an input ----------------------------------------------------
def test_a_node_failing_on_the_input_is_400_with_the_reason_and_no_traceback(
    server: ServerThread, caplog: pytest.LogCaptureFixture
) -> None:
    bad = infer_body(
        {"name": "data", "datatype": "FP32", "shape": [1, 3], "data": [1, 2, 3]},
        {"name": "indices", "datatype": "INT64", "shape": [1, 3], "data": [0, 1, 7]},
    )
    good = infer_body(
        {"name": "data", "datatype": "FP32", "shape": [1, 3], "data": [1, 2, 3]},
        {"name": "indices", "datatype": "INT64", "shape": [1, 3], "data": [2, 1, 0]},
    )
    caplog.set_level(logging.INFO, logger="service")
    with client(server) as http:
        responses = [http.post("/v2/models/gather/infer", content=bad) for _ in range(3)]
        # and in a combined batch with a good request: the bad one fails alone
        from concurrent.futures import ThreadPoolExecutor

        with ThreadPoolExecutor(8) as pool:
            mixed = list(
                pool.map(lambda b: http.post("/v2/models/gather/infer", content=b), [bad, good] * 8)
            )
    for response in responses + mixed[::2]:
        assert response.status_code == 400, response.text
        error = response.json()["error"]
        assert error.startswith("model 'gather' rejected the input")
        assert "Out of range value in index tensor" in error
        assert "/onnxruntime_src/" not in error
    assert all(r.json()["outputs"][0]["data"] == [3, 2, 1] for r in mixed[1::2])
    assert not [r for r in caplog.records if r.levelno >= logging.ERROR and r.exc_info]


# -- 12. slow clients -----------------------------------------------------------------------------
def _read_until_closed(sock: socket.socket, limit_s: float) -> tuple[bytes, float]:
    started = time.monotonic()
    sock.settimeout(limit_s)
    received = b""
    try:
        while chunk := sock.recv(65536):
            received += chunk
    except (TimeoutError, ConnectionResetError):
        pass
    return received, time.monotonic() - started


def test_headers_sent_a_byte_at_a_time_are_cut_off_with_408(impatient: ServerThread) -> None:
    request = b"POST /v2/models/fp32/infer HTTP/1.1\r\nHost: x\r\nX-Padding: " + b"a" * 200
    with socket.create_connection(("127.0.0.1", impatient.port)) as sock:
        started = time.monotonic()
        closed = False
        for byte in request:
            try:
                sock.sendall(bytes([byte]))
            except (BrokenPipeError, ConnectionResetError):
                closed = True
                break
            time.sleep(0.05)
            if time.monotonic() - started > 8:
                break
        received, _ = _read_until_closed(sock, 5)
        took = time.monotonic() - started
    assert received.startswith(b"HTTP/1.1 408"), received[:100]
    assert b"content-type: application/json" in received.lower()
    assert b"REQUEST_HEADER_TIMEOUT_S" in received
    assert closed or took < 5, f"connection held {took:.1f} s"


def test_a_connection_that_never_sends_a_byte_is_closed(impatient: ServerThread) -> None:
    """Idle, not slow: closed after KEEP_ALIVE_TIMEOUT_S, without an answer."""
    with socket.create_connection(("127.0.0.1", impatient.port)) as sock:
        received, took = _read_until_closed(sock, 10)
    assert took < 5, f"an idle connection was held {took:.1f} s"
    assert received == b""


def test_a_body_that_never_arrives_is_cut_off_with_408(impatient: ServerThread) -> None:
    head = b"POST /v2/models/fp32/infer HTTP/1.1\r\nHost: x\r\nContent-Length: 1000\r\n\r\n"
    with socket.create_connection(("127.0.0.1", impatient.port)) as sock:
        sock.sendall(head + b'{"inputs": [')
        received, took = _read_until_closed(sock, 10)
    assert took < 5, f"a stalled body held the connection {took:.1f} s"
    assert received.startswith(b"HTTP/1.1 408"), received[:100]
    body = received.split(b"\r\n\r\n", 1)[1]
    assert "REQUEST_BODY_TIMEOUT_S" in json.loads(body)["error"]


def test_a_complete_request_is_unaffected_by_the_deadlines(impatient: ServerThread) -> None:
    """Keep-alive (3 s here): a request, 1.5 s idle (past the 1 s header and body deadlines),
    then another request on the same socket."""
    body = infer_body(X)
    request = (
        b"POST /v2/models/fp32/infer HTTP/1.1\r\nHost: x\r\nContent-Length: %d\r\n\r\n" % len(body)
        + body
    )
    with socket.create_connection(("127.0.0.1", impatient.port)) as sock:
        sock.settimeout(10)
        sock.sendall(request)
        first = _read_response(sock)
        time.sleep(1.5)
        sock.sendall(request)
        second = _read_response(sock)
    assert first.startswith(b"HTTP/1.1 200") and second.startswith(b"HTTP/1.1 200")


def _read_response(sock: socket.socket) -> bytes:
    data = b""
    while b"\r\n\r\n" not in data:
        data += sock.recv(65536)
    head, body = data.split(b"\r\n\r\n", 1)
    length = int(
        next(
            line.split(b":")[1]
            for line in head.lower().split(b"\r\n")
            if line.startswith(b"content-length")
        )
    )
    while len(body) < length:
        body += sock.recv(65536)
    return head + b"\r\n\r\n" + body


def test_unparseable_http_is_a_json_error(impatient: ServerThread) -> None:
    with socket.create_connection(("127.0.0.1", impatient.port)) as sock:
        sock.sendall(b"NOT HTTP AT ALL\r\n\r\n")
        received, _ = _read_until_closed(sock, 5)
    head, body = received.split(b"\r\n\r\n", 1)
    assert head.startswith(b"HTTP/1.1 400")
    assert b"content-type: application/json" in head.lower()
    assert "error" in json.loads(body)


def test_a_big_invalid_json_body_is_still_a_clear_400(server: ServerThread) -> None:
    """Decoded in the decoder process: its InvalidInput comes back as the same 400."""
    count = 1_000_000
    body = b'{"inputs":[{"name":"x","datatype":"FP32","shape":[%d],"data":[' % count
    body += b",".join([b"0.125000000"] * (count - 1) + [b"null"]) + b"]}]}"
    assert len(body) > 8_000_000
    with client(server) as http:
        response = http.post("/v2/models/fp32/infer", content=body)
        after = http.post("/v2/models/fp32/infer", content=infer_body(X))
    assert response.status_code == 400
    assert "not numbers" in response.json()["error"]
    assert after.status_code == 200
