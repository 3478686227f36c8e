"""The interface between the data plane and whatever runs models (see ``batching.py``)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol

import numpy as np

from service.model import ModelVersion


class Scheduler(Protocol):
    """Runs a model on already validated inputs."""

    async def run(
        self, model: ModelVersion, feeds: dict[str, np.ndarray], output_names: Sequence[str]
    ) -> list[np.ndarray]: ...

    def release(self, model: ModelVersion) -> None:
        """Forget per-version state when a version is unloaded (called from any thread)."""

    def close(self) -> None: ...
