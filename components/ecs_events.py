"""EventBridge patterns for ECS events, shared by the service and scheduled-task alerts.

Field values follow the ECS task state change event (ECS Developer Guide, "Amazon ECS task state
change events", https://docs.aws.amazon.com/AmazonECS/latest/developerguide/ecs_task_events.html)
and the stopped-task reasons ECS writes (same guide, "Amazon ECS stopped task error messages"):
a service task that failed its load balancer health checks stops with ``stoppedReason``
"Task failed ELB health checks in (target-group <arn>)", one that failed its container health
check with "Task failed container health checks"; a deployment or a scale-in stops tasks with
"Scaling activity initiated by (deployment ecs-svc/...)". All three carry ``stopCode``
ServiceSchedulerInitiated, so the reason, not the code, tells them apart.
"""

from __future__ import annotations

from typing import Any

# What Step Functions' ecs:runTask integration writes in a task's startedBy.
STEP_FUNCTIONS_STARTED_BY = "AWS Step Functions"
HEALTH_CHECK_STOP_REASONS = (
    "Task failed ELB health checks",
    "Task failed container health checks",
)


def task_stopped_nonzero_pattern(
    cluster_arn: str, group: str, *, exclude_started_by: str | None = None
) -> dict[str, Any]:
    """A task of ``group`` (``service:<name>`` or ``family:<family>``) in this cluster stopped
    with a non-zero container exit code. Containers without an exit code do not match.

    ``exclude_started_by``: tasks whose ``startedBy`` is this value do not match (their starter
    reports them); tasks with another or no ``startedBy`` (started by hand) still do.
    """
    detail: dict[str, Any] = {
        "clusterArn": [cluster_arn],
        "group": [group],
        "lastStatus": ["STOPPED"],
        "containers": {"exitCode": [{"anything-but": 0}]},
    }
    if exclude_started_by is not None:
        # anything-but never matches a missing field, hence the $or with exists: false.
        detail["$or"] = [
            {"startedBy": [{"anything-but": exclude_started_by}]},
            {"startedBy": [{"exists": False}]},
        ]
    return {"source": ["aws.ecs"], "detail-type": ["ECS Task State Change"], "detail": detail}


def task_stopped_unhealthy_pattern(cluster_arn: str, group: str) -> dict[str, Any]:
    """ECS stopped a task of ``group`` because it failed its load balancer or container health
    checks. The service exits 0 on SIGTERM, so the exit-code rule never sees these; deployments
    and scale-in (also ServiceSchedulerInitiated) have another reason and do not match."""
    return {
        "source": ["aws.ecs"],
        "detail-type": ["ECS Task State Change"],
        "detail": {
            "clusterArn": [cluster_arn],
            "group": [group],
            "lastStatus": ["STOPPED"],
            "stoppedReason": [{"prefix": reason} for reason in HEALTH_CHECK_STOP_REASONS],
        },
    }


# Input transformer of the health-check rule: a readable message (one quoted JSON string makes
# SNS deliver plain text). Only fields every stopped-task event carries.
UNHEALTHY_PATHS = {
    "task": "$.detail.taskArn",
    "group": "$.detail.group",
    "reason": "$.detail.stoppedReason",
    "time": "$.time",
}
UNHEALTHY_TEMPLATE = (
    '"ECS stopped task <task> (<group>) at <time> because it was unhealthy: <reason>. '
    'The service replaces it; repeated stops mean the model or the health check is failing."'
)
