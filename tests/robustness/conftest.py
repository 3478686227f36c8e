"""Shared fixtures: the service as a child process (``python -m service``), as in production."""

from __future__ import annotations

import ctypes
import os
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from hypothesis import settings

from bench.soak import ServiceProcess

# Hypothesis explores new inputs on every run, which is how it found the UINT64 and version
# number bugs. In CI (``CI=true``, which GitHub Actions sets) and in ``make test`` the runs must
# be reproducible: the "ci" profile derandomizes (the same examples every run, from a seed
# derived from each test) and ignores the local example database. Failures found while
# exploring are pinned with ``@example`` so they stay covered either way.
settings.register_profile("ci", derandomize=True, database=None, print_blob=True)
settings.register_profile("explore", print_blob=True)
settings.load_profile(
    os.environ.get("HYPOTHESIS_PROFILE")
    or ("ci" if os.environ.get("CI", "").lower() == "true" else "explore")
)

PR_CAPBSET_DROP = 24
CAP_DAC_OVERRIDE = 1
CAP_DAC_READ_SEARCH = 2


def enforce_file_permissions() -> None:
    """Run in the child before exec: make the kernel apply file permissions to it.

    The tests run as root, which ignores permission bits through CAP_DAC_OVERRIDE and
    CAP_DAC_READ_SEARCH. Switching to an unprivileged uid is not possible here (the interpreter
    lives under /root, mode 0700), so the child drops those two capabilities from its bounding
    set instead: after exec it is root without them, and a ``chmod 000`` file owned by root is
    refused to it exactly as to the container's uid 10001 (EACCES from the kernel, not a mock).
    """
    libc = ctypes.CDLL(None, use_errno=True)
    for cap in (CAP_DAC_OVERRIDE, CAP_DAC_READ_SEARCH):
        if libc.prctl(PR_CAPBSET_DROP, cap, 0, 0, 0) != 0:
            raise OSError(ctypes.get_errno(), "prctl(PR_CAPBSET_DROP) failed")


Spawn = Callable[..., ServiceProcess]


@pytest.fixture
def spawn(tmp_path: Path) -> Iterator[Spawn]:
    """Start services; every one still running at the end of the test is killed."""
    started: list[ServiceProcess] = []

    def start(model_dir: Path, **env: str) -> ServiceProcess:
        preexec = enforce_file_permissions if os.geteuid() == 0 else None
        log = tmp_path / f"service-{len(started)}.log"
        service = ServiceProcess(model_dir, log, env=env, preexec=preexec).start()
        started.append(service)
        return service

    yield start
    for service in started:
        service.kill()


def wait_for_record(
    service: ServiceProcess,
    predicate: Callable[[dict[str, Any]], bool],
    timeout: float = 30.0,
    skip: int = 0,
) -> dict[str, Any]:
    """The first JSON log record matching ``predicate`` (after the first ``skip`` records)."""
    deadline = time.monotonic() + timeout
    while True:
        for record in service.records()[skip:]:
            if predicate(record):
                return record
        assert service.proc is not None
        if service.proc.poll() is not None or time.monotonic() > deadline:
            raise AssertionError(f"no matching log record; log tail:\n{service.tail()}")
        time.sleep(0.05)
