"""A model folder's configuration file, whichever form it has: Triton's ``config.pbtxt`` or this
service's ``config.json`` (same field names). Both at once is an error: which one wins would be a
guess. Everything the loader and the effective-configuration endpoints need comes from here.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import orjson

from service.model_config import CONFIG_FILENAME, BatchingConfig, load_model_config
from service.model_config_pbtxt import (
    PBTXT_FILENAME,
    batching_of,
    check_identity,
    ignored_fields,
    parse_pbtxt,
    version_policy_of,
)
from service.version_policy import ALL, VersionPolicy, policy_from_json

log = logging.getLogger("service.model_config")

CONFIG_FILENAMES = (CONFIG_FILENAME, PBTXT_FILENAME)
_JSON_KEYS = {"max_batch_size", "dynamic_batching", "instance_group", "version_policy", "name"}
_JSON_DYNAMIC = {"max_queue_delay_microseconds", "max_queue_size"}


@dataclass(frozen=True)
class ModelFileConfig:
    """What a model's configuration file says (defaults where it says nothing)."""

    batching: BatchingConfig
    version_policy: VersionPolicy = ALL
    source: str | None = None  # file name, None without a file
    max_batch_size: int | None = None  # as declared, Triton's meaning; None: not declared
    ignored: tuple[str, ...] = ()
    pbtxt: Any = None  # the parsed inference.ModelConfig of a config.pbtxt


def _which(model_dir: Path) -> Path | None:
    present = [model_dir / n for n in CONFIG_FILENAMES if (model_dir / n).is_file()]
    if len(present) > 1:
        raise ValueError(
            f"model '{model_dir.name}' has both {CONFIG_FILENAME} and {PBTXT_FILENAME}; "
            "keep one of them"
        )
    return present[0] if present else None


def _read_json(path: Path) -> dict[str, Any]:
    try:
        raw = orjson.loads(path.read_bytes())
    except orjson.JSONDecodeError as exc:
        raise ValueError(f"{path} is not valid JSON: {exc}") from None
    if not isinstance(raw, dict):
        raise ValueError(f"{path} must hold a JSON object")
    return raw


def _json_ignored(raw: dict[str, Any]) -> list[str]:
    ignored = [k for k in raw if k not in _JSON_KEYS]
    dynamic = raw.get("dynamic_batching")
    if isinstance(dynamic, dict):
        ignored += [f"dynamic_batching.{k}" for k in dynamic if k not in _JSON_DYNAMIC]
    return sorted(ignored)


def read_model_config(model_dir: Path, defaults: BatchingConfig) -> ModelFileConfig:
    """Read the folder's configuration file; ValueError names the file and what is wrong."""
    path = _which(model_dir)
    if path is None:
        return ModelFileConfig(batching=defaults)
    if path.name == PBTXT_FILENAME:
        config = parse_pbtxt(path)
        check_identity(config, model_dir.name)
        result = ModelFileConfig(
            batching=batching_of(config, defaults, model_dir.name),
            version_policy=version_policy_of(config),
            source=PBTXT_FILENAME,
            max_batch_size=config.max_batch_size,
            ignored=tuple(ignored_fields(config)),
            pbtxt=config,
        )
    else:
        raw = _read_json(path)
        policy = ALL
        if "version_policy" in raw:
            try:
                policy = policy_from_json(raw["version_policy"])
            except ValueError as exc:
                raise ValueError(f"{path}: {exc}") from None
        result = ModelFileConfig(
            batching=load_model_config(model_dir, defaults),
            version_policy=policy,
            source=CONFIG_FILENAME,
            max_batch_size=raw.get("max_batch_size"),
            ignored=tuple(_json_ignored(raw)),
        )
    if result.ignored:
        log.warning(
            "model configuration fields not supported, ignored",
            extra={"model": model_dir.name, "file": result.source, "fields": list(result.ignored)},
        )
    return result


def read_version_policy(model_dir: Path) -> VersionPolicy:
    """Only the version policy (the registry asks on every scan; no warnings logged)."""
    path = _which(model_dir)
    if path is None:
        return ALL
    if path.name == PBTXT_FILENAME:
        return version_policy_of(parse_pbtxt(path))
    raw = _read_json(path)
    return policy_from_json(raw["version_policy"]) if "version_policy" in raw else ALL
