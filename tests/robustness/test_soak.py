"""Short soak: a few thousand mixed requests must not grow the service's memory.

The same code as ``python -m bench.soak`` (which runs 50,000), shortened. Resident memory is
read from ``/proc/<pid>/status`` after a warm-up (allocator pools, ONNX Runtime's arena and
lazily imported code settle there) and again at the end. The bound is generous against noise
(measured growth is well under 1 MiB) yet a leak of a few KiB per request, such as keeping every
request body, exceeds it.
"""

from __future__ import annotations

from pathlib import Path

from bench.models import write_mlp
from bench.soak import soak
from tests.robustness.conftest import Spawn

REQUESTS = 3000
BOUND_MIB = 8


def test_rss_stays_flat_over_thousands_of_requests(tmp_path: Path, spawn: Spawn) -> None:
    write_mlp(tmp_path / "models")
    service = spawn(tmp_path / "models")
    service.wait_ready()
    result = soak(service.base, service.pid, REQUESTS, warmup=1000, clients=4)
    summary = result.summary()
    assert result.statuses["200"] > REQUESTS // 2, summary
    assert not result.unexpected, f"requests answered with the wrong status: {summary}"
    assert result.growth_kib < BOUND_MIB * 1024, f"RSS grew: {summary}, samples {result.samples}"
    assert service.terminate() == 0
