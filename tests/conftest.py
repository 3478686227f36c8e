"""Suite-wide defaults."""

from __future__ import annotations

from collections.abc import Iterator

import pytest


@pytest.fixture(autouse=True, scope="session")
def _no_default_grpc_port() -> Iterator[None]:
    """Apps built by tests do not bind gRPC's default port 8001: tests run many apps (module-
    scoped servers too, hence a session fixture, set up before any of them), and a developer may
    be serving on 8001. gRPC tests pass a free port explicitly."""
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("GRPC_PORT", "0")
        yield
