"""EventBridge patterns and messages for the failure modes the state machine cannot see.

The state machine reports what happens to the runs *it* starts. Two rules add the rest (seed 003):

- the task stopped with a non-zero exit code and was *not* started by Step Functions (a manual
  ``aws ecs run-task`` or ``python -m ops run-task`` of the same family): ``ECS Task State
  Change`` with ``lastStatus`` STOPPED in this cluster, ``group`` ``family:<family>`` (the
  group RunTask gives a task unless told otherwise), ``containers.exitCode`` anything-but 0 and
  ``startedBy`` anything but "AWS Step Functions" (or absent). Attempts started by the state
  machine are its own to report: it retries them and, once retries are spent, publishes one
  message with the final reason, so one failed night sends one message, not one per attempt;
- RunTask answered HTTP 200 but placed nothing (``failures`` non-empty, e.g. no Fargate
  capacity or vCPU quota reached), as recorded by CloudTrail. These ``AWS API Call via
  CloudTrail`` events reach EventBridge only when the account has a CloudTrail trail logging
  management events.

Caveats of matching arrays of objects: ``containers.exitCode`` matches when *any* container
has a non-zero exit code (a sidecar too), and a container that never started has no exit code
at all, so a task that failed to start fires only the state machine's alert, not this rule.
"""

from __future__ import annotations

import json
from typing import Any

from components.ecs_events import STEP_FUNCTIONS_STARTED_BY, task_stopped_nonzero_pattern
from components.scheduled.validation import TaskDefinitionRef, plain_text


def task_failed_pattern(cluster_arn: str, family: str) -> dict[str, Any]:
    """A task of this family in this cluster, not started by Step Functions, stopped with a
    non-zero container exit code."""
    return task_stopped_nonzero_pattern(
        cluster_arn, f"family:{family}", exclude_started_by=STEP_FUNCTIONS_STARTED_BY
    )


def run_task_failed_pattern(
    cluster_arn: str, cluster_name: str, task_definition: TaskDefinitionRef
) -> dict[str, Any]:
    """CloudTrail: RunTask for this family on this cluster returned ``failures``.

    The request carries whatever the caller wrote (cluster name or ARN; family, family:rev or
    ARN), so each form is listed; prefixes end in ':' so that family ``job`` does not also
    match ``job2``.
    """
    family, family_arn = task_definition.family, task_definition.family_arn
    return {
        "source": ["aws.ecs"],
        "detail-type": ["AWS API Call via CloudTrail"],
        "detail": {
            "eventSource": ["ecs.amazonaws.com"],
            "eventName": ["RunTask"],
            "requestParameters": {
                "cluster": [cluster_arn, cluster_name],
                "taskDefinition": [
                    family,
                    family_arn,
                    {"prefix": f"{family}:"},
                    {"prefix": f"{family_arn}:"},
                ],
            },
            "responseElements": {"failures": {"reason": [{"exists": True}]}},
        },
    }


# Input transformers: EventBridge fills <name> from input_paths; a template that is one quoted
# JSON string makes SNS deliver plain text. Only fields these events always carry are used.
TASK_FAILED_PATHS = {
    "task": "$.detail.taskArn",
    "group": "$.detail.group",
    "stopCode": "$.detail.stopCode",
    "reason": "$.detail.stoppedReason",
    "time": "$.time",
}
RUN_TASK_FAILED_PATHS = {
    "reason": "$.detail.responseElements.failures[0].reason",
    "detail": "$.detail.responseElements.failures[0].detail",
    "arn": "$.detail.responseElements.failures[0].arn",
    "caller": "$.detail.userIdentity.arn",
    "time": "$.time",
}


def _quoted(text: str) -> str:
    return json.dumps(text)


def task_failed_template(job_name: str) -> str:
    job = plain_text(job_name)
    return _quoted(
        f"Scheduled ECS task {job}: task <task> (<group>) stopped at <time> with a "
        "non-zero container exit code. Stop code: <stopCode>. Reason: <reason>."
    )


def run_task_failed_template(job_name: str) -> str:
    job = plain_text(job_name)
    return _quoted(
        f"Scheduled ECS task {job}: RunTask placed no task at <time> (reason: <reason>; "
        "detail: <detail>; resource: <arn>; called by <caller>). Check capacity, subnets and "
        "the Fargate vCPU quota."
    )
