"""Run every rule over a list of resources without the Pulumi engine.

This mirrors what the engine does with the pack (per-resource checks on each resource, stack
checks on all of them, enforcement levels and properties from a ``--policy-pack-config`` file),
so tests can evaluate a mocked stack exactly as ``pulumi preview --policy-pack policy`` would.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from .model import Enforcement, ResourceRule, Rule, StackResource, Violation
from .registry import RULES

CONFIG_DIR = Path(__file__).resolve().parent.parent / "config"


def load_stack_config(stack: str, config_dir: Path = CONFIG_DIR) -> dict[str, Any]:
    """The policy config CI passes for ``stack`` (``policy/config/<stack>.json``)."""
    path = config_dir / f"{stack}.json"
    if not path.is_file():
        raise FileNotFoundError(
            f"no policy config for stack {stack!r}: create {path} (an empty object {{}} is fine)"
        )
    loaded = json.loads(path.read_text())
    if not isinstance(loaded, dict):
        raise ValueError(f"{path} must hold a JSON object, not {type(loaded).__name__}")
    return loaded


def _level(value: Any, where: str) -> Enforcement:
    text = str(value)
    if text == "remediate":  # no remediations here; the engine treats them as mandatory
        return Enforcement.MANDATORY
    try:
        return Enforcement(text)
    except ValueError:
        accepted = ", ".join(e.value for e in Enforcement)
        raise ValueError(f"{where}: enforcement level {text!r}; accepted: {accepted}") from None


def resolve(rule: Rule, config: Mapping[str, Any]) -> tuple[Enforcement, dict[str, Any]]:
    """Enforcement level and properties for ``rule``: schema defaults, then ``all``, then the
    rule's own entry (a level string, or an object with ``enforcementLevel`` and properties)."""
    level = rule.enforcement
    props: dict[str, Any] = {
        k: v["default"] for k, v in rule.config_schema.items() if "default" in v
    }
    everything = config.get("all")
    if isinstance(everything, str):
        level = _level(everything, "all")
    elif isinstance(everything, Mapping) and "enforcementLevel" in everything:
        level = _level(everything["enforcementLevel"], "all")
    entry = config.get(rule.name)
    if isinstance(entry, str):
        level = _level(entry, rule.name)
    elif isinstance(entry, Mapping):
        for key, value in entry.items():
            if key == "enforcementLevel":
                level = _level(value, rule.name)
            else:
                props[key] = value
    return level, props


def evaluate(
    resources: Sequence[StackResource], config: Mapping[str, Any] | None = None
) -> list[Violation]:
    """Every violation of every enabled rule, advisory ones included."""
    config = config or {}
    unknown = set(config) - {"all"} - {rule.name for rule in RULES}
    if unknown:
        raise ValueError(f"policy config names unknown policies: {sorted(unknown)}")
    violations: list[Violation] = []
    for rule in RULES:
        level, props = resolve(rule, config)
        if level is Enforcement.DISABLED:
            continue
        if isinstance(rule, ResourceRule):
            for resource in resources:
                if resource.type_ not in rule.resource_types:
                    continue
                for message in rule.check(resource.type_, resource.props, props):
                    violations.append(
                        Violation(rule.name, level, resource.type_, resource.name, message)
                    )
        else:
            for resource, message in rule.check(resources, props):
                violations.append(
                    Violation(rule.name, level, resource.type_, resource.name, message)
                )
    return violations


def mandatory(violations: Sequence[Violation]) -> list[Violation]:
    return [v for v in violations if v.enforcement is Enforcement.MANDATORY]
