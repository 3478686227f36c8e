"""Alarms for the scheduled runs the state machine's own alert cannot report.

The state machine publishes one message per failed run (its failure branch) and then ends in
the ``Failed`` state with error ``ScheduledTaskFailed``. An alarm on the raw ``ExecutionsFailed``
metric would send a second message for the same failed night, so the alarms cover exactly what
the failure branch cannot:

- executions that failed with any *other* error: the alert could not be published (the branch
  ends in ``FailedAlertNotSent``), or the definition itself broke (``States.Runtime``). Counted
  by a metric filter on the execution log group, which records ``ExecutionFailed`` events at
  every log level (ALL, ERROR and FATAL), with the error name in ``details.error``;
- ``ExecutionsTimedOut`` (``AWS/States``): an execution-level timeout skips every Catch;
- a schedule that could not start the execution at all is the Scheduler dead-letter queue's
  alarm (:mod:`components.alert_delivery`).

Step Functions metrics: Step Functions developer guide, "Monitoring Step Functions metrics
using Amazon CloudWatch" (``ExecutionsFailed``, ``ExecutionsTimedOut``, dimension
``StateMachineArn``); execution log format: "Logging Step Functions using CloudWatch Logs".
"""

from __future__ import annotations

from collections.abc import Mapping

import pulumi
import pulumi_aws as aws

METRIC_NAMESPACE = "OnnxEcsServing/ScheduledTasks"
ALARM_PERIOD_SECONDS = 300


def unreported_failure_filter_pattern() -> str:
    """CloudWatch Logs filter: an execution failed with an error other than the one the failure
    branch raises after it published its message."""
    # imported here: components.state_machine imports this package (validation)
    from components.state_machine import FAILED_ERROR

    return f'{{ ($.type = "ExecutionFailed") && ($.details.error != "{FAILED_ERROR}") }}'


def unreported_failure_metric(job: str) -> str:
    return f"UnreportedFailures-{job}"


def execution_alarms(
    parent: pulumi.Resource,
    name: str,
    state_machine: aws.sfn.StateMachine,
    log_group: aws.cloudwatch.LogGroup,
    topic_arn: pulumi.Input[str],
    tags: Mapping[str, str] | None = None,
) -> tuple[aws.cloudwatch.MetricAlarm, aws.cloudwatch.MetricAlarm]:
    """``<name>-unreported-failures`` and ``<name>-timed-out`` alarms, notifying ``topic_arn``."""
    child = pulumi.ResourceOptions(parent=parent)
    tags = dict(tags or {})
    metric = unreported_failure_metric(name)
    metric_filter = aws.cloudwatch.LogMetricFilter(
        f"{name}-unreported-failures",
        log_group_name=log_group.name,
        pattern=unreported_failure_filter_pattern(),
        metric_transformation=aws.cloudwatch.LogMetricFilterMetricTransformationArgs(
            name=metric, namespace=METRIC_NAMESPACE, value="1", default_value="0"
        ),
        opts=child,
    )
    common = {
        "statistic": "Sum",
        "period": ALARM_PERIOD_SECONDS,
        "evaluation_periods": 1,
        "threshold": 0,
        "comparison_operator": "GreaterThanThreshold",
        "treat_missing_data": "notBreaching",
        "alarm_actions": [topic_arn],
        "tags": tags,
    }
    unreported = aws.cloudwatch.MetricAlarm(
        f"{name}-unreported-failures",
        alarm_description=(
            f"Scheduled task {name}: a run failed and its failure message was not sent "
            "(see the state machine's execution history)"
        ),
        namespace=METRIC_NAMESPACE,
        metric_name=metric,
        opts=pulumi.ResourceOptions(parent=parent, depends_on=[metric_filter]),
        **common,
    )
    timed_out = aws.cloudwatch.MetricAlarm(
        f"{name}-timed-out",
        alarm_description=f"Scheduled task {name}: a state machine execution timed out",
        namespace="AWS/States",
        metric_name="ExecutionsTimedOut",
        dimensions={"StateMachineArn": state_machine.arn},
        opts=child,
        **common,
    )
    return unreported, timed_out
