"""Per-model serving configuration: ``<model>/config.json`` next to the version folders.

Field names follow Triton's model configuration so the file reads familiar::

    {
      "max_batch_size": 32,
      "dynamic_batching": {"max_queue_delay_microseconds": 500, "max_queue_size": 256},
      "instance_group": [{"count": 2}]
    }

Anything left out takes the service-wide default from the environment (``MAX_BATCH_SIZE``,
``MAX_QUEUE_DELAY_US``, ``MAX_QUEUE_SIZE``, ``INSTANCE_COUNT``). ``max_batch_size`` 0 or 1
turns batching off for the model.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import orjson
from pydantic import BaseModel, ConfigDict, Field, ValidationError

CONFIG_FILENAME = "config.json"


class BatchingConfig(BaseModel):
    """How requests to one model version are queued, combined and run."""

    model_config = ConfigDict(frozen=True)

    max_batch_size: int = Field(32, ge=0, le=65536)
    max_queue_delay_us: int = Field(0, ge=0, le=10_000_000)
    max_queue_size: int = Field(1024, ge=1)
    instance_count: int = Field(1, ge=1, le=64)
    # True when the model's own config file set max_batch_size: the user's word decides batching
    # (no probe of the first dimension, see batch_probe.py).
    explicit: bool = False

    @property
    def batching(self) -> bool:
        return self.max_batch_size > 1


def load_model_config(model_dir: Path, defaults: BatchingConfig) -> BatchingConfig:
    """Read ``config.json`` of a model folder over the defaults; a bad file raises ValueError."""
    path = model_dir / CONFIG_FILENAME
    if not path.is_file():
        return defaults
    try:
        raw: Any = orjson.loads(path.read_bytes())
    except orjson.JSONDecodeError as exc:
        raise ValueError(f"{path} is not valid JSON: {exc}") from None
    if not isinstance(raw, dict):
        raise ValueError(f"{path} must hold a JSON object")
    values: dict[str, Any] = {}
    if "max_batch_size" in raw:
        values["max_batch_size"] = raw["max_batch_size"]
        values["explicit"] = True
    dynamic = raw.get("dynamic_batching") or {}
    groups = raw.get("instance_group") or []
    if not isinstance(dynamic, dict):
        raise ValueError(f"{path}: dynamic_batching must be an object")
    if not isinstance(groups, list) or not all(isinstance(g, dict) for g in groups):
        raise ValueError(f'{path}: instance_group must be a list of objects like {{"count": 2}}')
    if "max_queue_delay_microseconds" in dynamic:
        values["max_queue_delay_us"] = dynamic["max_queue_delay_microseconds"]
    if "max_queue_size" in dynamic:
        values["max_queue_size"] = dynamic["max_queue_size"]
    if groups:
        values["instance_count"] = sum(int(g.get("count", 1)) for g in groups)
    try:
        return BatchingConfig(**(defaults.model_dump() | values))
    except ValidationError as exc:
        raise ValueError(f"{path}: {exc}") from None
