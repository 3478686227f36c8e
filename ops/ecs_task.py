"""Start one ECS task and follow it to the end, handling what RunTask itself does not.

RunTask answers HTTP 200 even when it placed nothing (the reasons are in ``failures``); it
returns before the task runs; and it says nothing about how the task ended. This module reads
``failures``, polls DescribeTasks until STOPPED (with an injectable sleep and clock, so tests
never wait), and turns the stopped task into a verdict: ran and exited 0, failed to start, or
exited non-zero.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

FARGATE = "FARGATE"

# Exit codes of `python -m ops run-task` (documented in docs/operations.md).
EXIT_OK = 0
EXIT_ERROR = 1
EXIT_USAGE = 2
EXIT_NOT_PLACED = 3
EXIT_FAILED_TO_START = 4
EXIT_TASK_FAILED = 5
EXIT_TIMEOUT = 6

_FAILURE_HINTS: tuple[tuple[str, str], ...] = (
    ("RESOURCE:MEMORY", "no container instance has enough free memory: scale out the capacity"),
    ("RESOURCE:CPU", "no container instance has enough free CPU: scale out the capacity"),
    ("RESOURCE:GPU", "no container instance has a free GPU: scale out the GPU capacity provider"),
    ("RESOURCE:PORTS", "the ports the task needs are taken on every instance"),
    ("AGENT", "the ECS agent on the chosen instance is disconnected; check or replace it"),
    ("ATTRIBUTE", "no instance matches the task's placement constraints or attributes"),
    ("MISSING", "the cluster or task definition was not found (wrong region or name?)"),
    (
        "limit",
        "a quota was hit; Fargate On-Demand and Fargate Spot vCPUs are separate Service Quotas "
        "(check both in Service Quotas > AWS Fargate)",
    ),
    ("Capacity is unavailable", "no Fargate (Spot) capacity right now: retry, or use FARGATE"),
)
_STOP_HINTS: tuple[tuple[str, str], ...] = (
    (
        "CannotPullContainerError",
        "check the image URI and tag, the execution role's ECR permissions, and that the "
        "subnets reach ECR (NAT gateway or VPC endpoints)",
    ),
    (
        "ResourceInitializationError",
        "the task's resources could not be set up (secrets, log configuration, EFS mount): "
        "check the execution role and the network path to those services",
    ),
    ("OutOfMemoryError", "the container ran out of memory: raise the task or container memory"),
    ("SpotInterruption", "Fargate Spot reclaimed the capacity: rerun, or use FARGATE"),
)


@dataclass
class TaskRequest:
    """Everything RunTask needs, already merged from arguments and stack outputs."""

    cluster: str
    task_definition: str
    subnets: list[str] = field(default_factory=list)
    security_groups: list[str] = field(default_factory=list)
    assign_public_ip: bool = False
    capacity: str = FARGATE
    container: str | None = None
    command: list[str] | None = None
    environment: dict[str, str] = field(default_factory=dict)
    started_by: str = "ops-run-task"

    def params(self, client_token: str | None = None) -> dict[str, Any]:
        """RunTask parameters. FARGATE uses the launch type (no cluster association needed);
        any other value is a capacity provider (FARGATE_SPOT, a GPU EC2 provider...)."""
        params: dict[str, Any] = {
            "cluster": self.cluster,
            "taskDefinition": self.task_definition,
            "count": 1,
            "startedBy": self.started_by,
            "propagateTags": "TASK_DEFINITION",
            "enableECSManagedTags": True,
            "clientToken": client_token or str(uuid.uuid4()),
        }
        if self.capacity == FARGATE:
            params["launchType"] = FARGATE
        else:
            params["capacityProviderStrategy"] = [{"capacityProvider": self.capacity, "weight": 1}]
        if self.subnets:
            params["networkConfiguration"] = {
                "awsvpcConfiguration": {
                    "subnets": self.subnets,
                    "securityGroups": self.security_groups,
                    "assignPublicIp": "ENABLED" if self.assign_public_ip else "DISABLED",
                }
            }
        if self.container:
            override: dict[str, Any] = {"name": self.container}
            if self.command is not None:
                override["command"] = self.command
            if self.environment:
                override["environment"] = [
                    {"name": k, "value": v} for k, v in sorted(self.environment.items())
                ]
            params["overrides"] = {"containerOverrides": [override]}
        return params


@dataclass(frozen=True)
class PlacementFailure:
    """One entry of RunTask's ``failures``."""

    arn: str
    reason: str
    detail: str
    hint: str | None

    def __str__(self) -> str:
        text = f"{self.reason} (arn: {self.arn or '-'}; detail: {self.detail or '-'})"
        return f"{text}\n    hint: {self.hint}" if self.hint else text


def _hint(text: str, table: tuple[tuple[str, str], ...]) -> str | None:
    return next((hint for needle, hint in table if needle.lower() in text.lower()), None)


def placement_failures(response: dict[str, Any]) -> list[PlacementFailure]:
    """The ``failures`` of a RunTask answer, each with a hint at the usual fix."""
    return [
        PlacementFailure(
            f.get("arn", ""),
            f.get("reason", ""),
            f.get("detail", ""),
            _hint(f"{f.get('reason', '')} {f.get('detail', '')}", _FAILURE_HINTS),
        )
        for f in response.get("failures", [])
    ]


@dataclass
class WaitResult:
    """Where the task was when waiting ended."""

    task: dict[str, Any] | None
    timed_out: bool
    started: bool  # reached RUNNING at some point
    elapsed: float


StatusCallback = Callable[[dict[str, Any] | None, float], None]


def wait_for_stop(
    ecs: Any,
    cluster: str,
    task_arn: str,
    *,
    timeout: float,
    poll_interval: float = 6.0,
    sleep: Callable[[float], None] = time.sleep,
    clock: Callable[[], float] = time.monotonic,
    on_status: StatusCallback | None = None,
) -> WaitResult:
    """Poll DescribeTasks until the task is STOPPED or ``timeout`` seconds have passed.

    A just-started task can be briefly unknown to DescribeTasks (eventual consistency), so a
    MISSING answer is reported as such and polled again rather than treated as an error.
    """
    start = clock()
    task: dict[str, Any] | None = None
    started = False
    while True:
        answer = ecs.describe_tasks(cluster=cluster, tasks=[task_arn])
        found = answer.get("tasks") or []
        elapsed = clock() - start
        if found:
            task = found[0]
            started = started or task.get("lastStatus") == "RUNNING" or "startedAt" in task
        if on_status is not None:
            on_status(task if found else None, elapsed)
        if task is not None and task.get("lastStatus") == "STOPPED":
            return WaitResult(task, False, started, elapsed)
        if elapsed >= timeout:
            return WaitResult(task, True, started, elapsed)
        sleep(min(poll_interval, max(timeout - elapsed, 0.0)))


@dataclass
class Verdict:
    """How a stopped task ended, as an exit code plus lines for the operator."""

    exit_code: int
    headline: str
    details: list[str]


def judge(task: dict[str, Any], started: bool, container: str | None = None) -> Verdict:
    """Turn a STOPPED task into a verdict.

    ``container``: the container whose exit code decides (the one given --container); without
    it every container must exit 0, sidecars included.
    """
    stop_code = task.get("stopCode", "")
    reason = task.get("stoppedReason", "")
    containers = task.get("containers", [])
    details = [
        f"container {c.get('name')}: exit code {c.get('exitCode', 'none')}"
        + (f", reason: {c['reason']}" if c.get("reason") else "")
        for c in containers
    ]
    if reason or stop_code:
        details.insert(0, f"stop code {stop_code or '-'}: {reason or '-'}")
    everything = " ".join([stop_code, reason, *(c.get("reason", "") for c in containers)])
    hint = _hint(everything, _STOP_HINTS)
    if hint:
        details.append(f"hint: {hint}")
    if stop_code == "TaskFailedToStart" or not (started or "startedAt" in task):
        return Verdict(EXIT_FAILED_TO_START, "task failed to start", details)
    judged = [c for c in containers if container is None or c.get("name") == container]
    if container is not None and not judged:
        return Verdict(
            EXIT_TASK_FAILED, f"container {container!r} is not in the stopped task", details
        )
    bad = [c for c in judged if c.get("exitCode") != 0]
    if bad:
        names = ", ".join(f"{c.get('name')}={c.get('exitCode', 'none')}" for c in bad)
        return Verdict(EXIT_TASK_FAILED, f"task failed: non-zero exit ({names})", details)
    return Verdict(EXIT_OK, "task succeeded: exit code 0", details)


@dataclass
class Outcome:
    """How one run ended: the run-task exit code, a headline and details for the operator."""

    exit_code: int
    headline: str
    details: list[str]
    task_arn: str | None = None
    task: dict[str, Any] | None = None
    elapsed: float = 0.0

    @property
    def ok(self) -> bool:
        return self.exit_code == EXIT_OK


def run_to_completion(
    ecs: Any,
    request: TaskRequest,
    *,
    timeout: float,
    poll_interval: float = 6.0,
    stop_on_timeout: bool = True,
    sleep: Callable[[float], None] = time.sleep,
    clock: Callable[[], float] = time.monotonic,
    on_status: StatusCallback | None = None,
    on_started: Callable[[str], None] | None = None,
    client_token: str | None = None,
) -> Outcome:
    """RunTask, read its ``failures``, wait for STOPPED and judge the stopped task.

    The one composition of the pieces above, used by ``python -m ops run-task``, the deploy-time
    model publish (components/model_publish.py) and ``python -m ops smoke``: every way the run
    can end is an :class:`Outcome` with the run-task exit codes. ``on_started`` gets the task ARN
    as soon as RunTask placed it. API errors (botocore's ClientError) propagate.
    """
    answer = ecs.run_task(**request.params(client_token))
    failures = placement_failures(answer)
    tasks = answer.get("tasks") or []
    if failures or not tasks:
        return Outcome(
            EXIT_NOT_PLACED,
            f"RunTask answered 200 but placed no task ({len(failures)} failure(s))",
            [str(f) for f in failures],
        )
    task_arn = tasks[0]["taskArn"]
    if on_started is not None:
        on_started(task_arn)
    result = wait_for_stop(
        ecs,
        request.cluster,
        task_arn,
        timeout=timeout,
        poll_interval=poll_interval,
        sleep=sleep,
        clock=clock,
        on_status=on_status,
    )
    if result.timed_out:
        state = (result.task or {}).get("lastStatus", "MISSING")
        what = "did not start" if not result.started else "did not finish"
        details = [f"last status {state}"]
        if stop_on_timeout:
            ecs.stop_task(cluster=request.cluster, task=task_arn, reason="timed out waiting")
            details.append("the task was asked to stop")
        return Outcome(
            EXIT_TIMEOUT,
            f"the task {what} within {timeout:g}s",
            details,
            task_arn,
            result.task,
            result.elapsed,
        )
    assert result.task is not None  # STOPPED implies a task was seen
    verdict = judge(result.task, result.started, request.container)
    return Outcome(
        verdict.exit_code,
        verdict.headline,
        verdict.details,
        task_arn,
        result.task,
        result.elapsed,
    )
