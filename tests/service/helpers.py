"""Test helpers: tiny ONNX models and a real uvicorn server on 127.0.0.1 in a thread."""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx
import numpy as np
import onnx
import uvicorn
from onnx import TensorProto, helper, numpy_helper

from service.app import create_app
from service.http_protocol import http_protocol
from service.settings import Settings


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_healthy(
    base: str,
    alive: Callable[[], bool] = lambda: True,
    detail: Callable[[], object] = lambda: "",
    timeout: float = 60,
) -> None:
    """Poll ``{base}/health`` until it answers 200; fail after ``timeout`` seconds or as soon as
    ``alive()`` says the process under test has died, with ``detail()`` (e.g. its output)."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            if httpx.get(f"{base}/health", timeout=1).status_code == 200:
                return
        except httpx.TransportError:
            pass
        assert alive() and time.monotonic() < deadline, (
            f"service at {base} did not become ready: {detail()!r}"
        )
        time.sleep(0.1)


def write_model(path: Path, model: onnx.ModelProto) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(model.SerializeToString())
    return path


def scale_model(
    factor: float, features: int = 4, dtype: int = TensorProto.FLOAT
) -> onnx.ModelProto:
    """y = x * factor, x: [N, features]. The factor tells versions apart in responses."""
    np_dtype = helper.tensor_dtype_to_np_dtype(dtype)
    graph = helper.make_graph(
        [helper.make_node("Mul", ["x", "k"], ["y"])],
        "scale",
        [helper.make_tensor_value_info("x", dtype, ["n", features])],
        [helper.make_tensor_value_info("y", dtype, ["n", features])],
        initializer=[numpy_helper.from_array(np.array([factor], dtype=np_dtype), "k")],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 9
    return model


def string_model() -> onnx.ModelProto:
    """BYTES in, BYTES out (Identity on a string tensor)."""
    graph = helper.make_graph(
        [helper.make_node("Identity", ["text"], ["echo"])],
        "strings",
        [helper.make_tensor_value_info("text", TensorProto.STRING, ["n"])],
        [helper.make_tensor_value_info("echo", TensorProto.STRING, ["n"])],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 9
    return model


class ServerThread:
    """uvicorn serving ``create_app(settings)`` on a free loopback port, in a thread."""

    def __init__(self, settings: Settings) -> None:
        self.port = free_port()
        self.settings = settings.model_copy(update={"host": "127.0.0.1", "port": self.port})
        self.app = create_app(self.settings)
        config = uvicorn.Config(
            self.app,
            host="127.0.0.1",
            port=self.port,
            log_config=None,
            access_log=False,
            loop="asyncio",
            lifespan="on",
            http=http_protocol(self.settings),
            timeout_keep_alive=self.settings.keep_alive_timeout_s,
        )
        self.server = uvicorn.Server(config)
        self.thread = threading.Thread(target=self.server.run, daemon=True)

    @property
    def url(self) -> str:
        return f"127.0.0.1:{self.port}"

    @property
    def base(self) -> str:
        return f"http://{self.url}"

    def start(self, wait_ready: bool = True, timeout: float = 30.0) -> ServerThread:
        self.thread.start()
        deadline = time.monotonic() + timeout
        while not self.server.started:
            if time.monotonic() > deadline:
                raise TimeoutError("server did not start")
            time.sleep(0.01)
        if wait_ready:
            self.wait_loaded(timeout)
        return self

    def wait_loaded(self, timeout: float = 30.0) -> None:
        registry = self.app.state.plane.registry
        deadline = time.monotonic() + timeout
        while not registry.initial_load_done:
            if time.monotonic() > deadline:
                raise TimeoutError("models did not finish loading")
            time.sleep(0.01)

    def stop(self) -> None:
        self.server.should_exit = True
        self.thread.join(timeout=30)


@contextmanager
def serving(settings: Settings, wait_ready: bool = True) -> Iterator[ServerThread]:
    server = ServerThread(settings).start(wait_ready=wait_ready)
    try:
        yield server
    finally:
        server.stop()


def client(server: ServerThread) -> httpx.Client:
    return httpx.Client(base_url=server.base, timeout=30)
