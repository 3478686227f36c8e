"""Alerts that arrive: what AWS requires of an encrypted alert topic, its publishers, and a lost
alert (dead-letter queues, FailedInvocations alarms), checked on the stacks' real components
under Pulumi mocks. Each test cites the guide whose requirement it encodes."""

from __future__ import annotations

from typing import Any

import pytest

from components.notifications import ServiceNotifications, ServiceNotificationsArgs
from components.scheduled.alarms import unreported_failure_filter_pattern
from components.scheduled.run_task import ScheduledRunTask
from components.state_machine import FAILED_ERROR, UNREPORTED_ERROR
from tests.components.helpers import by_sid, policy_statements
from tests.components.test_scheduled_run_task import make_args
from tests.pulumi_mocks import ACCOUNT, REGION, RecordingMocks, run

KEY = "aws:kms/key:Key"
TOPIC_POLICY = "aws:sns/topicPolicy:TopicPolicy"
RULE = "aws:cloudwatch/eventRule:EventRule"
TARGET = "aws:cloudwatch/eventTarget:EventTarget"
QUEUE = "aws:sqs/queue:Queue"
QUEUE_POLICY = "aws:sqs/queuePolicy:QueuePolicy"
ALARM = "aws:cloudwatch/metricAlarm:MetricAlarm"
METRIC_FILTER = "aws:cloudwatch/logMetricFilter:LogMetricFilter"
SCHEDULE = "aws:scheduler/schedule:Schedule"
CLUSTER_ARN = f"arn:aws:ecs:{REGION}:{ACCOUNT}:cluster/inference"
SOURCE_KEYS = {"aws:SourceAccount", "aws:SourceArn", "aws:SourceOrgID"}


def _service() -> RecordingMocks:
    return run(
        lambda: ServiceNotifications(
            "svc-notify",
            ServiceNotificationsArgs(
                cluster_arn=CLUSTER_ARN,
                service_arn=f"arn:aws:ecs:{REGION}:{ACCOUNT}:service/inference/svc",
                service_name="svc",
            ),
        )
    )


def _scheduled() -> RecordingMocks:
    return run(lambda: ScheduledRunTask("nightly", make_args()))


@pytest.fixture(scope="module", params=["service", "scheduled"])
def stack(request: pytest.FixtureRequest) -> RecordingMocks:
    mocks = _service() if request.param == "service" else _scheduled()
    copy = RecordingMocks()
    copy.resources = list(mocks.resources)
    return copy


def _condition_keys(statement: dict[str, Any]) -> set[str]:
    return {key for block in statement.get("Condition", {}).values() for key in block}


def _services(statement: dict[str, Any]) -> set[str]:
    service = statement["Principal"].get("Service", [])
    return set([service] if isinstance(service, str) else service)


def test_key_policy_lets_eventbridge_and_cloudwatch_use_the_key(stack: RecordingMocks) -> None:
    """SNS Developer Guide, "Key management" > "Enable compatibility between event sources from
    AWS services and encrypted topics"
    (https://docs.aws.amazon.com/sns/latest/dg/sns-key-management.html#compatibility-with-aws-services):
    the key policy of an encrypted topic must allow the publishing service's principal
    (events.amazonaws.com for EventBridge, cloudwatch.amazonaws.com for alarms)
    kms:GenerateDataKey* and kms:Decrypt, and aws:SourceAccount, aws:SourceArn and
    aws:SourceOrgID are NOT supported in that key policy for EventBridge to encrypted topics:
    with them, every EventBridge alert is refused."""
    statements = policy_statements(stack, KEY)
    for service in ("events.amazonaws.com", "cloudwatch.amazonaws.com"):
        grants = [
            s
            for s in statements
            if s["Effect"] == "Allow"
            and service in _services(s)
            and {"kms:GenerateDataKey*", "kms:Decrypt"} <= set(s["Action"])
        ]
        assert grants, f"the key policy does not let {service} encrypt for the topic"
        usable = [g for g in grants if not (_condition_keys(g) & SOURCE_KEYS)]
        assert usable, f"{service} may use the key only under a source condition: {grants}"
    assert not any(s["Effect"] == "Deny" for s in statements)


def test_topic_policy_lets_the_rules_and_this_accounts_alarms_publish(
    stack: RecordingMocks,
) -> None:
    """EventBridge User Guide, "Using resource-based policies for Amazon EventBridge" > "Amazon
    SNS permissions" (https://docs.aws.amazon.com/eventbridge/latest/userguide/eb-use-resource-based.html#eb-sns-permissions):
    the topic policy must allow events.amazonaws.com sns:Publish (here only for the stack's
    rules, by aws:SourceArn). CloudWatch User Guide, "Using Amazon CloudWatch alarms" >
    "Configuring Amazon SNS notifications": the topic policy must allow
    cloudwatch.amazonaws.com sns:Publish, with aws:SourceArn / aws:SourceAccount against
    the confused deputy (supported in a topic policy, unlike the EventBridge key policy)."""
    statements = by_sid(policy_statements(stack, TOPIC_POLICY))
    rules = {f"arn:aws:cloudwatch:{REGION}:{ACCOUNT}:{r.name}" for r in stack.of_type(RULE)}
    events = statements["EventBridgeRulesPublish"]
    assert _services(events) == {"events.amazonaws.com"}
    assert events["Action"] == "sns:Publish"
    assert set(events["Condition"]["ArnEquals"]["aws:SourceArn"]) == rules
    alarms = statements["CloudWatchAlarmsPublish"]
    assert _services(alarms) == {"cloudwatch.amazonaws.com"}
    assert alarms["Action"] == "sns:Publish"
    assert alarms["Resource"] == events["Resource"]
    assert alarms["Condition"] == {
        "ArnLike": {"aws:SourceArn": f"arn:aws:cloudwatch:{REGION}:{ACCOUNT}:alarm:*"},
        "StringEquals": {"aws:SourceAccount": ACCOUNT},
    }


def test_every_eventbridge_target_has_a_dead_letter_queue_it_may_write(
    stack: RecordingMocks,
) -> None:
    """EventBridge User Guide, "Using dead-letter queues to process undelivered events"
    (https://docs.aws.amazon.com/eventbridge/latest/userguide/rule-dlq.html): a target without a
    DLQ loses events that fail delivery (permission errors are not even retried); a DLQ is a
    *standard* SQS queue whose policy must allow events.amazonaws.com sqs:SendMessage, with
    aws:SourceArn set to the rule."""
    targets = stack.of_type(TARGET)
    assert len(targets) == len(stack.of_type(RULE)) >= 2
    queues = {f"arn:aws:sqs:{REGION}:{ACCOUNT}:{q.name}": q for q in stack.of_type(QUEUE)}
    for target in targets:
        dlq = target.inputs.get("deadLetterConfig", {}).get("arn")
        assert dlq in queues, f"target {target.name} has no dead-letter queue"
        queue = queues[dlq].inputs
        assert not queue.get("fifoQueue")
        assert queue["sqsManagedSseEnabled"] is True
        assert queue["messageRetentionSeconds"] == 14 * 24 * 3600
    (statement,) = policy_statements(stack, QUEUE_POLICY)
    assert _services(statement) == {"events.amazonaws.com"}
    assert statement["Action"] == "sqs:SendMessage"
    rules = {f"arn:aws:cloudwatch:{REGION}:{ACCOUNT}:{r.name}" for r in stack.of_type(RULE)}
    assert set(statement["Condition"]["ArnEquals"]["aws:SourceArn"]) == rules


def test_failed_invocations_of_every_rule_raise_an_alarm(stack: RecordingMocks) -> None:
    """EventBridge User Guide, "Monitoring Amazon EventBridge" (metrics, AWS/Events namespace):
    FailedInvocations counts invocations that failed permanently, per RuleName; "Why isn't my
    SNS topic receiving EventBridge notifications" (AWS re:Post knowledge center) names it as
    the sign of a refused delivery. One alarm per rule, notifying the alert topic."""
    alarms = [a.inputs for a in stack.of_type(ALARM)]
    watched = {
        a["dimensions"]["RuleName"]
        for a in alarms
        if a["namespace"] == "AWS/Events" and a["metricName"] == "FailedInvocations"
    }
    assert watched == {r.name for r in stack.of_type(RULE)}
    dlq_alarms = [a for a in alarms if a["namespace"] == "AWS/SQS"]
    assert dlq_alarms and all(
        a["metricName"] == "ApproximateNumberOfMessagesVisible" for a in dlq_alarms
    )
    for alarm in alarms:
        assert alarm["threshold"] == 0
        assert alarm["comparisonOperator"] == "GreaterThanThreshold"
        assert alarm["treatMissingData"] == "notBreaching"  # no events is not a failure
        assert len(alarm["alarmActions"]) == 1 and ":sns:" in alarm["alarmActions"][0]


def test_schedule_has_a_dead_letter_queue_its_role_may_write() -> None:
    """EventBridge Scheduler User Guide, "Configuring a schedule's dead-letter queue"
    (https://docs.aws.amazon.com/scheduler/latest/UserGuide/configuring-schedule-dlq.html): when
    a schedule fails to invoke its target after its retries, Scheduler sends the event to the
    target's DLQ, a standard SQS queue (FIFO is not supported), and the schedule's execution
    role needs sqs:SendMessage on it. An alarm on the queue reports a run that never started."""
    mocks = _scheduled()
    schedule = mocks.one(SCHEDULE).inputs
    dlq_arn = schedule["target"]["deadLetterConfig"]["arn"]
    assert dlq_arn == f"arn:aws:sqs:{REGION}:{ACCOUNT}:nightly-schedule-dlq"
    queue = mocks.one(QUEUE, "nightly-schedule-dlq").inputs
    assert not queue.get("fifoQueue") and queue["sqsManagedSseEnabled"] is True
    statements = by_sid(
        policy_statements(mocks, "aws:iam/rolePolicy:RolePolicy", "nightly-scheduler-policy")
    )
    assert statements["DeadLetterUndeliveredStarts"] == {
        "Sid": "DeadLetterUndeliveredStarts",
        "Effect": "Allow",
        "Action": "sqs:SendMessage",
        "Resource": dlq_arn,
    }
    alarm = mocks.one(ALARM, "nightly-schedule-dlq-alarm").inputs
    assert alarm["dimensions"] == {"QueueName": "nightly-schedule-dlq"}


def test_state_machine_failures_the_branch_cannot_report_raise_alarms() -> None:
    """Step Functions Developer Guide, "Monitoring Step Functions metrics using Amazon
    CloudWatch": ExecutionsTimedOut (AWS/States, dimension StateMachineArn); "Logging Step
    Functions using CloudWatch Logs": ExecutionFailed events carry details.error at every log
    level. A run whose failure message was sent ends with ScheduledTaskFailed and must not
    alarm again (one message per failed run); any other failure must."""
    mocks = _scheduled()
    timed_out = mocks.one(ALARM, "nightly-timed-out").inputs
    assert (timed_out["namespace"], timed_out["metricName"]) == ("AWS/States", "ExecutionsTimedOut")
    assert timed_out["dimensions"] == {
        "StateMachineArn": f"arn:aws:sfn:{REGION}:{ACCOUNT}:nightly-sfn"
    }
    metric_filter = mocks.one(METRIC_FILTER).inputs
    assert metric_filter["pattern"] == unreported_failure_filter_pattern()
    assert f'!= "{FAILED_ERROR}"' in metric_filter["pattern"]
    unreported = mocks.one(ALARM, "nightly-unreported-failures").inputs
    transform = metric_filter["metricTransformation"]
    assert (unreported["namespace"], unreported["metricName"]) == (
        transform["namespace"],
        transform["name"],
    )
    assert UNREPORTED_ERROR != FAILED_ERROR


def test_cloudtrail_requirement_is_said_at_preview(monkeypatch: pytest.MonkeyPatch) -> None:
    """EventBridge User Guide, "Events from AWS services" > "Events delivered via AWS
    CloudTrail": AWS API call events reach EventBridge only when a CloudTrail trail records
    them, so the RunTask-failure rule is silent in an account without one."""
    import pulumi

    warnings: list[str] = []
    monkeypatch.setattr(pulumi.log, "warn", lambda msg, *a, **k: warnings.append(msg))
    _scheduled()
    assert any("CloudTrail trail" in w and "management events" in w for w in warnings)


def test_prod_stack_checklist_mentions_cloudtrail() -> None:
    from pathlib import Path

    text = Path(__file__).resolve().parents[2].joinpath("Pulumi.prod.yaml").read_text()
    checklist = text.split("config:")[0]
    assert "CloudTrail" in checklist and "management events" in checklist
