from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from tritonclient.grpc import InferenceServerClient

from service.demo_model import write_demo_repository
from service.settings import Settings
from tests.service.helpers import ServerThread, scale_model, serving, write_model


@pytest.fixture
def demo_repo(tmp_path: Path) -> Path:
    root = tmp_path / "models"
    write_demo_repository(root)
    return root


def settings_for(model_dir: Path, **overrides: object) -> Settings:
    base = {"model_dir": model_dir, "model_poll_interval_s": 0, "execution_provider": "cpu"}
    return Settings(**(base | overrides))


@pytest.fixture(scope="module")
def demo_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerThread]:
    """One server for read-only HTTP tests: the demo model plus a two-version scale model."""
    root = tmp_path_factory.mktemp("repo")
    write_demo_repository(root)
    write_model(root / "scale" / "1" / "model.onnx", scale_model(2.0))
    write_model(root / "scale" / "2" / "model.onnx", scale_model(3.0))
    with serving(settings_for(root, max_request_bytes=1_000_000)) as server:
        yield server


@pytest.fixture
def grpc_client(server: ServerThread) -> Iterator[InferenceServerClient]:
    """tritonclient's gRPC client on the requesting module's ``server`` fixture."""
    with InferenceServerClient(url=f"127.0.0.1:{server.settings.grpc_port}") as client:
        yield client
