"""SNS topic + EventBridge rules that tell people when an ECS service deploys badly or a task dies.

Three rules feed one encrypted topic:
- ``ECS Deployment State Change`` with ``eventName`` SERVICE_DEPLOYMENT_FAILED for this service
  (the circuit breaker fired and rolled back);
- ``ECS Task State Change`` for tasks of this service (``group`` ``service:<name>`` in this
  cluster) that reached STOPPED with any container exit code other than 0;
- ``ECS Task State Change`` for tasks of this service that ECS stopped for failing their load
  balancer or container health checks (the service exits 0 on SIGTERM, so the exit-code rule
  cannot see them); deployments and scale-in do not match.

The topic, its customer-managed KMS key and its policy (``events.amazonaws.com`` may publish only
on behalf of these rules, CloudWatch for this account's alarms) come from
:mod:`components.alert_topic`; each target's dead-letter queue and ``FailedInvocations`` alarms
from :mod:`components.alert_delivery`.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import pulumi
import pulumi_aws as aws

from components.alert_delivery import alert_targets
from components.alert_topic import create_alert_topic
from components.ecs_events import (
    UNHEALTHY_PATHS,
    UNHEALTHY_TEMPLATE,
    task_stopped_nonzero_pattern,
    task_stopped_unhealthy_pattern,
)


@dataclass
class ServiceNotificationsArgs:
    """What to watch and whom to tell."""

    cluster_arn: pulumi.Input[str]
    service_arn: pulumi.Input[str]
    service_name: pulumi.Input[str]
    email: str | None = None  # optional e-mail subscription (must be confirmed by the recipient)
    tags: Mapping[str, str] = field(default_factory=dict)


def deployment_failed_pattern(service_arn: str) -> dict[str, Any]:
    """EventBridge pattern: the circuit breaker failed a deployment of this service."""
    return {
        "source": ["aws.ecs"],
        "detail-type": ["ECS Deployment State Change"],
        "resources": [service_arn],
        "detail": {"eventName": ["SERVICE_DEPLOYMENT_FAILED"]},
    }


def task_failed_pattern(cluster_arn: str, service_name: str) -> dict[str, Any]:
    """EventBridge pattern: a task of this service stopped with a non-zero container exit code."""
    return task_stopped_nonzero_pattern(cluster_arn, f"service:{service_name}")


def task_unhealthy_pattern(cluster_arn: str, service_name: str) -> dict[str, Any]:
    """EventBridge pattern: ECS stopped a task of this service for failed health checks."""
    return task_stopped_unhealthy_pattern(cluster_arn, f"service:{service_name}")


class ServiceNotifications(pulumi.ComponentResource):
    """Encrypted SNS topic fed by EventBridge rules for one ECS service."""

    topic_arn: pulumi.Output[str]
    kms_key_arn: pulumi.Output[str]
    deployment_rule_arn: pulumi.Output[str]
    task_rule_arn: pulumi.Output[str]
    unhealthy_rule_arn: pulumi.Output[str]
    dead_letter_queue_arn: pulumi.Output[str]

    def __init__(
        self,
        name: str,
        args: ServiceNotificationsArgs,
        opts: pulumi.ResourceOptions | None = None,
    ) -> None:
        super().__init__("onnx-ecs:index:ServiceNotifications", name, None, opts)
        child = pulumi.ResourceOptions(parent=self)
        tags = dict(args.tags)

        invoke = pulumi.InvokeOutputOptions(parent=self)
        alerts = create_alert_topic(
            self,
            name=name,
            topic_name=f"{name}-topic",
            description="Encrypts the ECS service notification topic",
            partition=aws.get_partition_output(opts=invoke).partition,
            account=aws.get_caller_identity_output(opts=invoke).account_id,
            email=args.email,
            tags=tags,
        )

        deployment_rule = aws.cloudwatch.EventRule(
            f"{name}-deployment-failed",
            description="ECS deployment of the inference service failed (circuit breaker)",
            event_pattern=pulumi.Output.from_input(args.service_arn).apply(
                lambda arn: json.dumps(deployment_failed_pattern(arn))
            ),
            tags=tags,
            opts=child,
        )
        task_rule = aws.cloudwatch.EventRule(
            f"{name}-task-failed",
            description="A task of the inference service stopped with a non-zero exit code",
            event_pattern=pulumi.Output.all(args.cluster_arn, args.service_name).apply(
                lambda v: json.dumps(task_failed_pattern(v[0], v[1]))
            ),
            tags=tags,
            opts=child,
        )
        unhealthy_rule = aws.cloudwatch.EventRule(
            f"{name}-task-unhealthy",
            description="ECS stopped a task of the inference service for failed health checks",
            event_pattern=pulumi.Output.all(args.cluster_arn, args.service_name).apply(
                lambda v: json.dumps(task_unhealthy_pattern(v[0], v[1]))
            ),
            tags=tags,
            opts=child,
        )
        unhealthy_message = aws.cloudwatch.EventTargetInputTransformerArgs(
            input_paths=UNHEALTHY_PATHS, input_template=UNHEALTHY_TEMPLATE
        )
        dlq = alert_targets(
            self,
            name,
            rules=[
                ("deployment", deployment_rule, {}),
                ("task", task_rule, {}),
                ("unhealthy", unhealthy_rule, {"input_transformer": unhealthy_message}),
            ],
            topic_arn=alerts.arn,
            tags=tags,
        )

        alerts.allow_rules(
            f"{name}-topic-policy", [deployment_rule.arn, task_rule.arn, unhealthy_rule.arn]
        )

        self.topic_arn = alerts.arn
        self.kms_key_arn = alerts.kms_key_arn
        self.deployment_rule_arn = deployment_rule.arn
        self.task_rule_arn = task_rule.arn
        self.unhealthy_rule_arn = unhealthy_rule.arn
        self.dead_letter_queue_arn = dlq.arn
        self.register_outputs(
            {
                "topic_arn": self.topic_arn,
                "kms_key_arn": self.kms_key_arn,
                "deployment_rule_arn": self.deployment_rule_arn,
                "task_rule_arn": self.task_rule_arn,
                "unhealthy_rule_arn": self.unhealthy_rule_arn,
                "dead_letter_queue_arn": self.dead_letter_queue_arn,
            }
        )
