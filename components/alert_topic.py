"""An encrypted SNS topic that EventBridge rules may publish to, shared by every alert path.

Used by :class:`components.notifications.ServiceNotifications` (failed deployments, tasks that
exit non-zero) and :class:`components.scheduled.run_task.ScheduledRunTask` (failed runs), so
the key policy and topic policy are written once.

The topic is encrypted with a customer-managed KMS key because the AWS-managed ``alias/aws/sns``
key's policy cannot be edited, so neither EventBridge nor CloudWatch could publish to a topic
encrypted with it. Who may publish is decided by the *topic* policy: EventBridge on behalf of the
given rules only, CloudWatch on behalf of this account's alarms only. The *key* policy lets both
services use the key without source conditions: the SNS developer guide states that
``aws:SourceAccount``, ``aws:SourceArn`` and ``aws:SourceOrgID`` are not supported in a KMS key
policy for EventBridge deliveries to an encrypted topic (the request SNS makes to KMS does not
carry them, so every alert would be dropped silently). CloudWatch gets the same unconditioned
grant, as in the guide's example; the key encrypts nothing but this topic.

The children are created under the caller's component with the names the caller gives, rather
than under a component of their own: a new parent would change their URNs, and Pulumi would
replace the key and topic of deployed stacks (a new topic ARN, e-mail subscriptions to confirm
again).
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import pulumi
import pulumi_aws as aws

from components.iam import Statement, policy_json

EVENTS = "events.amazonaws.com"
CLOUDWATCH = "cloudwatch.amazonaws.com"
SNS_KEY_GUIDE = (
    "https://docs.aws.amazon.com/sns/latest/dg/sns-key-management.html"
    "#compatibility-with-aws-services"
)


def key_policy(partition: str, account: str) -> dict[str, Any]:
    """The account administers the key; EventBridge and CloudWatch may use it to publish to the
    encrypted topic (``kms:GenerateDataKey*`` and ``kms:Decrypt``, no source conditions: see the
    module docstring and SNS_KEY_GUIDE)."""
    return {
        "Version": "2012-10-17",
        "Statement": [
            {
                "Sid": "AccountAdministers",
                "Effect": "Allow",
                "Principal": {"AWS": f"arn:{partition}:iam::{account}:root"},
                "Action": "kms:*",
                "Resource": "*",
            },
            {
                "Sid": "EventBridgeAndCloudWatchPublishToEncryptedTopic",
                "Effect": "Allow",
                "Principal": {"Service": [EVENTS, CLOUDWATCH]},
                "Action": ["kms:GenerateDataKey*", "kms:Decrypt"],
                "Resource": "*",
            },
        ],
    }


def topic_policy_statement(topic_arn: str, rule_arns: Sequence[str]) -> Statement:
    """Let EventBridge publish to the topic on behalf of these rules only."""
    return {
        "Sid": "EventBridgeRulesPublish",
        "Effect": "Allow",
        "Principal": {"Service": EVENTS},
        "Action": "sns:Publish",
        "Resource": topic_arn,
        "Condition": {"ArnEquals": {"aws:SourceArn": list(rule_arns)}},
    }


def alarms_publish_statement(topic_arn: str) -> Statement:
    """Let CloudWatch publish to the topic on behalf of this account's alarms (in the topic's
    region) only: the confused-deputy conditions belong here, in the topic policy."""
    partition, _, region, account = topic_arn.split(":")[1:5]
    return {
        "Sid": "CloudWatchAlarmsPublish",
        "Effect": "Allow",
        "Principal": {"Service": CLOUDWATCH},
        "Action": "sns:Publish",
        "Resource": topic_arn,
        "Condition": {
            "ArnLike": {"aws:SourceArn": f"arn:{partition}:cloudwatch:{region}:{account}:alarm:*"},
            "StringEquals": {"aws:SourceAccount": account},
        },
    }


@dataclass(frozen=True)
class AlertTopic:
    """The topic and its key, children of ``parent``."""

    parent: pulumi.Resource
    key: aws.kms.Key
    topic: aws.sns.Topic

    @property
    def arn(self) -> pulumi.Output[str]:
        return self.topic.arn

    @property
    def kms_key_arn(self) -> pulumi.Output[str]:
        return self.key.arn

    def allow_rules(self, name: str, rule_arns: Sequence[pulumi.Input[str]]) -> aws.sns.TopicPolicy:
        """Let these EventBridge rules (and no one else through EventBridge) and this account's
        CloudWatch alarms publish.

        A topic policy replaces the topic's default policy, which is why only topics created
        here get one; a topic given by its owner keeps the owner's policy."""
        statement = pulumi.Output.all(self.topic.arn, *rule_arns).apply(
            lambda v: topic_policy_statement(v[0], v[1:])
        )
        alarms = self.topic.arn.apply(alarms_publish_statement)
        return aws.sns.TopicPolicy(
            name,
            arn=self.topic.arn,
            policy=policy_json([statement, alarms]),
            opts=pulumi.ResourceOptions(parent=self.parent),
        )


def create_alert_topic(
    parent: pulumi.Resource,
    *,
    name: str,
    topic_name: str,
    description: str,
    partition: pulumi.Input[str],
    account: pulumi.Input[str],
    email: str | None = None,
    tags: Mapping[str, str] | None = None,
) -> AlertTopic:
    """Create ``<name>-key``, the topic ``topic_name`` and, with ``email``, ``<name>-email`` (a
    subscription the recipient must confirm) as children of ``parent``."""
    child = pulumi.ResourceOptions(parent=parent)
    tags = dict(tags or {})
    key = aws.kms.Key(
        f"{name}-key",
        description=description,
        enable_key_rotation=True,
        deletion_window_in_days=30,
        policy=pulumi.Output.all(partition, account).apply(
            lambda v: json.dumps(key_policy(v[0], v[1]))
        ),
        tags=tags,
        opts=child,
    )
    topic = aws.sns.Topic(topic_name, kms_master_key_id=key.arn, tags=tags, opts=child)
    if email:
        aws.sns.TopicSubscription(
            f"{name}-email", topic=topic.arn, protocol="email", endpoint=email, opts=child
        )
    return AlertTopic(parent=parent, key=key, topic=topic)
