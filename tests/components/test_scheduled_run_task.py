"""ScheduledRunTask: child inputs under Pulumi mocks, preview-time validation, and the state
machine's failure branch executed by moto's Amazon States Language interpreter."""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import Callable, Iterator
from typing import Any

import boto3
import pulumi
import pytest
from moto import mock_aws

from components import state_machine as sm
from components.scheduled.run_task import RetryPolicy, ScheduledRunTask, ScheduledRunTaskArgs
from components.scheduled.validation import (
    parse_task_definition_arn,
    validate_schedule_expression,
    validate_timezone,
)
from tests import pulumi_mocks
from tests.components.helpers import ROLE_POLICY, by_sid, policy_statements
from tests.pulumi_mocks import ACCOUNT, REGION, RecordingMocks, run

ECS = f"arn:aws:ecs:{REGION}:{ACCOUNT}"
CLUSTER_ARN = f"{ECS}:cluster/inference"
FAMILY_ARN = f"{ECS}:task-definition/reindex"
TASK_ROLE = f"arn:aws:iam::{ACCOUNT}:role/reindex-task"
EXEC_ROLE = f"arn:aws:iam::{ACCOUNT}:role/reindex-exec"

SFN = "aws:sfn/stateMachine:StateMachine"
SCHEDULE = "aws:scheduler/schedule:Schedule"
ROLE = "aws:iam/role:Role"
RULE = "aws:cloudwatch/eventRule:EventRule"
TARGET = "aws:cloudwatch/eventTarget:EventTarget"
TOPIC = "aws:sns/topic:Topic"
TOPIC_POLICY = "aws:sns/topicPolicy:TopicPolicy"
KEY = "aws:kms/key:Key"
LOG_GROUP = "aws:cloudwatch/logGroup:LogGroup"


def make_args(**overrides: Any) -> ScheduledRunTaskArgs:
    values: dict[str, Any] = {
        "cluster_arn": CLUSTER_ARN,
        "task_definition_arn": FAMILY_ARN,
        "task_role_arn": TASK_ROLE,
        "execution_role_arn": EXEC_ROLE,
        "container_name": "job",
        "subnet_ids": ["subnet-a", "subnet-b"],
        "security_group_ids": ["sg-job"],
        "schedule_expression": "cron(0 3 * * ? *)",
        "command": ["python", "-m", "reindex", "--full"],
        "environment": {"LOG_LEVEL": "INFO"},
    }
    values.update(overrides)
    return ScheduledRunTaskArgs(**values)


def deploy(**overrides: Any) -> RecordingMocks:
    return run(lambda: ScheduledRunTask("nightly", make_args(**overrides)))


def definition(mocks: RecordingMocks) -> dict[str, Any]:
    return json.loads(mocks.one(SFN).inputs["definition"])


def policy(mocks: RecordingMocks, name: str) -> list[dict[str, Any]]:
    return policy_statements(mocks, ROLE_POLICY, name)


@pytest.fixture(scope="module")
def default_stack() -> RecordingMocks:
    mocks = deploy()
    # keep a private copy: later tests reinstall the shared mocks
    copy = RecordingMocks()
    copy.resources = list(mocks.resources)
    return copy


# -- the RunTask state -----------------------------------------------------------------------


def test_run_task_state_waits_for_the_task_and_runs_it_privately(
    default_stack: RecordingMocks,
) -> None:
    doc = definition(default_stack)
    assert doc["StartAt"] == "RunTask"
    state = doc["States"]["RunTask"]
    assert state["Type"] == "Task"
    assert state["Resource"] == "arn:aws:states:::ecs:runTask.sync"
    params = state["Parameters"]
    assert params["Cluster"] == CLUSTER_ARN
    assert params["TaskDefinition"] == FAMILY_ARN
    assert params["LaunchType"] == "FARGATE"
    assert "CapacityProviderStrategy" not in params
    assert params["NetworkConfiguration"] == {
        "AwsvpcConfiguration": {
            "Subnets": ["subnet-a", "subnet-b"],
            "SecurityGroups": ["sg-job"],
            "AssignPublicIp": "DISABLED",
        }
    }
    assert params["Overrides"]["ContainerOverrides"] == [
        {
            "Name": "job",
            "Command": ["python", "-m", "reindex", "--full"],
            "Environment": [{"Name": "LOG_LEVEL", "Value": "INFO"}],
        }
    ]
    assert params["PropagateTags"] == "TASK_DEFINITION"
    assert state["TimeoutSeconds"] == 3600
    assert state["End"] is True


def test_default_retry_is_3s_3_attempts_backoff_5_and_timeouts_are_not_retried(
    default_stack: RecordingMocks,
) -> None:
    retry = definition(default_stack)["States"]["RunTask"]["Retry"]
    assert retry[0] == {"ErrorEquals": ["States.Timeout"], "MaxAttempts": 0}
    assert retry[-1] == {
        "ErrorEquals": ["States.ALL"],
        "IntervalSeconds": 3,
        "MaxAttempts": 3,
        "BackoffRate": 5.0,
    }


def test_retry_and_timeout_are_configurable() -> None:
    mocks = deploy(
        retry=RetryPolicy(
            interval_seconds=10, max_attempts=0, backoff_rate=1.5, retry_on_timeout=True
        ),
        timeout_seconds=600,
    )
    state = definition(mocks)["States"]["RunTask"]
    assert state["Retry"] == [
        {"ErrorEquals": ["States.ALL"], "IntervalSeconds": 10, "MaxAttempts": 0, "BackoffRate": 1.5}
    ]
    assert state["TimeoutSeconds"] == 600


def test_catch_sends_every_error_to_the_failure_branch(default_stack: RecordingMocks) -> None:
    states = definition(default_stack)["States"]
    assert states["RunTask"]["Catch"] == [
        {"ErrorEquals": ["States.ALL"], "ResultPath": "$.error", "Next": "ClassifyFailure"}
    ]
    assert states["ParseTaskDescription"]["Parameters"] == {
        "Task.$": "States.StringToJson($.error.Cause)"
    }
    notify = states["NotifyFailure"]
    assert notify["Resource"] == "arn:aws:states:::sns:publish"
    assert notify["Parameters"]["TopicArn"] == default_stack.one(TOPIC).inputs.get(
        "arn", f"arn:aws:sns:{REGION}:{ACCOUNT}:nightly-alerts"
    )
    assert notify["Parameters"]["Message.$"] == "$.notification.Message"
    assert notify["Next"] == "Failed"
    # an alert that cannot be sent still fails, with an error the unreported-failure alarm counts
    assert notify["Catch"][0]["Next"] == "FailedAlertNotSent"
    assert states["FailedAlertNotSent"]["Error"] == sm.UNREPORTED_ERROR
    assert states["Failed"]["Type"] == "Fail"
    # every Pass/Choice state of the branch leads, eventually, to NotifyFailure
    for state_name in (
        "DescribeTaskExit",
        "DescribeTaskStop",
        "DescribeErrorWithCause",
        "DescribeError",
    ):
        assert states[state_name]["Next"] == "NotifyFailure"


@pytest.mark.parametrize(
    ("capacity", "strategy"),
    [("FARGATE_SPOT", "FARGATE_SPOT"), ("gpu-g4dn-capacity", "gpu-g4dn-capacity")],
)
def test_capacity_providers_become_a_strategy(capacity: str, strategy: str) -> None:
    params = definition(deploy(capacity=capacity))["States"]["RunTask"]["Parameters"]
    assert params["CapacityProviderStrategy"] == [{"CapacityProvider": strategy, "Weight": 1}]
    assert "LaunchType" not in params
    awsvpc = params["NetworkConfiguration"]["AwsvpcConfiguration"]
    # AssignPublicIp is a Fargate-only field; on EC2 it must be absent
    assert ("AssignPublicIp" in awsvpc) is (capacity == "FARGATE_SPOT")


def test_capacity_given_as_output_is_used_once_resolved() -> None:
    mocks = deploy(capacity=pulumi.Output.from_input("gpu-cp"))
    params = definition(mocks)["States"]["RunTask"]["Parameters"]
    assert params["CapacityProviderStrategy"][0]["CapacityProvider"] == "gpu-cp"


def test_no_overrides_when_nothing_is_overridden() -> None:
    params = definition(deploy(command=None, environment={}))["States"]["RunTask"]["Parameters"]
    assert "Overrides" not in params


# -- state machine, logs, schedule -----------------------------------------------------------


def test_state_machine_is_standard_and_logs_to_a_retained_group(
    default_stack: RecordingMocks,
) -> None:
    machine = default_stack.one(SFN).inputs
    assert machine["type"] == "STANDARD"
    logging = machine["loggingConfiguration"]
    group = default_stack.one(LOG_GROUP)
    # the log group's ARN (as the mocks fake it) + ":*", as Step Functions requires
    assert logging["logDestination"] == f"arn:aws:cloudwatch:{REGION}:{ACCOUNT}:{group.name}:*"
    assert logging["level"] == "ERROR"
    assert logging["includeExecutionData"] is True
    assert group.inputs["retentionInDays"] == 90
    assert group.inputs["namePrefix"].startswith("/aws/vendedlogs/states/nightly-")
    assert machine["tracingConfiguration"] == {"enabled": False}


def test_schedule_starts_the_state_machine_at_the_exact_time(
    default_stack: RecordingMocks,
) -> None:
    schedule = default_stack.one(SCHEDULE).inputs
    assert schedule["scheduleExpression"] == "cron(0 3 * * ? *)"
    assert schedule["scheduleExpressionTimezone"] == "UTC"
    assert schedule["flexibleTimeWindow"] == {"mode": "OFF"}
    assert schedule["state"] == "ENABLED"
    target = schedule["target"]
    assert target["arn"] == f"arn:aws:sfn:{REGION}:{ACCOUNT}:nightly-sfn"
    assert target["roleArn"].endswith("nightly-scheduler-role")


def test_schedule_timezone_and_disabled_flag() -> None:
    schedule = (
        deploy(schedule_timezone="Asia/Tokyo", enabled=False, schedule_expression="rate(6 hours)")
        .one(SCHEDULE)
        .inputs
    )
    assert schedule["scheduleExpressionTimezone"] == "Asia/Tokyo"
    assert schedule["state"] == "DISABLED"
    assert schedule["scheduleExpression"] == "rate(6 hours)"


# -- IAM ---------------------------------------------------------------------------------------


def _trust(mocks: RecordingMocks, name: str) -> dict[str, Any]:
    (statement,) = json.loads(mocks.one(ROLE, name).inputs["assumeRolePolicy"])["Statement"]
    return statement


def test_state_machine_role_is_least_privilege(default_stack: RecordingMocks) -> None:
    trust = _trust(default_stack, "nightly-sfn-role")
    assert trust["Principal"] == {"Service": "states.amazonaws.com"}
    assert trust["Condition"] == {"StringEquals": {"aws:SourceAccount": ACCOUNT}}

    statements = by_sid(policy(default_stack, "nightly-sfn-policy"))
    run_task = statements["RunOnlyThisTaskDefinitionInThisCluster"]
    assert run_task["Action"] == "ecs:RunTask"
    assert run_task["Resource"] == [FAMILY_ARN, f"{FAMILY_ARN}:*"]
    assert run_task["Condition"] == {"ArnEquals": {"ecs:cluster": CLUSTER_ARN}}

    watch = statements["WatchAndStopTasksOfThisCluster"]
    assert sorted(watch["Action"]) == ["ecs:DescribeTasks", "ecs:StopTask"]
    assert watch["Resource"] == f"{ECS}:task/inference/*"

    pass_role = statements["PassOnlyTheTaskRoles"]
    assert pass_role["Action"] == "iam:PassRole"
    assert pass_role["Resource"] == [TASK_ROLE, EXEC_ROLE]
    assert pass_role["Condition"] == {
        "StringEquals": {"iam:PassedToService": "ecs-tasks.amazonaws.com"}
    }

    rule = statements["ManagedRuleForRunTaskSync"]
    assert sorted(rule["Action"]) == ["events:DescribeRule", "events:PutRule", "events:PutTargets"]
    assert rule["Resource"] == (
        f"arn:aws:events:{REGION}:{ACCOUNT}:rule/StepFunctionsGetEventsForECSTaskRule"
    )

    publish = statements["PublishAlert"]
    assert publish["Action"] == "sns:Publish"
    assert publish["Resource"] == f"arn:aws:sns:{REGION}:{ACCOUNT}:nightly-alerts"
    assert statements["EncryptAlertForTopic"]["Resource"].endswith("nightly-alerts-key")

    # "*" only where AWS offers nothing narrower: the log delivery API
    wildcard = [s["Sid"] for s in statements.values() if s["Resource"] == "*"]
    assert wildcard == ["LogDeliveryApiHasNoResourceLevelPermissions"]
    # exactly the actions of "IAM policies for logging to CloudWatch Logs" (Step Functions guide)
    assert set(statements[wildcard[0]]["Action"]) == {
        "logs:CreateLogDelivery", "logs:GetLogDelivery", "logs:UpdateLogDelivery",
        "logs:DeleteLogDelivery", "logs:ListLogDeliveries", "logs:PutResourcePolicy",
        "logs:DescribeResourcePolicies", "logs:DescribeLogGroups",
    }  # fmt: skip


def test_exact_revision_is_the_only_runnable_one() -> None:
    mocks = deploy(task_definition_arn=f"{FAMILY_ARN}:7")
    run_task = by_sid(policy(mocks, "nightly-sfn-policy"))["RunOnlyThisTaskDefinitionInThisCluster"]
    assert run_task["Resource"] == [f"{FAMILY_ARN}:7"]
    assert definition(mocks)["States"]["RunTask"]["Parameters"]["TaskDefinition"] == (
        f"{FAMILY_ARN}:7"
    )


def test_tracing_adds_xray_permissions() -> None:
    mocks = deploy(tracing=True)
    assert mocks.one(SFN).inputs["tracingConfiguration"] == {"enabled": True}
    assert "XRayTracing" in by_sid(policy(mocks, "nightly-sfn-policy"))


def test_scheduler_role_may_only_start_this_state_machine(default_stack: RecordingMocks) -> None:
    trust = _trust(default_stack, "nightly-scheduler-role")
    assert trust["Principal"] == {"Service": "scheduler.amazonaws.com"}
    assert trust["Condition"] == {"StringEquals": {"aws:SourceAccount": ACCOUNT}}
    statements = by_sid(policy(default_stack, "nightly-scheduler-policy"))
    assert set(statements) == {"StartOnlyThisStateMachine", "DeadLetterUndeliveredStarts"}
    start = statements["StartOnlyThisStateMachine"]
    assert start["Action"] == "states:StartExecution"
    assert start["Resource"] == f"arn:aws:sfn:{REGION}:{ACCOUNT}:nightly-sfn"


# -- EventBridge rules and the topic ---------------------------------------------------------


def test_rule_for_tasks_that_stop_with_non_zero_exit(default_stack: RecordingMocks) -> None:
    pattern = json.loads(default_stack.one(RULE, "nightly-task-failed").inputs["eventPattern"])
    assert pattern == {
        "source": ["aws.ecs"],
        "detail-type": ["ECS Task State Change"],
        "detail": {
            "clusterArn": [CLUSTER_ARN],
            "group": ["family:reindex"],
            "lastStatus": ["STOPPED"],
            "containers": {"exitCode": [{"anything-but": 0}]},
            # the state machine reports its own attempts (one message per failed run)
            "$or": [
                {"startedBy": [{"anything-but": "AWS Step Functions"}]},
                {"startedBy": [{"exists": False}]},
            ],
        },
    }


def test_rule_for_run_task_placement_failures(default_stack: RecordingMocks) -> None:
    pattern = json.loads(default_stack.one(RULE, "nightly-runtask-failed").inputs["eventPattern"])
    assert pattern["source"] == ["aws.ecs"]
    assert pattern["detail-type"] == ["AWS API Call via CloudTrail"]
    detail = pattern["detail"]
    assert detail["eventSource"] == ["ecs.amazonaws.com"]
    assert detail["eventName"] == ["RunTask"]
    assert detail["responseElements"] == {"failures": {"reason": [{"exists": True}]}}
    assert detail["requestParameters"]["cluster"] == [CLUSTER_ARN, "inference"]
    assert {"prefix": "reindex:"} in detail["requestParameters"]["taskDefinition"]


def test_rules_publish_readable_messages_to_the_topic(default_stack: RecordingMocks) -> None:
    topic_arn = f"arn:aws:sns:{REGION}:{ACCOUNT}:nightly-alerts"
    targets = {t.name: t.inputs for t in default_stack.of_type(TARGET)}
    assert set(targets) == {"nightly-task-failed-target", "nightly-runtask-failed-target"}
    for inputs in targets.values():
        assert inputs["arn"] == topic_arn
        transformer = inputs["inputTransformer"]
        template = json.loads(transformer["inputTemplate"])  # one JSON string -> plain text
        assert isinstance(template, str)
        placeholders = {p.split(">")[0] for p in template.split("<")[1:]}
        assert placeholders == set(transformer["inputPaths"])  # every placeholder is filled
    task_msg = targets["nightly-task-failed-target"]["inputTransformer"]
    assert task_msg["inputPaths"]["task"] == "$.detail.taskArn"
    assert "non-zero" in json.loads(task_msg["inputTemplate"])
    run_msg = targets["nightly-runtask-failed-target"]["inputTransformer"]
    assert run_msg["inputPaths"]["reason"] == "$.detail.responseElements.failures[0].reason"


def test_topic_is_encrypted_and_only_these_rules_may_publish(
    default_stack: RecordingMocks,
) -> None:
    key = default_stack.one(KEY).inputs
    assert key["enableKeyRotation"] is True
    # the key policy's services and conditions: tests/components/test_alert_delivery.py
    topic = default_stack.one(TOPIC).inputs
    assert topic["kmsMasterKeyId"] == f"arn:aws:kms:{REGION}:{ACCOUNT}:nightly-alerts-key"
    statement = by_sid(policy_statements(default_stack, TOPIC_POLICY))["EventBridgeRulesPublish"]
    assert statement["Principal"] == {"Service": "events.amazonaws.com"}
    assert statement["Action"] == "sns:Publish"
    assert statement["Condition"] == {
        "ArnEquals": {
            "aws:SourceArn": [
                f"arn:aws:cloudwatch:{REGION}:{ACCOUNT}:nightly-task-failed",
                f"arn:aws:cloudwatch:{REGION}:{ACCOUNT}:nightly-runtask-failed",
            ]
        }
    }


def test_email_subscription_is_optional(default_stack: RecordingMocks) -> None:
    assert not default_stack.of_type("aws:sns/topicSubscription:TopicSubscription")
    mocks = deploy(alarm_email="oncall@example.com")
    sub = mocks.one("aws:sns/topicSubscription:TopicSubscription").inputs
    assert (sub["protocol"], sub["endpoint"]) == ("email", "oncall@example.com")


def test_given_topic_is_used_and_left_alone() -> None:
    external = f"arn:aws:sns:{REGION}:{ACCOUNT}:team-alerts"
    key_arn = f"arn:aws:kms:{REGION}:{ACCOUNT}:key/1234"
    mocks = deploy(alarm_topic_arn=external, alarm_topic_kms_key_arn=key_arn)
    assert not mocks.of_type(TOPIC) and not mocks.of_type(KEY) and not mocks.of_type(TOPIC_POLICY)
    assert {t.inputs["arn"] for t in mocks.of_type(TARGET)} == {external}
    notify = definition(mocks)["States"]["NotifyFailure"]["Parameters"]
    assert notify["TopicArn"] == external
    statements = by_sid(policy(mocks, "nightly-sfn-policy"))
    assert statements["PublishAlert"]["Resource"] == external
    assert statements["EncryptAlertForTopic"]["Resource"] == key_arn


# -- preview-time validation -----------------------------------------------------------------


@pytest.mark.parametrize(
    ("overrides", "match"),
    [
        ({"schedule_expression": "cron(0 3 * * *)"}, "has 5 fields"),
        ({"schedule_expression": "cron(0 3 * * * *)"}, "exactly one of day-of-month"),
        ({"schedule_expression": "cron(0 25 * * ? *)"}, "hours value 25 is out of range"),
        ({"schedule_expression": "rate(1 hours)"}, r"write rate\(1 hour\)"),
        ({"schedule_expression": "rate(5 weeks)"}, "not a valid rate"),
        ({"schedule_expression": "at(2030-02-30T03:00:00)"}, "one-time schedules"),
        ({"schedule_expression": "0 3 * * *"}, "not recognised"),
        ({"schedule_timezone": "Mars/Olympus"}, "not a known IANA time zone"),
        ({"capacity": "EC2"}, "launch type, not a capacity provider"),
        ({"capacity": "fargate"}, "cannot start with"),
        ({"capacity": "my provider"}, "capacity 'my provider' is not valid"),
        ({"subnet_ids": []}, "subnet_ids is empty"),
        ({"security_group_ids": []}, "security_group_ids is empty"),
        ({"container_name": "job's"}, "container_name"),
        ({"task_definition_arn": "reindex:3"}, "not a task definition ARN"),
        ({"cluster_arn": "inference"}, "not an ECS cluster ARN"),
        ({"task_role_arn": "reindex-task"}, "not an IAM role ARN"),
        ({"timeout_seconds": 0}, "timeout_seconds 0"),
        ({"capacity": "gpu-cp", "assign_public_ip": True}, "only supported on Fargate"),
        ({"log_retention_days": 10}, "log_retention_days 10"),
        ({"log_level": "OFF"}, "log_level"),
        ({"environment": {"BAD-NAME": "x"}}, "environment variable name"),
        ({"command": "python -m reindex"}, "list of strings"),
        ({"alarm_topic_arn": "arn:aws:sns:us-east-1:1:t", "alarm_email": "a@b.c"}, "alarm_email"),
    ],
)
def test_bad_input_fails_before_any_resource(overrides: dict[str, Any], match: str) -> None:
    with pytest.raises(ValueError, match=match):
        deploy(**overrides)
    assert pulumi_mocks.MOCKS.resources == []


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"max_attempts": 100}, "between 0 and 99"),
        ({"max_attempts": -1}, "between 0 and 99"),
        ({"backoff_rate": 0.5}, ">= 1.0"),
        ({"interval_seconds": 0}, "between 1 and"),
        ({"interval_seconds": 1.5}, "must be an integer"),
    ],
)
def test_retry_numbers_out_of_range(kwargs: dict[str, Any], match: str) -> None:
    with pytest.raises(ValueError, match=match):
        RetryPolicy(**kwargs)


def test_bad_value_arriving_as_output_still_fails_the_preview() -> None:
    with pytest.raises(ValueError, match="not a task definition ARN"):
        deploy(task_definition_arn=pulumi.Output.from_input("not-an-arn"))


@pytest.mark.parametrize(
    "expression",
    [
        "rate(1 minute)", "rate(15 minutes)", "rate(1 day)", "rate(2 hours)",
        "cron(0 3 * * ? *)", "cron(0/15 * * * ? *)", "cron(30 2 ? * MON-FRI *)",
        "cron(0 9 L * ? *)", "cron(0 9 ? * 6#3 *)", "cron(0 0 1,15 JAN,JUL ? 2030-2035)",
        "cron(0 12 ? * 6L *)", "cron(0 8 15W * ? *)", "at(2030-01-31T03:00:00)",
    ],
)  # fmt: skip
def test_valid_schedule_expressions_pass(expression: str) -> None:
    assert validate_schedule_expression(expression) == expression


def test_timezone_accepts_iana_names() -> None:
    assert validate_timezone("Europe/Paris") == "Europe/Paris"
    with pytest.raises(ValueError, match="JST"):
        validate_timezone("JST")


# -- the failure branch, executed ------------------------------------------------------------
# moto runs Amazon States Language (its interpreter is ported from LocalStack) but cannot run
# ecs:runTask.sync, so these executions start at ClassifyFailure with the {Error, Cause} that
# Catch would store at $.error, and one swaps RunTask for a task that fails to test Retry/Catch.

TASK_FAILED_CAUSE = {
    "TaskArn": f"{ECS}:task/inference/0123456789abcdef",
    "LastStatus": "STOPPED",
    "StopCode": "EssentialContainerExited",
    "StoppedReason": "Essential container in task exited",
    "Containers": [
        {"Name": "log-router", "ExitCode": 0, "LastStatus": "STOPPED"},
        {"Name": "job", "ExitCode": 3, "LastStatus": "STOPPED"},
    ],
}
NEVER_STARTED_CAUSE = {
    "TaskArn": f"{ECS}:task/inference/fedcba9876543210",
    "StopCode": "TaskFailedToStart",
    "StoppedReason": "CannotPullContainerError: pull image manifest has been retried 5 time(s)",
    "Containers": [{"Name": "job", "LastStatus": "STOPPED"}],
}


def _spec(topic_arn: str, **overrides: Any) -> sm.RunTaskSpec:
    values: dict[str, Any] = {
        "job_name": "nightly",
        "cluster_arn": CLUSTER_ARN,
        "task_definition_arn": f"{FAMILY_ARN}:3",
        "container_name": "job",
        "subnet_ids": ["subnet-a"],
        "security_group_ids": ["sg-job"],
        "capacity": "FARGATE",
        "topic_arn": topic_arn,
    }
    values.update(overrides)
    return sm.RunTaskSpec(**values)


@pytest.fixture
def sfn_world() -> Iterator[Callable[..., tuple[dict[str, Any], list[str], list[str]]]]:
    """Run a definition in moto; return (execution description, history types, SNS messages)."""
    with mock_aws(config={"stepfunctions": {"execute_state_machine": True}}):
        sns = boto3.client("sns", region_name=REGION)
        sqs = boto3.client("sqs", region_name=REGION)
        sfn = boto3.client("stepfunctions", region_name=REGION)
        topic = sns.create_topic(Name="alerts")["TopicArn"]
        queue = sqs.create_queue(QueueName="inbox")["QueueUrl"]
        queue_arn = sqs.get_queue_attributes(QueueUrl=queue, AttributeNames=["QueueArn"])[
            "Attributes"
        ]["QueueArn"]
        sns.subscribe(
            TopicArn=topic,
            Protocol="sqs",
            Endpoint=queue_arn,
            Attributes={"RawMessageDelivery": "true"},
        )

        def execute(
            edit: Callable[[dict[str, Any]], None], payload: dict[str, Any], **spec: Any
        ) -> tuple[dict[str, Any], list[str], list[str]]:
            doc = sm.build_definition(_spec(topic, **spec))
            edit(doc)
            machine = sfn.create_state_machine(
                name=f"m{uuid.uuid4().hex[:8]}",
                definition=json.dumps(doc),
                roleArn=f"arn:aws:iam::{ACCOUNT}:role/sfn",
            )["stateMachineArn"]
            execution = sfn.start_execution(
                stateMachineArn=machine, name=uuid.uuid4().hex, input=json.dumps(payload)
            )["executionArn"]
            for _ in range(200):
                described = sfn.describe_execution(executionArn=execution)
                if described["status"] != "RUNNING":
                    break
                time.sleep(0.05)
            history = [
                e["type"] for e in sfn.get_execution_history(executionArn=execution)["events"]
            ]
            received = sqs.receive_message(QueueUrl=queue, MaxNumberOfMessages=10)
            return described, history, [m["Body"] for m in received.get("Messages", [])]

        yield execute


def _start_at_classify(doc: dict[str, Any]) -> None:
    doc["StartAt"] = sm.CLASSIFY


@pytest.mark.parametrize(
    ("error", "expected"),
    [
        (
            {"Error": "States.TaskFailed", "Cause": json.dumps(TASK_FAILED_CAUSE)},
            [
                "task arn:aws:ecs:us-east-1:123456789012:task/inference/0123456789abcdef stopped "
                "(Essential container in task exited)",
                "container job exited with code 3.",  # ours, not the sidecar's 0
                "Error: States.TaskFailed",
            ],
        ),
        (
            {"Error": "States.TaskFailed", "Cause": json.dumps(NEVER_STARTED_CAUSE)},
            ["(CannotPullContainerError", "container job reported no exit code"],
        ),
        (
            {"Error": "AmazonECS.Unknown", "Cause": json.dumps({"Failures": [{"Reason": "x"}]})},
            ['AmazonECS.Unknown: {"Failures": [{"Reason": "x"}]}'],
        ),
        (
            {"Error": "ECS.InvalidParameterException", "Cause": "Container 'job' not {found}"},
            ["ECS.InvalidParameterException: Container 'job' not {found}"],
        ),
        ({"Error": "States.Timeout"}, ["States.Timeout (no cause given", "longer than 3600 s"]),
    ],
    ids=["exit-code", "never-started", "json-not-a-task", "plain-text-cause", "no-cause"],
)
def test_failure_branch_publishes_a_readable_message_and_fails(
    sfn_world: Callable[..., Any], error: dict[str, Any], expected: list[str]
) -> None:
    described, _history, messages = sfn_world(_start_at_classify, {"error": error})
    assert described["status"] == "FAILED"
    assert described["error"] == sm.FAILED_ERROR
    (message,) = messages
    assert message.startswith("Scheduled ECS task nightly failed: ")
    for fragment in expected:
        assert fragment in message
    assert f":execution:{described['stateMachineArn'].rsplit(':', 1)[1]}:" in message
    assert described["cause"] == message


def test_retry_then_catch_then_alert(sfn_world: Callable[..., Any]) -> None:
    """Keep RunTask's Retry/Catch, swap its work for a call that always fails (publishing to a
    topic that does not exist): it must run 1 + max_attempts times, then alert and fail."""

    def failing_run_task(doc: dict[str, Any]) -> None:
        state = doc["States"][sm.RUN_TASK]
        state["Resource"] = sm.SNS_PUBLISH
        state["Parameters"] = {
            "TopicArn": f"arn:aws:sns:{REGION}:{ACCOUNT}:missing",
            "Message": "x",
        }

    described, history, messages = sfn_world(
        failing_run_task, {}, retry=RetryPolicy(interval_seconds=1, max_attempts=2, backoff_rate=1)
    )
    assert described["status"] == "FAILED"
    # 3 attempts of RunTask, then the alert is published once
    assert history.count("TaskScheduled") == 3 + 1
    assert history.count("TaskFailed") == 3
    (message,) = messages
    assert "Scheduled ECS task nightly failed" in message


def test_alert_publish_is_retried_then_the_run_fails_as_unreported(
    sfn_world: Callable[..., Any],
) -> None:
    """The failure branch's SNS publish is retried (a throttled or briefly refused publish must
    not lose the one message of a failed run); when it still fails, the execution ends with
    its own error, which the unreported-failure alarm counts. Removing the Retry of
    NotifyFailure makes this fail (one publish attempt instead of four)."""

    def unreachable_topic(doc: dict[str, Any]) -> None:
        doc["StartAt"] = sm.CLASSIFY
        notify = doc["States"][sm.NOTIFY]
        notify["Parameters"]["TopicArn"] = f"arn:aws:sns:{REGION}:{ACCOUNT}:missing"
        for retrier in notify["Retry"]:  # same attempts, shorter waits
            retrier["IntervalSeconds"], retrier["BackoffRate"] = 1, 1.0

    described, history, messages = sfn_world(
        unreachable_topic, {"error": {"Error": "States.Timeout"}}
    )
    assert described["status"] == "FAILED"
    assert described["error"] == sm.UNREPORTED_ERROR
    assert history.count("TaskScheduled") == 1 + 3  # the publish and its three retries
    assert messages == []


def test_task_definition_arn_parsing() -> None:
    ref = parse_task_definition_arn(f"{FAMILY_ARN}:12")
    assert (ref.family, ref.family_arn, ref.revision) == ("reindex", FAMILY_ARN, 12)
    assert ref.iam_resources == [f"{FAMILY_ARN}:12"]
