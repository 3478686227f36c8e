"""Make a lost alert itself visible: dead-letter queues and alarms for the alert paths.

An EventBridge rule whose target refuses a delivery (a key or topic policy that does not admit
it, a deleted topic, throttling past the retries) drops the event after its retries, and nothing
tells anyone: the alert was the message. So every alert target here gets

- a dead-letter queue (a standard SQS queue, SSE-SQS encrypted, 14 days' retention) that keeps
  the undelivered events, with a queue policy letting EventBridge send to it on behalf of the
  given rules only (EventBridge User Guide, "Using dead-letter queues to process undelivered
  events", https://docs.aws.amazon.com/eventbridge/latest/userguide/rule-dlq.html);
- a CloudWatch alarm per rule on ``AWS/Events`` ``FailedInvocations`` (any failed delivery in
  five minutes), and one on the queue's visible messages, both notifying the alert topic.

EventBridge Scheduler's dead-letter queue is written to by the schedule's execution role, not
by a queue policy (Scheduler User Guide, "Configuring a schedule's dead-letter queue",
https://docs.aws.amazon.com/scheduler/latest/UserGuide/configuring-schedule-dlq.html), so the
queue policy is optional here.

An alarm on a delivery to the very topic that failed may fail the same way (a broken key policy
refuses CloudWatch too); the dead-letter queue still holds the events and the alarm's state is
visible in the console. That is why the key policy itself is tested against the SNS guide.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import pulumi
import pulumi_aws as aws

from components.alert_topic import EVENTS
from components.iam import Statement, policy_json

DLQ_RETENTION_SECONDS = 14 * 24 * 3600  # SQS maximum: time to notice and redrive
ALARM_PERIOD_SECONDS = 300


def dlq_policy_statement(queue_arn: str, rule_arns: Sequence[str]) -> Statement:
    """EventBridge may send undelivered events of these rules (and no others) to the queue."""
    return {
        "Sid": "EventBridgeRulesDeadLetter",
        "Effect": "Allow",
        "Principal": {"Service": EVENTS},
        "Action": "sqs:SendMessage",
        "Resource": queue_arn,
        "Condition": {"ArnEquals": {"aws:SourceArn": list(rule_arns)}},
    }


def create_dead_letter_queue(
    parent: pulumi.Resource, name: str, tags: Mapping[str, str] | None = None
) -> aws.sqs.Queue:
    """``<name>`` as a standard, SSE-SQS-encrypted queue (EventBridge and Scheduler DLQs must
    be standard queues, not FIFO)."""
    return aws.sqs.Queue(
        name,
        message_retention_seconds=DLQ_RETENTION_SECONDS,
        sqs_managed_sse_enabled=True,
        tags=dict(tags or {}),
        opts=pulumi.ResourceOptions(parent=parent),
    )


def allow_rules_to_dead_letter(
    parent: pulumi.Resource,
    name: str,
    queue: aws.sqs.Queue,
    rule_arns: Sequence[pulumi.Input[str]],
) -> aws.sqs.QueuePolicy:
    statement = pulumi.Output.all(queue.arn, *rule_arns).apply(
        lambda v: dlq_policy_statement(v[0], v[1:])
    )
    return aws.sqs.QueuePolicy(
        name,
        queue_url=queue.url,
        policy=policy_json([statement]),
        opts=pulumi.ResourceOptions(parent=parent),
    )


def _alarm(
    parent: pulumi.Resource,
    name: str,
    *,
    description: str,
    namespace: str,
    metric_name: str,
    dimensions: Mapping[str, pulumi.Input[str]],
    topic_arn: pulumi.Input[str],
    tags: Mapping[str, str] | None,
    statistic: str = "Sum",
) -> aws.cloudwatch.MetricAlarm:
    """Fires on any datapoint above zero in one period; missing data (no traffic) is fine.
    Notifies on ALARM only: one message per incident, not a second one when it clears."""
    return aws.cloudwatch.MetricAlarm(
        name,
        alarm_description=description,
        namespace=namespace,
        metric_name=metric_name,
        dimensions=dict(dimensions),
        statistic=statistic,
        period=ALARM_PERIOD_SECONDS,
        evaluation_periods=1,
        threshold=0,
        comparison_operator="GreaterThanThreshold",
        treat_missing_data="notBreaching",
        alarm_actions=[topic_arn],
        tags=dict(tags or {}),
        opts=pulumi.ResourceOptions(parent=parent),
    )


def failed_invocations_alarm(
    parent: pulumi.Resource,
    name: str,
    rule_name: pulumi.Input[str],
    topic_arn: pulumi.Input[str],
    tags: Mapping[str, str] | None = None,
) -> aws.cloudwatch.MetricAlarm:
    """EventBridge could not deliver an event of this rule to its target."""
    return _alarm(
        parent,
        name,
        description="An EventBridge alert could not be delivered (see the dead-letter queue)",
        namespace="AWS/Events",
        metric_name="FailedInvocations",
        dimensions={"RuleName": rule_name},
        topic_arn=topic_arn,
        tags=tags,
    )


def dead_letter_alarm(
    parent: pulumi.Resource,
    name: str,
    queue: aws.sqs.Queue,
    topic_arn: pulumi.Input[str],
    what: str,
    tags: Mapping[str, str] | None = None,
) -> aws.cloudwatch.MetricAlarm:
    """Messages are waiting in the dead-letter queue: ``what`` was not delivered."""
    return _alarm(
        parent,
        name,
        description=f"{what} could not be delivered; the events wait in the dead-letter queue",
        namespace="AWS/SQS",
        metric_name="ApproximateNumberOfMessagesVisible",
        dimensions={"QueueName": queue.name},
        topic_arn=topic_arn,
        tags=tags,
        statistic="Maximum",
    )


def dead_letter_config(queue: aws.sqs.Queue) -> aws.cloudwatch.EventTargetDeadLetterConfigArgs:
    return aws.cloudwatch.EventTargetDeadLetterConfigArgs(arn=queue.arn)


def alert_targets(
    parent: pulumi.Resource,
    name: str,
    *,
    rules: Sequence[tuple[str, aws.cloudwatch.EventRule, dict[str, Any]]],
    topic_arn: pulumi.Input[str],
    tags: Mapping[str, str] | None = None,
) -> aws.sqs.Queue:
    """One target per ``(role, rule, extra target args)`` sending to ``topic_arn``, each with
    the shared dead-letter queue ``<name>-alerts-dlq``, a ``FailedInvocations`` alarm per rule,
    and an alarm on the queue. Returns the queue."""
    queue = create_dead_letter_queue(parent, f"{name}-alerts-dlq", tags)
    allow_rules_to_dead_letter(
        parent, f"{name}-alerts-dlq-policy", queue, [rule.arn for _, rule, _ in rules]
    )
    for role, rule, extra in rules:
        aws.cloudwatch.EventTarget(
            f"{name}-{role}-target",
            rule=rule.name,
            arn=topic_arn,
            dead_letter_config=dead_letter_config(queue),
            opts=pulumi.ResourceOptions(parent=parent),
            **extra,
        )
        failed_invocations_alarm(
            parent, f"{name}-{role}-failed-invocations", rule.name, topic_arn, tags
        )
    dead_letter_alarm(
        parent, f"{name}-alerts-dlq-alarm", queue, topic_arn, "An EventBridge alert", tags
    )
    return queue
