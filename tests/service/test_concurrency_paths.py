"""The batcher's concurrency contract and the accelerator check, pinned so that breaking them
fails a test (issue 15: each of these mutations used to pass the whole suite).

- the queue admits exactly ``max_queue_size`` waiting requests, not one more;
- while traffic flows, a worker waits up to ``max_queue_delay_us`` for a fuller batch;
- a request cancelled while queued is never run;
- asking for CUDA and getting ONNX Runtime's silent CPU fallback fails the model, loudly.

The batcher tests drive ``VersionQueue`` with a scripted model whose runs block until released,
so that what is queued when is decided by the test, not by timing.
"""

from __future__ import annotations

import asyncio
import threading
import time
from pathlib import Path

import numpy as np
import pytest

from service.batching import VersionQueue
from service.errors import ServerBusy
from service.metrics import Metrics
from service.model_config import BatchingConfig
from tests.service.conftest import settings_for
from tests.service.helpers import client, scale_model, serving, write_model


class ScriptedModel:
    """A model whose runs record the request ids they were given (the first value of each row)
    and, while ``gate`` is clear, block inside ``run``."""

    name, version = "scripted", 1
    output_names = ["y"]
    output_index = {"y": 0}

    def __init__(self, config: BatchingConfig) -> None:
        self.batching = config
        self.dynamic_batching = config.batching
        self.gate = threading.Event()
        self.running = threading.Event()
        self.runs: list[list[int]] = []

    def run(self, feeds: dict[str, np.ndarray]) -> list[np.ndarray]:
        self.running.set()
        self.gate.wait(30)
        x = feeds["x"]
        self.runs.append([int(v) for v in x[:, 0]])
        return [x * 2]


def request(ident: int) -> dict[str, np.ndarray]:
    return {"x": np.full((1, 3), ident, dtype=np.float32)}


async def wait_for(event: threading.Event) -> None:
    assert await asyncio.to_thread(event.wait, 30), "the worker never started the run"


@pytest.mark.parametrize("batch", [1, 8])
def test_the_queue_admits_exactly_max_queue_size_waiting_requests(batch: int) -> None:
    config = BatchingConfig(max_batch_size=batch, max_queue_size=3)
    model = ScriptedModel(config)

    async def go() -> tuple[int, int]:
        queue = VersionQueue(model, config, Metrics())  # type: ignore[arg-type]
        running = queue.submit(request(0))
        await wait_for(model.running)  # request 0 left the queue: the worker runs it
        admitted, refused = [], 0
        for ident in range(1, 6):
            try:
                admitted.append(queue.submit(request(ident)))
            except ServerBusy:
                refused += 1
        model.gate.set()
        await asyncio.gather(running, *admitted)
        queue.close()
        return len(admitted), refused

    assert asyncio.run(go()) == (3, 2)


def test_while_traffic_flows_the_worker_waits_for_a_fuller_batch() -> None:
    config = BatchingConfig(max_batch_size=2, max_queue_delay_us=5_000_000)
    model = ScriptedModel(config)
    model.gate.set()

    async def go() -> tuple[float, float]:
        queue = VersionQueue(model, config, Metrics())  # type: ignore[arg-type]
        started = time.perf_counter()
        await queue.submit(request(1))  # idle: runs at once, no waiting for company
        idle = time.perf_counter() - started
        started = time.perf_counter()
        second = queue.submit(request(2))  # traffic now flows: the worker waits for more...
        await asyncio.sleep(0.2)
        third = queue.submit(request(3))  # ...and this one fills the batch
        await asyncio.gather(second, third)
        flowing = time.perf_counter() - started
        queue.close()
        return idle, flowing

    idle, flowing = asyncio.run(go())
    assert model.runs == [[1], [2, 3]]
    assert idle < 2.5, f"an idle request waited {idle:.2f} s for a batch"
    assert flowing < 4.5, "the worker waited past a full batch"


@pytest.mark.parametrize("batch", [1, 8])
def test_a_request_cancelled_while_queued_is_never_run(batch: int) -> None:
    config = BatchingConfig(max_batch_size=batch)
    model = ScriptedModel(config)

    async def go() -> None:
        queue = VersionQueue(model, config, Metrics())  # type: ignore[arg-type]
        first = queue.submit(request(1))
        await wait_for(model.running)
        # queued: 2 (cancelled, at the head), 3, 4 (cancelled, behind one a batch takes), 5
        queued = {ident: queue.submit(request(ident)) for ident in (2, 3, 4, 5)}
        for ident in (2, 4):  # the clients went away (their tasks were cancelled) while queued
            queued[ident].cancel()
        model.gate.set()
        await asyncio.gather(first, queued[3], queued[5])
        queue.close()

    asyncio.run(go())
    ran = [ident for run in model.runs for ident in run]
    assert ran == [1, 3, 5], f"cancelled requests were run: {model.runs}"


def test_cuda_asked_for_and_cpu_fallback_fails_the_model_not_silently_serves(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """EXECUTION_PROVIDER=cuda on a machine where the CUDA provider cannot start (here: no GPU,
    made to look present): ONNX Runtime quietly builds a CPU session. The model must be refused
    with the reason, and the service not ready, rather than serve on CPU at a fraction of the
    throughput it was sized for. (No GPU here: the CUDA path itself is not exercised.)"""
    import onnxruntime as ort

    # onnxruntime-gpu is the runtime dependency: it lists CUDA even without a GPU
    assert "CUDAExecutionProvider" in ort.get_available_providers()
    monkeypatch.setattr("service.app.nvidia_gpu_present", lambda: True)
    write_model(tmp_path / "m" / "1" / "model.onnx", scale_model(2.0))
    with (
        serving(settings_for(tmp_path, execution_provider="cuda")) as server,
        client(server) as http,
    ):
        metadata = http.get("/v2/models/m")
        health = http.get("/health")
    assert metadata.status_code == 503, metadata.text
    error = metadata.json()["error"]
    assert (
        "asked for CUDAExecutionProvider but ONNX Runtime fell back to CPUExecutionProvider"
        in error
    )
    assert health.status_code == 503


def test_big_body_decodes_stay_within_the_byte_budget() -> None:
    """Decoding JSON multiplies memory: concurrent decodes may hold at most ``budget`` bytes of
    bodies at once (one request bigger than the budget still runs, alone)."""
    from service.decode_offload import ByteBudget

    budget = ByteBudget(100)
    active: list[int] = []
    seen: list[list[int]] = []

    async def decode(size: int) -> int:
        active.append(size)
        seen.append(sorted(active))
        await asyncio.sleep(0.01)
        active.remove(size)
        return size

    sizes = [60, 30, 50, 40, 150, 10, 90, 20]

    async def go() -> list[int]:
        return await asyncio.gather(*(budget.run(s, decode, s) for s in sizes))

    assert asyncio.run(go()) == sizes
    assert all(sum(now) <= 100 or now == [150] for now in seen), seen
    assert max(len(now) for now in seen) > 1, "nothing ran concurrently: the budget serialises"
    assert budget.used == 0
