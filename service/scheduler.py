"""How a validated request reaches ``ModelVersion.run``.

``DirectScheduler`` runs each request on its own in a thread pool (ORT releases the GIL, so the
event loop keeps serving). The batching scheduler in ``batching.py`` implements the same
interface and combines concurrent requests into one run.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Protocol

import numpy as np

from service.model import ModelVersion


class Scheduler(Protocol):
    """Runs a model on already validated inputs."""

    async def run(
        self, model: ModelVersion, feeds: dict[str, np.ndarray], output_names: Sequence[str]
    ) -> list[np.ndarray]: ...

    def release(self, model: ModelVersion) -> None:
        """Forget per-version state when a version is unloaded."""

    def close(self) -> None: ...


class DirectScheduler:
    """One model run per request, on a bounded thread pool."""

    def __init__(self, workers: int) -> None:
        self._executor = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="ort")

    async def run(
        self, model: ModelVersion, feeds: dict[str, np.ndarray], output_names: Sequence[str]
    ) -> list[np.ndarray]:
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self._executor, model.run, feeds, output_names)

    def release(self, model: ModelVersion) -> None:
        return None

    def close(self) -> None:
        self._executor.shutdown(wait=True)
