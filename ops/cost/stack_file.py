"""Read a stack file (``Pulumi.<stack>.yaml``) into :class:`StackConfig`, outside ``pulumi``.

The program reads its settings with ``pulumi.Config``; here the same loader runs on the values
of the file (set as the runtime's config, as the engine would), so the estimate and the
deployment can never disagree on a key, a default or a validation rule.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pulumi
import yaml

from components.stack_config import StackConfig, unknown_keys

ROOT = Path(__file__).resolve().parents[2]
DEFAULT_REGION = "us-east-1"


class StackFileError(ValueError):
    """The stack file is missing, malformed or has keys the program does not know."""


def project_name(root: Path = ROOT) -> str:
    return yaml.safe_load((root / "Pulumi.yaml").read_text(encoding="utf-8"))["name"]


def stack_path(stack: str, root: Path = ROOT) -> Path:
    return root / f"Pulumi.{stack}.yaml"


def load_stack(stack: str, root: Path = ROOT) -> tuple[StackConfig, str]:
    """(config, region) of ``Pulumi.<stack>.yaml``; raises StackFileError naming the problem."""
    path = stack_path(stack, root)
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    except FileNotFoundError:
        stacks = sorted(p.name for p in root.glob("Pulumi.*.yaml") if p.name != "Pulumi.yaml")
        raise StackFileError(f"{path.name} not found; stack files here: {stacks}") from None
    except yaml.YAMLError as err:
        raise StackFileError(f"{path.name}: not valid YAML ({err})") from err
    config: dict[str, Any] = data.get("config") or {}
    project = project_name(root)
    unknown = unknown_keys(config, project)
    if unknown:
        raise StackFileError(f"{path.name}: unknown keys {unknown}")
    region = str(config.get("aws:region") or DEFAULT_REGION)
    values = {k: v if isinstance(v, str) else json.dumps(v) for k, v in config.items()}
    pulumi.runtime.set_all_config(values)
    try:
        cfg = StackConfig.from_config(pulumi.Config(project))
    finally:
        pulumi.runtime.set_all_config({})
    return cfg, region
