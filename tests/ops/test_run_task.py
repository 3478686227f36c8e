"""run-task against a stubbed ECS client: Stubber checks every request and answer against
the real API model, and a fake clock makes the waiting instant."""

from __future__ import annotations

import io
import json
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import boto3
import pytest
from botocore.stub import ANY, Stubber
from rich.console import Console

from ops.__main__ import main as ops_main
from ops.run_task import main

REGION = "eu-west-1"
ACCOUNT = "123456789012"
CLUSTER = "onnx-dev"
CLUSTER_ARN = f"arn:aws:ecs:{REGION}:{ACCOUNT}:cluster/{CLUSTER}"
TASK_ID = "0123456789abcdef0123456789abcdef"
TASK_ARN = f"arn:aws:ecs:{REGION}:{ACCOUNT}:task/{CLUSTER}/{TASK_ID}"
TD_ARN = f"arn:aws:ecs:{REGION}:{ACCOUNT}:task-definition/onnx-dev-service:7"
INSTANCE_ARN = f"arn:aws:ecs:{REGION}:{ACCOUNT}:container-instance/{CLUSTER}/abc123"
SUBNETS = ["subnet-aaa", "subnet-bbb"]
SG = "sg-0123"
NETWORK = {
    "awsvpcConfiguration": {
        "subnets": SUBNETS,
        "securityGroups": [SG],
        "assignPublicIp": "DISABLED",
    }
}
BASE_ARGS = [
    "--cluster",
    CLUSTER,
    "--task-definition",
    TD_ARN,
    "--subnets",
    ",".join(SUBNETS),
    "--security-groups",
    SG,
]


class FakeClock:
    """A monotonic clock that only moves when the code under test sleeps."""

    def __init__(self) -> None:
        self.now = 1000.0
        self.sleeps: list[float] = []

    def __call__(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        self.now += seconds


@dataclass
class Result:
    code: int
    out: str
    err: str
    sleeps: list[float] = field(default_factory=list)


@pytest.fixture
def ecs() -> Iterator[tuple[Any, Stubber]]:
    client = boto3.client(
        "ecs", region_name=REGION, aws_access_key_id="test", aws_secret_access_key="test"
    )
    with Stubber(client) as stub:
        yield client, stub
        stub.assert_no_pending_responses()


def run(client: Any, *argv: str, terminal: bool = False) -> Result:
    clock = FakeClock()
    err = Console(file=io.StringIO(), width=400, force_terminal=terminal)
    out = Console(file=io.StringIO(), width=400, force_terminal=False)
    code = main(list(argv), ecs=client, console=err, out=out, sleep=clock.sleep, clock=clock)
    return Result(code, out.file.getvalue(), err.file.getvalue(), clock.sleeps)  # type: ignore[attr-defined]


def container(name: str = "app", **extra: Any) -> dict[str, Any]:
    return {"name": name, "lastStatus": extra.pop("lastStatus", "PENDING"), **extra}


def task(status: str, *, started: bool = False, **extra: Any) -> dict[str, Any]:
    body: dict[str, Any] = {
        "taskArn": TASK_ARN,
        "clusterArn": CLUSTER_ARN,
        "taskDefinitionArn": TD_ARN,
        "lastStatus": status,
        "desiredStatus": "STOPPED" if status in ("STOPPED", "DEPROVISIONING") else "RUNNING",
        "containers": extra.pop("containers", [container(), container("log-router")]),
        "launchType": "FARGATE",
    }
    if started:
        body["startedAt"] = datetime(2026, 11, 25, 19, 0, tzinfo=UTC)
    body.update(extra)
    return body


def expect_run(stub: Stubber, response: dict[str, Any], **params: Any) -> None:
    expected = {
        "cluster": CLUSTER,
        "taskDefinition": TD_ARN,
        "count": 1,
        "startedBy": "ops-run-task",
        "propagateTags": "TASK_DEFINITION",
        "enableECSManagedTags": True,
        "clientToken": ANY,
        "launchType": "FARGATE",
        "networkConfiguration": NETWORK,
    }
    expected.update(params)
    for key in [k for k, v in expected.items() if v is None]:
        del expected[key]
    stub.add_response("run_task", response, expected)


def expect_describe(stub: Stubber, *tasks: dict[str, Any]) -> None:
    for t in tasks:
        stub.add_response(
            "describe_tasks",
            {"tasks": [t], "failures": []},
            {"cluster": CLUSTER, "tasks": [TASK_ARN]},
        )


def stopped_ok() -> dict[str, Any]:
    return task(
        "STOPPED",
        started=True,
        stopCode="EssentialContainerExited",
        stoppedReason="Essential container in task exited",
        containers=[
            container("app", lastStatus="STOPPED", exitCode=0),
            container("log-router", lastStatus="STOPPED", exitCode=0),
        ],
    )


def test_success_path_waits_through_every_state(ecs: tuple[Any, Stubber]) -> None:
    client, stub = ecs
    expect_run(
        stub,
        {"tasks": [task("PROVISIONING")], "failures": []},
        overrides={
            "containerOverrides": [
                {"name": "app", "command": ["python", "-m", "service.sync", "--keep", "2"]}
            ]
        },
    )
    expect_describe(
        stub,
        task("PROVISIONING"),
        task("PENDING"),
        task("RUNNING", started=True),
        task("RUNNING", started=True),
        stopped_ok(),
    )

    result = run(
        client,
        *BASE_ARGS,
        "--container",
        "app",
        "--command",
        "python -m service.sync --keep 2",
    )

    assert result.code == 0, result.err
    assert result.out.strip() == TASK_ARN  # stdout: only the ARN, for scripts
    states = [line.split("] ")[1] for line in result.err.splitlines() if line.startswith("[")]
    assert states == ["PROVISIONING", "PENDING", "RUNNING", "STOPPED"]
    assert "[0:24] STOPPED" in result.err
    assert "task succeeded: exit code 0 after 0:24" in result.err
    assert result.sleeps == [6.0, 6.0, 6.0, 6.0]
    assert (
        f"https://{REGION}.console.aws.amazon.com/ecs/v2/clusters/{CLUSTER}/tasks/{TASK_ID}"
        in result.err
    )


def test_task_briefly_missing_after_start_is_polled_again(ecs: tuple[Any, Stubber]) -> None:
    client, stub = ecs
    expect_run(stub, {"tasks": [task("PROVISIONING")], "failures": []})
    stub.add_response(
        "describe_tasks",
        {"tasks": [], "failures": [{"arn": TASK_ARN, "reason": "MISSING"}]},
        {"cluster": CLUSTER, "tasks": [TASK_ARN]},
    )
    expect_describe(stub, task("RUNNING", started=True), stopped_ok())

    result = run(client, *BASE_ARGS, terminal=True)  # with the live status line

    assert result.code == 0, result.err
    assert "[0:00] MISSING" in result.err
    assert f"task {TASK_ID}:" in result.err  # the live line, as rendered on a terminal


def test_failures_in_a_200_answer_are_all_reported(ecs: tuple[Any, Stubber]) -> None:
    client, stub = ecs
    other = INSTANCE_ARN.replace("abc123", "def456")
    expect_run(
        stub,
        {
            "tasks": [],
            "failures": [
                {"arn": INSTANCE_ARN, "reason": "RESOURCE:MEMORY"},
                {"arn": other, "reason": "AGENT", "detail": "agent disconnected"},
            ],
        },
        launchType=None,
        capacityProviderStrategy=[{"capacityProvider": "gpu", "weight": 1}],
    )

    result = run(client, *BASE_ARGS, "--capacity", "gpu")

    assert result.code == 3, result.err
    assert "placed no task (2 failure(s))" in result.err
    assert f"RESOURCE:MEMORY (arn: {INSTANCE_ARN}; detail: -)" in result.err
    assert f"AGENT (arn: {other}; detail: agent disconnected)" in result.err
    assert "enough free memory" in result.err
    assert "ECS agent" in result.err
    assert result.out == ""


def test_fargate_quota_failure_points_at_both_quotas(ecs: tuple[Any, Stubber]) -> None:
    client, stub = ecs
    expect_run(
        stub,
        {
            "tasks": [],
            "failures": [
                {
                    "reason": "You've reached the limit on the number of vCPUs you can run "
                    "concurrently"
                }
            ],
        },
    )
    result = run(client, *BASE_ARGS)
    assert result.code == 3
    assert "Fargate On-Demand and Fargate Spot vCPUs are separate" in result.err


def test_task_that_never_starts_times_out(ecs: tuple[Any, Stubber]) -> None:
    client, stub = ecs
    expect_run(stub, {"tasks": [task("PROVISIONING")], "failures": []})
    expect_describe(stub, task("PROVISIONING"), *[task("PENDING")] * 5)

    result = run(client, *BASE_ARGS, "--timeout", "30")

    assert result.code == 6, result.err
    assert "did not start within 30s (last status PENDING)" in result.err
    assert "may still be running" in result.err
    assert f"aws ecs stop-task --region {REGION} --cluster {CLUSTER} --task {TASK_ARN}" in (
        result.err
    )
    assert sum(result.sleeps) == 30


def test_timeout_can_stop_the_task(ecs: tuple[Any, Stubber]) -> None:
    client, stub = ecs
    expect_run(stub, {"tasks": [task("PROVISIONING")], "failures": []})
    expect_describe(stub, task("RUNNING", started=True), task("RUNNING", started=True))
    stub.add_response(
        "stop_task",
        {"task": task("RUNNING", started=True)},
        {"cluster": CLUSTER, "task": TASK_ARN, "reason": "run-task timeout"},
    )

    result = run(client, *BASE_ARGS, "--timeout", "5", "--stop-on-timeout")

    assert result.code == 6, result.err
    assert "did not finish within 5s" in result.err
    assert "asked ECS to stop it" in result.err


def test_non_zero_exit_fails_the_command(ecs: tuple[Any, Stubber]) -> None:
    client, stub = ecs
    expect_run(stub, {"tasks": [task("PROVISIONING")], "failures": []})
    expect_describe(
        stub,
        task("RUNNING", started=True),
        task(
            "STOPPED",
            started=True,
            stopCode="EssentialContainerExited",
            stoppedReason="Essential container in task exited",
            containers=[
                container("app", lastStatus="STOPPED", exitCode=4),
                container("log-router", lastStatus="STOPPED", exitCode=0),
            ],
        ),
    )

    result = run(client, *BASE_ARGS)

    assert result.code == 5, result.err
    assert "task failed: non-zero exit (app=4)" in result.err
    assert "container app: exit code 4" in result.err


def test_only_the_named_container_decides(ecs: tuple[Any, Stubber]) -> None:
    client, stub = ecs
    expect_run(
        stub,
        {"tasks": [task("PROVISIONING")], "failures": []},
        overrides={"containerOverrides": [{"name": "app"}]},
    )
    expect_describe(
        stub,
        task(
            "STOPPED",
            started=True,
            containers=[
                container("app", lastStatus="STOPPED", exitCode=0),
                container("log-router", lastStatus="STOPPED", exitCode=137),
            ],
        ),
    )

    result = run(client, *BASE_ARGS, "--container", "app")

    assert result.code == 0, result.err
    assert "container log-router: exit code 137" in result.err


def test_stopped_before_running_is_a_failed_start(ecs: tuple[Any, Stubber]) -> None:
    client, stub = ecs
    pull_error = (
        "CannotPullContainerError: pull image manifest has been retried 5 time(s): "
        "failed to resolve ref 123.dkr.ecr.eu-west-1.amazonaws.com/app:missing: not found"
    )
    expect_run(stub, {"tasks": [task("PROVISIONING")], "failures": []})
    expect_describe(
        stub,
        task("PENDING"),
        task(
            "STOPPED",
            stopCode="TaskFailedToStart",
            stoppedReason=pull_error,
            containers=[container("app", lastStatus="STOPPED", reason=pull_error)],
        ),
    )

    result = run(client, *BASE_ARGS)

    assert result.code == 4, result.err
    assert "task failed to start" in result.err
    assert "stop code TaskFailedToStart: CannotPullContainerError" in result.err
    assert "execution role's ECR permissions" in result.err


def test_no_wait_only_starts_the_task(ecs: tuple[Any, Stubber]) -> None:
    client, stub = ecs
    expect_run(stub, {"tasks": [task("PROVISIONING")], "failures": []})

    result = run(client, *BASE_ARGS, "--no-wait", "--log-group", "/onnx/dev/errors")

    assert result.code == 0, result.err
    assert result.out.strip() == TASK_ARN
    assert result.sleeps == []
    assert "aws ecs describe-tasks --cluster onnx-dev" in result.err
    assert "log-group/$252Fonnx$252Fdev$252Ferrors" in result.err


def test_settings_merge_from_stack_outputs(ecs: tuple[Any, Stubber], tmp_path: Path) -> None:
    client, stub = ecs
    outputs = tmp_path / "outputs.json"
    outputs.write_text(
        json.dumps(
            {
                "clusterName": CLUSTER,
                "taskDefinitionArn": "arn:aws:ecs:eu-west-1:1:task-definition/from-stack:1",
                "modelSyncTaskDefinitionArn": TD_ARN,
                "privateSubnetIds": ["subnet-from-stack"],
                "taskSecurityGroupId": SG,
                "errorLogGroupName": "/onnx/dev/errors",
            }
        )
    )
    expect_run(
        stub,
        {"tasks": [task("PROVISIONING")], "failures": []},
        networkConfiguration={
            "awsvpcConfiguration": {
                "subnets": ["subnet-explicit"],  # the flag wins over the stack output
                "securityGroups": [SG],
                "assignPublicIp": "DISABLED",
            }
        },
        overrides={
            "containerOverrides": [
                {
                    "name": "app",
                    "command": ["python", "-m", "service.sync"],
                    "environment": [{"name": "SYNC_KEEP", "value": "2"}],
                }
            ]
        },
    )

    result = run(
        client,
        "--stack-outputs",
        str(outputs),
        "--task-definition-key",
        "modelSyncTaskDefinitionArn",
        "--subnets",
        "subnet-explicit",
        "--container",
        "app",
        "--command",
        "python -m service.sync",
        "--env",
        "SYNC_KEEP=2",
        "--no-wait",
    )

    assert result.code == 0, result.err
    assert "aws logs tail /onnx/dev/errors --region eu-west-1" in result.err
    assert f"--filter-pattern '\"{TASK_ID}\"'" in result.err


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["--task-definition", TD_ARN, "--subnets", "s"], "no cluster"),
        (["--cluster", CLUSTER, "--subnets", "s"], "no task definition"),
        (["--cluster", CLUSTER, "--task-definition", TD_ARN], "FARGATE tasks need subnets"),
        ([*BASE_ARGS, "--command", "echo hi"], "need --container"),
        ([*BASE_ARGS, "--container", "app", "--env", "NOEQUALS"], "expected KEY=VALUE"),
        (["--stack-outputs", "/nonexistent/outputs.json"], "pulumi stack output --json >"),
    ],
)
def test_usage_errors_fail_before_any_call(
    ecs: tuple[Any, Stubber], argv: list[str], message: str
) -> None:
    client, _ = ecs  # the Stubber fails the test on any unexpected call
    result = run(client, *argv)
    assert result.code == 2
    assert message in result.err


def test_api_error_on_run_task(ecs: tuple[Any, Stubber]) -> None:
    client, stub = ecs
    stub.add_client_error(
        "run_task", service_error_code="ClusterNotFoundException", service_message="not found"
    )
    result = run(client, *BASE_ARGS)
    assert result.code == 1
    assert "RunTask refused" in result.err and "ClusterNotFoundException" in result.err


def test_ops_entry_point_dispatches_run_task(capsys: pytest.CaptureFixture[str]) -> None:
    assert ops_main(["run-task", "--task-definition", TD_ARN]) == 2
    with pytest.raises(SystemExit) as exc:
        ops_main(["no-such-command"])
    assert exc.value.code == 2
