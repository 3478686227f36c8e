"""Session-wide test setup and suite-wide defaults."""

from __future__ import annotations

from collections.abc import Iterator

import pytest


@pytest.fixture(scope="session", autouse=True)
def _resolve_requirements_in_background(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[None]:
    """tests/test_requirements.py asks pip (over the network) how the requirements resolve on
    three platforms; start that when the session begins, so it overlaps the other tests."""
    if any(item.module.__name__ == "tests.test_requirements" for item in request.session.items):
        from tests.test_requirements import start_resolutions

        start_resolutions(tmp_path_factory.mktemp("resolve"))
    yield


@pytest.fixture(autouse=True, scope="session")
def _no_default_grpc_port() -> Iterator[None]:
    """Apps built by tests do not bind gRPC's default port 8001: tests run many apps (module-
    scoped servers too, hence a session fixture, set up before any of them), and a developer may
    be serving on 8001. gRPC tests pass a free port explicitly."""
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("GRPC_PORT", "0")
        yield


@pytest.fixture(autouse=True)
def _main_thread_event_loop() -> Iterator[None]:
    """Pulumi's mocks take the main thread's event loop; a test that ran ``asyncio.run()``
    before leaves none (it sets the loop to None on exit), so give them a fresh one."""
    import asyncio

    try:
        asyncio.get_event_loop_policy().get_event_loop()
    except RuntimeError:
        asyncio.set_event_loop(asyncio.new_event_loop())
    yield
