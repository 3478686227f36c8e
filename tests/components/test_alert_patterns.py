"""The alert rules' EventBridge patterns against real-shaped ECS Task State Change events.

Events follow the example in the ECS Developer Guide, "Amazon ECS task state change events"
(https://docs.aws.amazon.com/AmazonECS/latest/developerguide/ecs_task_events.html); stop codes
and reasons are those ECS documents in "Amazon ECS stopped task error messages" /
"Stopped tasks error codes" (ServiceSchedulerInitiated with "Task failed ELB health checks in
(target-group ...)", "Task failed container health checks", and "Scaling activity initiated by
(deployment ecs-svc/...)" for deployments and scale-in; EssentialContainerExited otherwise).
The patterns are read from the rules the components register under Pulumi mocks, and matched
with tests/eventbridge_matcher.py (moto cannot match arrays of objects)."""

from __future__ import annotations

import copy
import json
from typing import Any

import pytest

from tests.components.test_alert_delivery import CLUSTER_ARN, RULE, _scheduled, _service
from tests.eventbridge_matcher import matches
from tests.pulumi_mocks import ACCOUNT, REGION

TARGET_GROUP = (
    f"arn:aws:elasticloadbalancing:{REGION}:{ACCOUNT}:targetgroup/svc-tg/0123456789abcdef"
)
TASK = f"arn:aws:ecs:{REGION}:{ACCOUNT}:task/inference/5a3c0f9e1d2b4c6a8e7f9a0b1c2d3e4f"


def task_event(
    *,
    group: str = "service:svc",
    stop_code: str = "ServiceSchedulerInitiated",
    reason: str = f"Task failed ELB health checks in (target-group {TARGET_GROUP})",
    exit_codes: dict[str, int | None] | None = None,
    started_by: str | None = "ecs-svc/1234567890123456789",
) -> dict[str, Any]:
    """An ECS Task State Change event for a task that reached STOPPED."""
    exit_codes = {"app": 0, "log-router": 0} if exit_codes is None else exit_codes
    containers = []
    for name, code in exit_codes.items():
        container: dict[str, Any] = {
            "containerArn": f"arn:aws:ecs:{REGION}:{ACCOUNT}:container/inference/x/{name}",
            "lastStatus": "STOPPED",
            "name": name,
            "image": f"{ACCOUNT}.dkr.ecr.{REGION}.amazonaws.com/{name}:c0ffee",
            "taskArn": TASK,
            "networkInterfaces": [{"attachmentId": "eni-att", "privateIpv4Address": "10.0.1.9"}],
            "cpu": "0",
        }
        if code is not None:
            container["exitCode"] = code
        containers.append(container)
    detail: dict[str, Any] = {
        "attachments": [{"id": "eni-att", "type": "eni", "status": "DELETED", "details": []}],
        "availabilityZone": f"{REGION}a",
        "clusterArn": CLUSTER_ARN,
        "containers": containers,
        "createdAt": "2026-12-03T02:58:11.281Z",
        "launchType": "FARGATE",
        "cpu": "2048",
        "memory": "4096",
        "desiredStatus": "STOPPED",
        "group": group,
        "lastStatus": "STOPPED",
        "overrides": {"containerOverrides": [{"name": "app"}, {"name": "log-router"}]},
        "connectivity": "CONNECTED",
        "stopCode": stop_code,
        "stoppedAt": "2026-12-03T03:04:55.123Z",
        "stoppedReason": reason,
        "stoppingAt": "2026-12-03T03:04:21.650Z",
        "taskArn": TASK,
        "taskDefinitionArn": f"arn:aws:ecs:{REGION}:{ACCOUNT}:task-definition/svc:7",
        "updatedAt": "2026-12-03T03:04:55.123Z",
        "version": 5,
    }
    if started_by is not None:
        detail["startedBy"] = started_by
    return {
        "version": "0",
        "id": "3317b2af-7005-947d-b652-f55e762e571a",
        "detail-type": "ECS Task State Change",
        "source": "aws.ecs",
        "account": ACCOUNT,
        "time": "2026-12-03T03:04:55Z",
        "region": REGION,
        "resources": [TASK],
        "detail": detail,
    }


@pytest.fixture(scope="module")
def service_rules() -> dict[str, dict[str, Any]]:
    mocks = _service()
    return {r.name: json.loads(r.inputs["eventPattern"]) for r in mocks.of_type(RULE)}


@pytest.fixture(scope="module")
def scheduled_rules() -> dict[str, dict[str, Any]]:
    mocks = _scheduled()
    return {r.name: json.loads(r.inputs["eventPattern"]) for r in mocks.of_type(RULE)}


DEPLOYMENT = "Scaling activity initiated by (deployment ecs-svc/1234567890123456789)"


@pytest.mark.parametrize(
    ("reason", "alerts"),
    [
        (f"Task failed ELB health checks in (target-group {TARGET_GROUP})", True),
        ("Task failed container health checks", True),
        (DEPLOYMENT, False),  # a deployment replacing tasks, and scale-in, say this
    ],
    ids=["elb-health-checks", "container-health-check", "deployment-or-scale-in"],
)
def test_health_check_stops_alert_and_deployments_do_not(
    service_rules: dict[str, dict[str, Any]], reason: str, alerts: bool
) -> None:
    """The service exits 0 on SIGTERM, so a task stopped for failed health checks has only exit
    codes 0: the exit-code rule cannot see it, the unhealthy rule must; deployments and
    scale-in (same stop code, ServiceSchedulerInitiated) must not alert."""
    event = task_event(reason=reason)
    assert matches(service_rules["svc-notify-task-unhealthy"], event) is alerts
    assert not matches(service_rules["svc-notify-task-failed"], event)


def test_unhealthy_rule_is_scoped_to_this_service_and_cluster(
    service_rules: dict[str, dict[str, Any]],
) -> None:
    pattern = service_rules["svc-notify-task-unhealthy"]
    assert matches(pattern, task_event())
    assert not matches(pattern, task_event(group="service:other"))
    elsewhere = task_event()
    elsewhere["detail"]["clusterArn"] = CLUSTER_ARN.replace("inference", "batch")
    assert not matches(pattern, elsewhere)
    running = task_event()
    running["detail"]["lastStatus"] = "RUNNING"
    assert not matches(pattern, running)


def test_service_task_that_exits_non_zero_alerts(service_rules: dict[str, dict[str, Any]]) -> None:
    crashed = task_event(
        stop_code="EssentialContainerExited",
        reason="Essential container in task exited",
        exit_codes={"app": 137, "log-router": 0},
    )
    assert matches(service_rules["svc-notify-task-failed"], crashed)
    assert not matches(service_rules["svc-notify-task-unhealthy"], crashed)


@pytest.mark.parametrize(
    ("started_by", "alerts"),
    [
        ("AWS Step Functions", False),  # an attempt of the state machine: it reports the run
        (None, True),  # aws ecs run-task by hand, no --started-by
        ("ops-run-task", True),  # python -m ops run-task or a --started-by of one's own
    ],
    ids=["state-machine-attempt", "by-hand", "by-hand-with-started-by"],
)
def test_scheduled_family_rule_leaves_state_machine_attempts_to_the_state_machine(
    scheduled_rules: dict[str, dict[str, Any]], started_by: str | None, alerts: bool
) -> None:
    """One failed night, one message: Step Functions' ecs:runTask writes startedBy
    "AWS Step Functions" on the tasks it starts (as DescribeTasks shows for them); those
    attempts are retried and, once retries are spent, reported once by the state machine."""
    event = task_event(
        group="family:reindex",
        stop_code="EssentialContainerExited",
        reason="Essential container in task exited",
        exit_codes={"job": 3},
        started_by=started_by,
    )
    assert matches(scheduled_rules["nightly-task-failed"], event) is alerts


def test_scheduled_family_rule_ignores_clean_exits_and_never_started_containers(
    scheduled_rules: dict[str, dict[str, Any]],
) -> None:
    pattern = scheduled_rules["nightly-task-failed"]
    base = {"group": "family:reindex", "started_by": None}
    assert not matches(pattern, task_event(**base, exit_codes={"job": 0}))
    assert not matches(pattern, task_event(**base, exit_codes={"job": None}))
    assert matches(pattern, task_event(**base, exit_codes={"job": 0, "sidecar": 1}))


# -- the matcher itself: the EventBridge semantics the tests above rely on ----------------------


def test_matcher_follows_eventbridge_semantics() -> None:
    """EventBridge User Guide, "Content filtering in Amazon EventBridge event patterns":
    anything-but does not match a missing field; exists: false does; a value in an array of
    objects matches when any element's value does; $or takes any alternative."""
    event = {"detail": {"containers": [{"exitCode": 0}, {"exitCode": 2}], "n": 5}}
    assert matches({"detail": {"containers": {"exitCode": [{"anything-but": 0}]}}}, event)
    assert not matches({"detail": {"containers": {"exitCode": [0.5]}}}, event)
    assert not matches({"detail": {"startedBy": [{"anything-but": "x"}]}}, event)
    assert matches({"detail": {"startedBy": [{"exists": False}]}}, event)
    assert not matches({"detail": {"n": [{"exists": False}]}}, event)
    assert matches({"detail": {"n": [{"numeric": [">", 4, "<=", 5]}]}}, event)
    assert not matches({"detail": {"n": ["5"]}}, event)  # a string is not the number 5
    either = {"detail": {"$or": [{"n": [1]}, {"containers": {"exitCode": [2]}}]}}
    assert matches(either, event)
    changed = copy.deepcopy(event)
    changed["detail"]["containers"][1]["exitCode"] = 0
    assert not matches(either, changed)
    with pytest.raises(ValueError, match="wildcard"):
        matches({"detail": {"n": [{"wildcard": "*"}]}}, event)
