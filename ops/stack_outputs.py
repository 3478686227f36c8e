"""Settings for a one-off task, read from ``pulumi stack output --json`` saved to a file.

Explicit command-line values always win; the stack's outputs fill in the rest, so an operator
runs a task with the exact cluster, subnets and security group the service uses without
copying IDs around. Several keys are accepted per setting (first found wins) so older stacks
and the GPU variant work too.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any

OUTPUT_KEYS: dict[str, tuple[str, ...]] = {
    "cluster": ("clusterName", "clusterArn"),
    "subnets": ("privateSubnetIds", "subnetIds"),
    "security_groups": ("taskSecurityGroupIds", "taskSecurityGroupId"),
    "log_group": ("logGroup", "logGroupName", "errorLogGroupName"),
    "capacity": ("capacityProvider", "capacityProviderName"),
}
DEFAULT_TASK_DEFINITION_KEY = "taskDefinitionArn"


class StackOutputsError(ValueError):
    """The outputs file is missing, unreadable or not a JSON object."""


def load_outputs(path: Path) -> dict[str, Any]:
    """The outputs as a dict; the file is what ``pulumi stack output --json > FILE`` writes."""
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise StackOutputsError(
            f"{path} not found; create it with: pulumi stack output --json > {path}"
        ) from None
    except (OSError, json.JSONDecodeError) as exc:
        raise StackOutputsError(f"{path}: not readable as JSON ({exc})") from exc
    if not isinstance(data, dict):
        raise StackOutputsError(f"{path}: expected a JSON object of stack outputs")
    return data


def as_list(value: Any) -> list[str]:
    """A list of IDs from a JSON list, a comma-separated string, or a single string."""
    if value is None:
        return []
    if isinstance(value, list | tuple):
        return [str(v) for v in value if str(v)]
    return [v.strip() for v in str(value).split(",") if v.strip()]


def lookup(outputs: Mapping[str, Any], setting: str) -> Any:
    """The first present output among the keys accepted for ``setting``."""
    for key in OUTPUT_KEYS[setting]:
        if outputs.get(key) not in (None, "", []):
            return outputs[key]
    return None
