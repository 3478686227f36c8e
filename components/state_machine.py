"""The Step Functions definition (Amazon States Language, JSONPath) for a scheduled ECS task.

Pure Python: resolved values in, a ``dict`` out, so the definition can be unit-tested and even
executed by an ASL interpreter without Pulumi. The flow:

``RunTask`` uses ``arn:aws:states:::ecs:runTask.sync``: Step Functions waits for the task to
stop and fails the state when it did not succeed (a container exited non-zero, the task could
not start, RunTask answered HTTP 200 with ``failures`` -> ``AmazonECS.Unknown``). ``Retry``
re-runs it with backoff; once retries are spent, ``Catch`` stores ``{Error, Cause}`` at
``$.error`` and the failure branch builds a readable message, publishes it to SNS and ends in a
``Fail`` state so the execution is marked failed.

Why the failure branch is a chain of Choice states and not a single Pass: the ``Cause`` is a
JSON string (the DescribeTasks task, PascalCase) only when the task ran and stopped. For
``States.Timeout`` there may be no ``Cause`` at all, and ECS API errors
(``ECS.InvalidParameterException``, ``ECS.AccessDeniedException``...) carry plain text. In
JSONPath mode a path that does not exist (in a Parameters path or in a Choice comparison), or
``States.StringToJson`` on text, raises ``States.Runtime``, which no ``Catch`` on a Pass state
can handle: the execution would die without notifying anyone. So every optional value is tested
with ``IsPresent`` (which never fails) in a state of its own before it is compared or read, and
anything unexpected falls back to a message carrying the raw Error and Cause.

The exit code reported is the one of *our* container, selected by name with a JSONPath filter,
not ``Containers[0]``: DescribeTasks does not promise an order, and a task definition with a
log-router sidecar would otherwise report the sidecar.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from components.scheduled.validation import FARGATE_CAPACITIES, RetryPolicy, plain_text

RUN_TASK_SYNC = "arn:aws:states:::ecs:runTask.sync"
SNS_PUBLISH = "arn:aws:states:::sns:publish"

# State names (tests and docs refer to them).
RUN_TASK = "RunTask"
CLASSIFY = "ClassifyFailure"
CLASSIFY_CAUSE = "ClassifyCause"
PARSE = "ParseTaskDescription"
IS_TASK = "IsTaskDescription"
SUMMARIZE = "SummarizeStoppedTask"
HAS_EXIT = "HasExitCode"
DESCRIBE_EXIT = "DescribeTaskExit"
DESCRIBE_STOP = "DescribeTaskStop"
DESCRIBE_WITH_CAUSE = "DescribeErrorWithCause"
DESCRIBE_ERROR = "DescribeError"
NOTIFY = "NotifyFailure"
FAILED = "Failed"
FAILED_UNREPORTED = "FailedAlertNotSent"

FAILED_ERROR = "ScheduledTaskFailed"
# Raised when the failure message could not be published: an alarm counts these
# (components/scheduled/alarms.py), so a run whose alert was lost is still reported.
UNREPORTED_ERROR = "ScheduledTaskFailedAlertNotSent"


@dataclass(frozen=True)
class RunTaskSpec:
    """Resolved inputs of the definition (no Pulumi Outputs)."""

    job_name: str
    cluster_arn: str
    task_definition_arn: str
    container_name: str
    subnet_ids: Sequence[str]
    security_group_ids: Sequence[str]
    capacity: str
    topic_arn: str
    assign_public_ip: bool = False
    command: Sequence[str] | None = None
    environment: Mapping[str, str] = field(default_factory=dict)
    retry: RetryPolicy = field(default_factory=RetryPolicy)
    timeout_seconds: int = 3600


def run_task_parameters(spec: RunTaskSpec) -> dict[str, Any]:
    """RunTask request (PascalCase, as Step Functions expects)."""
    awsvpc: dict[str, Any] = {
        "Subnets": list(spec.subnet_ids),
        "SecurityGroups": list(spec.security_group_ids),
    }
    params: dict[str, Any] = {
        "Cluster": spec.cluster_arn,
        "TaskDefinition": spec.task_definition_arn,
    }
    if spec.capacity == "FARGATE":
        # LaunchType instead of a FARGATE capacity provider strategy: it works on any cluster,
        # whether or not FARGATE is among its capacity providers.
        params["LaunchType"] = "FARGATE"
    else:
        params["CapacityProviderStrategy"] = [{"CapacityProvider": spec.capacity, "Weight": 1}]
    if spec.capacity in FARGATE_CAPACITIES:
        # Only Fargate takes AssignPublicIp; EC2 tasks in awsvpc mode never get a public IP.
        awsvpc["AssignPublicIp"] = "ENABLED" if spec.assign_public_ip else "DISABLED"
    params["NetworkConfiguration"] = {"AwsvpcConfiguration": awsvpc}
    override: dict[str, Any] = {"Name": spec.container_name}
    if spec.command is not None:
        override["Command"] = list(spec.command)
    if spec.environment:
        override["Environment"] = [
            {"Name": key, "Value": value} for key, value in sorted(spec.environment.items())
        ]
    if len(override) > 1:
        params["Overrides"] = {"ContainerOverrides": [override]}
    params["PropagateTags"] = "TASK_DEFINITION"
    params["EnableECSManagedTags"] = True
    return params


def retriers(policy: RetryPolicy) -> list[dict[str, Any]]:
    """Retry list for the RunTask state (first matching retrier wins)."""
    result: list[dict[str, Any]] = []
    if not policy.retry_on_timeout:
        result.append({"ErrorEquals": ["States.Timeout"], "MaxAttempts": 0})
    result.append(
        {
            "ErrorEquals": ["States.ALL"],
            "IntervalSeconds": policy.interval_seconds,
            "MaxAttempts": policy.max_attempts,
            "BackoffRate": float(policy.backoff_rate),
        }
    )
    return result


def _message(next_state: str, template: str, *args: str) -> dict[str, Any]:
    """A Pass state writing ``{"Message": States.Format(...)}`` to ``$.notification``.

    ``template`` must hold no quote, backslash or brace except its ``{}`` placeholders."""
    arguments = ", ".join(("'" + template + "'", *args))
    return {
        "Type": "Pass",
        "Parameters": {"Message.$": f"States.Format({arguments})"},
        "ResultPath": "$.notification",
        "Next": next_state,
    }


def build_definition(spec: RunTaskSpec) -> dict[str, Any]:
    """The whole state machine definition as a dict (``json.dumps`` it for the resource)."""
    job = spec.job_name
    container = spec.container_name
    execution = "$$.Execution.Id"
    prefix = f"Scheduled ECS task {plain_text(job)} failed"
    states: dict[str, Any] = {
        RUN_TASK: {
            "Type": "Task",
            "Comment": "Run the task and wait until it stops; fails when it does not succeed",
            "Resource": RUN_TASK_SYNC,
            "Parameters": run_task_parameters(spec),
            "TimeoutSeconds": spec.timeout_seconds,
            "Retry": retriers(spec.retry),
            "Catch": [{"ErrorEquals": ["States.ALL"], "ResultPath": "$.error", "Next": CLASSIFY}],
            "End": True,
        },
        CLASSIFY: {
            "Type": "Choice",
            "Comment": "States.Timeout and some service errors carry no Cause at all",
            "Choices": [{"Variable": "$.error.Cause", "IsPresent": True, "Next": CLASSIFY_CAUSE}],
            "Default": DESCRIBE_ERROR,
        },
        CLASSIFY_CAUSE: {
            # A separate state, not an And with IsPresent: a comparison on a missing path is a
            # States.Runtime error, and And is not documented to short-circuit.
            "Type": "Choice",
            "Comment": "A JSON Cause is the stopped task; anything else is reported as is",
            "Choices": [{"Variable": "$.error.Cause", "StringMatches": "{*}", "Next": PARSE}],
            "Default": DESCRIBE_WITH_CAUSE,
        },
        PARSE: {
            "Type": "Pass",
            "Parameters": {"Task.$": "States.StringToJson($.error.Cause)"},
            "ResultPath": "$.failure",
            "Next": IS_TASK,
        },
        IS_TASK: {
            "Type": "Choice",
            "Choices": [
                {
                    "And": [
                        {"Variable": "$.failure.Task.TaskArn", "IsPresent": True},
                        {"Variable": "$.failure.Task.StoppedReason", "IsPresent": True},
                        {"Variable": "$.failure.Task.Containers", "IsPresent": True},
                    ],
                    "Next": SUMMARIZE,
                }
            ],
            "Default": DESCRIBE_WITH_CAUSE,
        },
        SUMMARIZE: {
            "Type": "Pass",
            "Parameters": {
                "TaskArn.$": "$.failure.Task.TaskArn",
                "StoppedReason.$": "$.failure.Task.StoppedReason",
                "Job.$": f"$.failure.Task.Containers[?(@.Name == '{container}')]",
            },
            "ResultPath": "$.summary",
            "Next": HAS_EXIT,
        },
        HAS_EXIT: {
            "Type": "Choice",
            "Comment": "No exit code when the container never started (e.g. image pull failed)",
            "Choices": [
                {"Variable": "$.summary.Job[0].ExitCode", "IsPresent": True, "Next": DESCRIBE_EXIT}
            ],
            "Default": DESCRIBE_STOP,
        },
        DESCRIBE_EXIT: _message(
            NOTIFY,
            prefix + ": task {} stopped ({}); container " + container + " exited with code {}. "
            "Error: {}. Execution: {}",
            "$.summary.TaskArn",
            "$.summary.StoppedReason",
            "States.ArrayGetItem($.summary.Job[*].ExitCode, 0)",
            "$.error.Error",
            execution,
        ),
        DESCRIBE_STOP: _message(
            NOTIFY,
            prefix + ": task {} stopped ({}); container " + container + " reported no exit "
            "code (it may never have started). Error: {}. Execution: {}",
            "$.summary.TaskArn",
            "$.summary.StoppedReason",
            "$.error.Error",
            execution,
        ),
        DESCRIBE_WITH_CAUSE: _message(
            NOTIFY, prefix + ": {}: {}. Execution: {}", "$.error.Error", "$.error.Cause", execution
        ),
        DESCRIBE_ERROR: _message(
            NOTIFY,
            prefix
            + ": {} (no cause given; States.Timeout means it ran longer than "
            + str(spec.timeout_seconds)
            + " s). Execution: {}",
            "$.error.Error",
            execution,
        ),
        NOTIFY: {
            "Type": "Task",
            "Resource": SNS_PUBLISH,
            "Parameters": {
                "TopicArn": spec.topic_arn,
                "Subject": _subject(job),
                "Message.$": "$.notification.Message",
            },
            "ResultPath": None,
            "Retry": [
                {
                    "ErrorEquals": ["States.ALL"],
                    "IntervalSeconds": 2,
                    "MaxAttempts": 3,
                    "BackoffRate": 2.0,
                }
            ],
            # Even when the alert cannot be sent, the execution must still end as failed, with
            # an error of its own that the unreported-failure alarm counts.
            "Catch": [
                {
                    "ErrorEquals": ["States.ALL"],
                    "ResultPath": "$.notifyError",
                    "Next": FAILED_UNREPORTED,
                }
            ],
            "Next": FAILED,
        },
        FAILED: {
            "Type": "Fail",
            # A fixed error name: names starting with "States." are reserved, so the original
            # one (e.g. States.TaskFailed) cannot be re-raised; the cause message names it.
            "Comment": "Mark the execution failed; the cause is the message that was sent",
            "Error": FAILED_ERROR,
            "CausePath": "$.notification.Message",
        },
        FAILED_UNREPORTED: {
            "Type": "Fail",
            "Comment": "The failure message could not be published; an alarm reports this",
            "Error": UNREPORTED_ERROR,
            "CausePath": "$.notification.Message",
        },
    }
    return {
        "Comment": f"Run the ECS task {job} on a schedule; retry, then alert on failure",
        "StartAt": RUN_TASK,
        "States": states,
    }


def _subject(job: str) -> str:
    """SNS subjects: ASCII, no newlines, at most 100 characters."""
    text = f"Scheduled task {job} failed"
    text = "".join(c if 32 <= ord(c) < 127 else "?" for c in text)
    return text[:100]
