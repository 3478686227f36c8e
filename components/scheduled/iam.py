"""IAM statements for ScheduledRunTask, as pure functions of resolved ARNs.

Least privilege, following "IAM policies for Amazon ECS/AWS Fargate" in the Step Functions
developer guide, but tighter where ECS allows it:

- ``ecs:RunTask`` only on the given task definition (the exact revision, or the family's
  revisions when no revision was given), and only in the given cluster (``ecs:cluster``);
- ``ecs:StopTask`` / ``ecs:DescribeTasks`` on tasks of that cluster only. The AWS template uses
  ``"*"`` because task ids are unknown in advance; the task ARN's cluster segment is known;
- ``ecs:TagResource`` only while creating tasks with RunTask (``PropagateTags`` needs it);
- ``iam:PassRole`` only for the task role and execution role, only to ECS tasks;
- ``events:PutTargets/PutRule/DescribeRule`` only on the AWS-managed rule through which
  ``.sync`` learns that the task stopped;
- ``sns:Publish`` on the alert topic, plus the KMS key that encrypts it;
- CloudWatch Logs *delivery* actions on ``"*"``: the one exception. Step Functions sets up log
  delivery through the vended-logs API, whose actions do not support resource-level
  permissions (Step Functions guide, "IAM policies for logging to CloudWatch Logs").
"""

from __future__ import annotations

from typing import Any

from components.scheduled.validation import TaskDefinitionRef

Statement = dict[str, Any]

MANAGED_RULE = "StepFunctionsGetEventsForECSTaskRule"

LOG_DELIVERY_ACTIONS = [
    "logs:CreateLogDelivery",
    "logs:GetLogDelivery",
    "logs:UpdateLogDelivery",
    "logs:DeleteLogDelivery",
    "logs:ListLogDeliveries",
    "logs:PutResourcePolicy",
    "logs:DescribeResourcePolicies",
    "logs:DescribeLogGroups",
]
XRAY_ACTIONS = [
    "xray:PutTraceSegments",
    "xray:PutTelemetryRecords",
    "xray:GetSamplingRules",
    "xray:GetSamplingTargets",
]


def task_arn_pattern(cluster_arn: str) -> str:
    """``arn:...:cluster/<name>`` -> ``arn:...:task/<name>/*`` (tasks of that cluster)."""
    prefix, _, name = cluster_arn.partition(":cluster/")
    return f"{prefix}:task/{name}/*"


def run_task_statements(
    cluster_arn: str,
    task_definition: TaskDefinitionRef,
    task_role_arn: str,
    execution_role_arn: str,
) -> list[Statement]:
    """Run, watch, stop and tag tasks of one task definition in one cluster."""
    in_cluster = {"ArnEquals": {"ecs:cluster": cluster_arn}}
    return [
        {
            "Sid": "RunOnlyThisTaskDefinitionInThisCluster",
            "Effect": "Allow",
            "Action": "ecs:RunTask",
            "Resource": task_definition.iam_resources,
            "Condition": in_cluster,
        },
        {
            # The task ARN names the cluster, so the resource alone scopes this.
            "Sid": "WatchAndStopTasksOfThisCluster",
            "Effect": "Allow",
            "Action": ["ecs:DescribeTasks", "ecs:StopTask"],
            "Resource": task_arn_pattern(cluster_arn),
        },
        {
            "Sid": "TagTasksWhileRunningThem",
            "Effect": "Allow",
            "Action": "ecs:TagResource",
            "Resource": task_arn_pattern(cluster_arn),
            "Condition": {"StringEquals": {"ecs:CreateAction": "RunTask"}},
        },
        {
            "Sid": "PassOnlyTheTaskRoles",
            "Effect": "Allow",
            "Action": "iam:PassRole",
            "Resource": [task_role_arn, execution_role_arn],
            "Condition": {"StringEquals": {"iam:PassedToService": "ecs-tasks.amazonaws.com"}},
        },
    ]


def sync_rule_statement(partition: str, region: str, account: str) -> Statement:
    """The managed rule ``.sync`` creates to hear about task state changes."""
    return {
        "Sid": "ManagedRuleForRunTaskSync",
        "Effect": "Allow",
        "Action": ["events:PutTargets", "events:PutRule", "events:DescribeRule"],
        "Resource": f"arn:{partition}:events:{region}:{account}:rule/{MANAGED_RULE}",
    }


def publish_statements(topic_arn: str, kms_key_arn: str | None, region: str) -> list[Statement]:
    """Publish the alert; an encrypted topic also needs its key, used through SNS only."""
    statements: list[Statement] = [
        {"Sid": "PublishAlert", "Effect": "Allow", "Action": "sns:Publish", "Resource": topic_arn}
    ]
    if kms_key_arn:
        statements.append(
            {
                "Sid": "EncryptAlertForTopic",
                "Effect": "Allow",
                "Action": ["kms:GenerateDataKey*", "kms:Decrypt"],
                "Resource": kms_key_arn,
                "Condition": {"StringEquals": {"kms:ViaService": f"sns.{region}.amazonaws.com"}},
            }
        )
    return statements


def log_delivery_statement() -> Statement:
    """The documented exception to resource scoping (see module docstring)."""
    return {
        "Sid": "LogDeliveryApiHasNoResourceLevelPermissions",
        "Effect": "Allow",
        "Action": LOG_DELIVERY_ACTIONS,
        "Resource": "*",
    }


def xray_statement() -> Statement:
    return {"Sid": "XRayTracing", "Effect": "Allow", "Action": XRAY_ACTIONS, "Resource": "*"}


def start_execution_statement(state_machine_arn: str) -> Statement:
    """What the scheduler may do: start this one state machine."""
    return {
        "Sid": "StartOnlyThisStateMachine",
        "Effect": "Allow",
        "Action": "states:StartExecution",
        "Resource": state_machine_arn,
    }


def dead_letter_statement(queue_arn: str) -> Statement:
    """The Scheduler execution role sends undelivered starts to the schedule's dead-letter queue
    (Scheduler User Guide, "Configuring a schedule's dead-letter queue": the execution role
    needs ``sqs:SendMessage``; here on that one queue instead of the guide's ``"*"``)."""
    return {
        "Sid": "DeadLetterUndeliveredStarts",
        "Effect": "Allow",
        "Action": "sqs:SendMessage",
        "Resource": queue_arn,
    }
