"""EventBridge patterns for ECS events, shared by the service and scheduled-task alerts."""

from __future__ import annotations

from typing import Any


def task_stopped_nonzero_pattern(cluster_arn: str, group: str) -> dict[str, Any]:
    """A task of ``group`` (``service:<name>`` or ``family:<family>``) in this cluster stopped
    with a non-zero container exit code. Containers without an exit code do not match."""
    return {
        "source": ["aws.ecs"],
        "detail-type": ["ECS Task State Change"],
        "detail": {
            "clusterArn": [cluster_arn],
            "group": [group],
            "lastStatus": ["STOPPED"],
            "containers": {"exitCode": [{"anything-but": 0}]},
        },
    }
