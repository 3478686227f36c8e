"""Did the service's deployment of a task definition complete, or was it rolled back, and why?

A service that reached "steady state" is not proof that the wanted revision runs: when the
circuit breaker or a deployment alarm fails a deployment with rollback, ECS returns to the last
completed deployment and the service is steady again, on the *old* task definition (the
Terraform/Pulumi provider's ``wait_for_steady_state`` then reports success:
hashicorp/terraform-provider-aws#19519). This module reads DescribeServices and decides:

- the deployment of the wanted task definition is PRIMARY with ``rolloutState`` COMPLETED: done;
- it is FAILED, or another task definition is PRIMARY again: rolled back, with the deployment's
  ``rolloutStateReason``, the service's recent events and the stopped tasks' reasons
  (ListTasks ``startedBy`` = the deployment ID, which ECS sets on the tasks it starts);
- otherwise (IN_PROGRESS, including the bake time ECS watches the alarms after the tasks are
  healthy): poll again until ``timeout``.

Used by the deploy-time check (components/deployment_check.py) and by
``python -m ops deployment`` (print the verdict on demand).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from ops.ecs_task import EXIT_OK, EXIT_TIMEOUT

EXIT_ROLLED_BACK = 7
EVENTS_SHOWN = 5
STOPPED_TASKS_SHOWN = 5


@dataclass
class DeploymentVerdict:
    """Where the deployment stands, with the lines an operator needs."""

    exit_code: int
    headline: str
    details: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return self.exit_code == EXIT_OK


def _service(ecs: Any, cluster: str, service: str) -> dict[str, Any]:
    answer = ecs.describe_services(cluster=cluster, services=[service])
    found = answer.get("services") or []
    if not found:
        reasons = ", ".join(f.get("reason", "?") for f in answer.get("failures", []))
        raise LookupError(f"service {service!r} not found in {cluster!r} ({reasons or 'MISSING'})")
    return found[0]


def stopped_task_reasons(ecs: Any, cluster: str, deployment_id: str) -> list[str]:
    """Why the tasks ECS started for this deployment stopped (ECS keeps them about an hour)."""
    arns = ecs.list_tasks(cluster=cluster, startedBy=deployment_id, desiredStatus="STOPPED").get(
        "taskArns", []
    )[:STOPPED_TASKS_SHOWN]
    if not arns:
        return []
    lines = []
    for task in ecs.describe_tasks(cluster=cluster, tasks=arns).get("tasks", []):
        containers = "; ".join(
            f"{c.get('name')}: exit {c.get('exitCode', 'none')}"
            + (f" ({c['reason']})" if c.get("reason") else "")
            for c in task.get("containers", [])
        )
        lines.append(
            f"stopped task {task['taskArn'].rsplit('/', 1)[-1]}: "
            f"{task.get('stopCode', '-')}: {task.get('stoppedReason', '-')}"
            + (f" [{containers}]" if containers else "")
        )
    return lines


def judge_deployment(
    ecs: Any, cluster: str, service: str, task_definition: str | None
) -> DeploymentVerdict | None:
    """The verdict now, or None while the deployment is still in progress.

    ``task_definition`` None: judge the newest deployment, whatever its revision (for services
    whose revision is deployed from outside Pulumi)."""
    svc = _service(ecs, cluster, service)
    deployments = svc.get("deployments", [])
    primary = next((d for d in deployments if d.get("status") == "PRIMARY"), None)
    if task_definition is None:
        target = primary
    else:
        target = next((d for d in deployments if d.get("taskDefinition") == task_definition), None)
    events = [f"event: {e.get('message', '')}" for e in svc.get("events", [])[:EVENTS_SHOWN]]
    if target is None:
        running = primary.get("taskDefinition") if primary else "nothing"
        return DeploymentVerdict(
            EXIT_ROLLED_BACK,
            f"the deployment of {task_definition} was rolled back; {running} is running",
            events,
        )
    state = target.get("rolloutState")
    rolled_back = target is not primary and state != "IN_PROGRESS"
    if state == "FAILED" or rolled_back:
        details = []
        if target.get("rolloutStateReason"):
            details.append(f"reason: {target['rolloutStateReason']}")
        details.append(
            f"tasks: {target.get('runningCount', 0)} running, "
            f"{target.get('failedTasks', 0)} failed of {target.get('desiredCount', 0)} desired"
        )
        details += stopped_task_reasons(ecs, cluster, target["id"])
        details += events
        if primary is not None and primary is not target:
            details.insert(0, f"ECS rolled back to {primary.get('taskDefinition')}")
        return DeploymentVerdict(
            EXIT_ROLLED_BACK,
            f"deployment {target['id']} of {target.get('taskDefinition')} failed",
            details,
        )
    settled = state == "COMPLETED" or (
        state is None  # no rolloutState (older deployments): the services-stable test
        and len(deployments) == 1
        and target.get("runningCount") == target.get("desiredCount")
    )
    if target is primary and settled:
        return DeploymentVerdict(
            EXIT_OK,
            f"deployment {target['id']} of {target.get('taskDefinition')} completed "
            f"({target.get('runningCount', 0)} tasks running)",
        )
    return None


def wait_for_deployment(
    ecs: Any,
    cluster: str,
    service: str,
    task_definition: str | None,
    *,
    timeout: float,
    poll_interval: float = 15.0,
    sleep: Callable[[float], None] = time.sleep,
    clock: Callable[[], float] = time.monotonic,
) -> DeploymentVerdict:
    """Poll :func:`judge_deployment` until it has a verdict or ``timeout`` seconds passed."""
    start = clock()
    while True:
        verdict = judge_deployment(ecs, cluster, service, task_definition)
        if verdict is not None:
            return verdict
        elapsed = clock() - start
        if elapsed >= timeout:
            svc = _service(ecs, cluster, service)
            states = ", ".join(
                f"{d.get('status')} {d.get('taskDefinition')} {d.get('rolloutState', '?')} "
                f"({d.get('runningCount', 0)}/{d.get('desiredCount', 0)})"
                for d in svc.get("deployments", [])
            )
            return DeploymentVerdict(
                EXIT_TIMEOUT,
                f"the deployment did not finish within {timeout:g}s",
                [f"deployments: {states}"],
            )
        sleep(min(poll_interval, max(timeout - elapsed, 0.0)))
