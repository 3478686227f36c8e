"""Deployment verdicts (ops.deployment, the deploy-time check, ``python -m ops deployment``)
against a stubbed ECS client.

AWS behaviour encoded (cited):
- Amazon ECS API Reference, ``DeploymentCircuitBreaker``
  (https://docs.aws.amazon.com/AmazonECS/latest/APIReference/API_DeploymentCircuitBreaker.html):
  "a service deployment will transition to a failed state and stop launching new tasks"; with
  rollback, "the service is rolled back to the last deployment that completed successfully".
- Amazon ECS API Reference, ``Deployment``: ``status`` PRIMARY/ACTIVE/INACTIVE,
  ``rolloutState`` COMPLETED/FAILED/IN_PROGRESS with ``rolloutStateReason``.
- Amazon ECS Developer Guide, "How CloudWatch alarms detect Amazon ECS deployment failures":
  ECS sets the deployment to failed when a deployment alarm goes into ALARM (also during the
  bake time after the new tasks are healthy), and rolls back with ``rollback``.
- hashicorp/terraform-provider-aws#19519: with ``wait_for_steady_state`` a rolled-back
  deployment still ends the apply successfully (the service is stable on the old revision) —
  the reason this check exists.
"""

from __future__ import annotations

import io
from collections.abc import Iterator
from contextlib import redirect_stdout
from datetime import UTC, datetime
from typing import Any

import boto3
import pytest
from botocore.stub import Stubber

from components.deployment_check import DeploymentCheckProvider
from ops.deployment import EXIT_ROLLED_BACK, wait_for_deployment
from ops.deployment_cli import main
from tests.ops.test_run_task import FakeClock

REGION = "eu-west-1"
ACCOUNT = "123456789012"
CLUSTER = f"arn:aws:ecs:{REGION}:{ACCOUNT}:cluster/onnx-dev-cluster"
SERVICE = "onnx-dev-service"
OLD_TD = f"arn:aws:ecs:{REGION}:{ACCOUNT}:task-definition/onnx-dev:6"
NEW_TD = f"arn:aws:ecs:{REGION}:{ACCOUNT}:task-definition/onnx-dev:7"
NEW_ID = "ecs-svc/1111111111111111111"
OLD_ID = "ecs-svc/2222222222222222222"
WHEN = datetime(2026, 12, 3, 9, 0, tzinfo=UTC)


@pytest.fixture
def ecs() -> Iterator[tuple[Any, Stubber]]:
    client = boto3.client(
        "ecs", region_name=REGION, aws_access_key_id="test", aws_secret_access_key="test"
    )
    with Stubber(client) as stub:
        yield client, stub
        stub.assert_no_pending_responses()


def deployment(
    dep_id: str, td: str, status: str, rollout: str, *, reason: str = "", **counts: int
) -> dict[str, Any]:
    body: dict[str, Any] = {
        "id": dep_id,
        "status": status,
        "taskDefinition": td,
        "desiredCount": counts.get("desired", 1),
        "runningCount": counts.get("running", 1),
        "pendingCount": 0,
        "failedTasks": counts.get("failed", 0),
        "createdAt": WHEN,
        "rolloutState": rollout,
    }
    if reason:
        body["rolloutStateReason"] = reason
    return body


def expect_service(stub: Stubber, *deployments: dict[str, Any], events: list[str] = ()) -> None:
    stub.add_response(
        "describe_services",
        {
            "services": [
                {
                    "serviceName": SERVICE,
                    "deployments": list(deployments),
                    "events": [
                        {"id": str(i), "createdAt": WHEN, "message": m}
                        for i, m in enumerate(events)
                    ],
                }
            ],
            "failures": [],
        },
        {"cluster": CLUSTER, "services": [SERVICE]},
    )


def expect_stopped_tasks(stub: Stubber, dep_id: str, reason: str) -> None:
    arn = f"arn:aws:ecs:{REGION}:{ACCOUNT}:task/onnx-dev-cluster/abc"
    stub.add_response(
        "list_tasks",
        {"taskArns": [arn]},
        {"cluster": CLUSTER, "startedBy": dep_id, "desiredStatus": "STOPPED"},
    )
    stub.add_response(
        "describe_tasks",
        {
            "tasks": [
                {
                    "taskArn": arn,
                    "stopCode": "TaskFailedToStart",
                    "stoppedReason": reason,
                    "containers": [{"name": "app", "reason": reason}],
                }
            ],
            "failures": [],
        },
        {"cluster": CLUSTER, "tasks": [arn]},
    )


def wait(client: Any, td: str | None = NEW_TD, timeout: float = 600) -> Any:
    clock = FakeClock()
    return wait_for_deployment(
        client, CLUSTER, SERVICE, td, timeout=timeout, sleep=clock.sleep, clock=clock
    )


def test_completed_deployment_of_the_new_revision_passes(ecs: tuple[Any, Stubber]) -> None:
    client, stub = ecs
    expect_service(stub, deployment(NEW_ID, NEW_TD, "PRIMARY", "COMPLETED", running=2, desired=2))
    verdict = wait(client)
    assert verdict.ok
    assert "completed (2 tasks running)" in verdict.headline


def test_in_progress_then_completed_is_polled(ecs: tuple[Any, Stubber]) -> None:
    client, stub = ecs
    expect_service(
        stub,
        deployment(NEW_ID, NEW_TD, "PRIMARY", "IN_PROGRESS", running=0),
        deployment(OLD_ID, OLD_TD, "ACTIVE", "COMPLETED"),
    )
    expect_service(stub, deployment(NEW_ID, NEW_TD, "PRIMARY", "IN_PROGRESS"))  # bake time
    expect_service(stub, deployment(NEW_ID, NEW_TD, "PRIMARY", "COMPLETED"))
    assert wait(client).ok


def test_circuit_breaker_rollback_fails_with_stopped_task_reasons(
    ecs: tuple[Any, Stubber],
) -> None:
    client, stub = ecs
    reason = "CannotPullContainerError: pull image manifest has been retried 5 time(s)"
    expect_service(
        stub,
        deployment(OLD_ID, OLD_TD, "PRIMARY", "IN_PROGRESS"),
        deployment(
            NEW_ID,
            NEW_TD,
            "ACTIVE",
            "FAILED",
            reason="ECS deployment circuit breaker: tasks failed to start.",
            running=0,
            failed=3,
        ),
        events=[
            "(service onnx-dev-service) rolling back to deployment ecs-svc/2222222222222222222."
        ],
    )
    expect_stopped_tasks(stub, NEW_ID, reason)
    verdict = wait(client)
    assert verdict.exit_code == EXIT_ROLLED_BACK
    text = "\n".join([verdict.headline, *verdict.details])
    assert f"deployment {NEW_ID} of {NEW_TD} failed" in text
    assert f"ECS rolled back to {OLD_TD}" in text
    assert "reason: ECS deployment circuit breaker: tasks failed to start." in text
    assert "tasks: 0 running, 3 failed of 1 desired" in text
    assert f"stopped task abc: TaskFailedToStart: {reason}" in text
    assert "event: (service onnx-dev-service) rolling back" in text


def test_alarm_rollback_after_healthy_tasks_fails(ecs: tuple[Any, Stubber]) -> None:
    client, stub = ecs
    alarm = (
        "Failed to complete deployment: CloudWatch alarm(s) onnx-dev-deploy-alarms-5xx-rate "
        "in ALARM state"
    )
    expect_service(
        stub,
        deployment(OLD_ID, OLD_TD, "PRIMARY", "IN_PROGRESS"),
        deployment(NEW_ID, NEW_TD, "ACTIVE", "FAILED", reason=alarm),
    )
    stub.add_response(
        "list_tasks",
        {"taskArns": []},
        {"cluster": CLUSTER, "startedBy": NEW_ID, "desiredStatus": "STOPPED"},
    )
    verdict = wait(client)
    assert verdict.exit_code == EXIT_ROLLED_BACK
    assert f"reason: {alarm}" in verdict.details


def test_rolled_back_and_gone_still_fails(ecs: tuple[Any, Stubber]) -> None:
    client, stub = ecs
    expect_service(stub, deployment(OLD_ID, OLD_TD, "PRIMARY", "COMPLETED"))
    verdict = wait(client)
    assert verdict.exit_code == EXIT_ROLLED_BACK
    assert verdict.headline == f"the deployment of {NEW_TD} was rolled back; {OLD_TD} is running"


def test_timeout_reports_the_deployments(ecs: tuple[Any, Stubber]) -> None:
    client, stub = ecs
    for _ in range(3):
        expect_service(stub, deployment(NEW_ID, NEW_TD, "PRIMARY", "IN_PROGRESS", running=0))
    expect_service(stub, deployment(NEW_ID, NEW_TD, "PRIMARY", "IN_PROGRESS", running=0))
    verdict = wait(client, timeout=30)
    assert verdict.exit_code == 6
    assert verdict.details == [f"deployments: PRIMARY {NEW_TD} IN_PROGRESS (0/1)"]


def test_deploy_time_check_raises_with_the_reason(ecs: tuple[Any, Stubber]) -> None:
    client, stub = ecs
    expect_service(
        stub,
        deployment(OLD_ID, OLD_TD, "PRIMARY", "COMPLETED"),
        deployment(NEW_ID, NEW_TD, "ACTIVE", "FAILED", reason="alarm 5xx-rate in ALARM"),
    )
    stub.add_response(
        "list_tasks",
        {"taskArns": []},
        {"cluster": CLUSTER, "startedBy": NEW_ID, "desiredStatus": "STOPPED"},
    )
    clock = FakeClock()
    check = DeploymentCheckProvider(lambda region: client, sleep=clock.sleep, clock=clock)
    props = {
        "cluster": CLUSTER,
        "service": SERVICE,
        "task_definition": NEW_TD,
        "region": REGION,
        "timeout_seconds": 600,
    }
    with pytest.raises(RuntimeError) as err:
        check.create(props)
    assert "ECS deployment check failed" in str(err.value)
    assert "reason: alarm 5xx-rate in ALARM" in str(err.value)
    # a new revision reruns it; anything else does not (and diff never calls AWS)
    assert check.diff("id", props, {**props, "task_definition": OLD_TD}).changes is True
    assert check.diff("id", props, {**props, "timeout_seconds": 60}).changes is False


def test_cli_exit_codes(ecs: tuple[Any, Stubber]) -> None:
    client, stub = ecs
    args = ["--cluster", CLUSTER, "--service", SERVICE, "--task-definition", NEW_TD]
    expect_service(stub, deployment(NEW_ID, NEW_TD, "PRIMARY", "COMPLETED"))
    out = io.StringIO()
    with redirect_stdout(out):
        assert main(args, ecs=client) == 0
    expect_service(stub, deployment(OLD_ID, OLD_TD, "PRIMARY", "COMPLETED"))
    with redirect_stdout(out):
        assert main(args, ecs=client) == EXIT_ROLLED_BACK
    expect_service(stub, deployment(NEW_ID, NEW_TD, "PRIMARY", "IN_PROGRESS"))
    expect_service(stub, deployment(NEW_ID, NEW_TD, "PRIMARY", "IN_PROGRESS"))
    with redirect_stdout(out):
        assert main(args, ecs=client) == 6  # one look without --wait: still in progress
    with redirect_stdout(out):
        assert main(["--service", SERVICE], ecs=client) == 2
    assert "was rolled back" in out.getvalue()


def test_a_failed_first_deployment_says_how_to_deploy_the_same_revision_again(
    ecs: tuple[Any, Stubber],
) -> None:
    """A failed check leaves the service recorded at the new revision, so the next `pulumi up`
    may start no ECS deployment and judge the same failed one forever: the error names the
    command that starts a new deployment of that revision.

    Amazon ECS Developer Guide, "How the Amazon ECS deployment circuit breaker detects
    failures": a failed deployment "will not launch any new tasks"; with rollback, the service
    returns to the last COMPLETED deployment. Amazon ECS API Reference, UpdateService,
    ``forceNewDeployment``: "Determines whether to force a new deployment of the service ...
    you can use this option to start a new deployment with no service definition changes"."""
    client, stub = ecs
    # first deployment: nothing to roll back to, the breaker leaves it FAILED
    expect_service(
        stub,
        deployment(NEW_ID, NEW_TD, "PRIMARY", "FAILED", reason="circuit breaker", running=0),
    )
    stub.add_response(
        "list_tasks",
        {"taskArns": []},
        {"cluster": CLUSTER, "startedBy": NEW_ID, "desiredStatus": "STOPPED"},
    )
    clock = FakeClock()
    check = DeploymentCheckProvider(lambda region: client, sleep=clock.sleep, clock=clock)
    props = {"cluster": CLUSTER, "service": SERVICE, "task_definition": NEW_TD, "region": REGION}
    with pytest.raises(RuntimeError) as err:
        check.create(props)
    assert (
        f"aws ecs update-service --cluster {CLUSTER} --service {SERVICE} "
        f"--task-definition {NEW_TD} --force-new-deployment"
    ) in str(err.value)
