"""Suite-wide defaults."""

from __future__ import annotations

import pytest


@pytest.fixture(autouse=True)
def _no_default_grpc_port(monkeypatch: pytest.MonkeyPatch) -> None:
    """Apps built by tests do not bind gRPC's default port 8001 (tests run many apps, and a
    developer may be serving on it); gRPC tests pass a free port explicitly."""
    monkeypatch.setenv("GRPC_PORT", "0")
