"""ScheduledRunTask: run an ECS task on a schedule, retry it, and tell someone when it fails.

Why not an EventBridge rule (or a Scheduler ECS target) that calls RunTask directly? RunTask
answers HTTP 200 even when it placed nothing, and nobody is told when the task later exits
non-zero (seed 003). Here EventBridge Scheduler starts a Step Functions state machine whose
``ecs:runTask.sync`` state waits for the task to stop and fails when it did not succeed; it is
retried with backoff, and when retries are spent the failure (task ARN, stopped reason, exit
code) is published to SNS and the execution ends failed. Two EventBridge rules cover the rest:
tasks of this family that stop non-zero whoever started them, and RunTask placement failures
recorded by CloudTrail. See docs/scheduled-tasks.md.

Children: alert topic (+ KMS key, optional e-mail) unless one is given, state machine + role +
log group, schedule + role, two event rules + targets, topic policy.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import pulumi
import pulumi_aws as aws

from components.alert_delivery import (
    alert_targets,
    create_dead_letter_queue,
    dead_letter_alarm,
)
from components.alert_topic import AlertTopic, create_alert_topic
from components.iam import assume_role_policy, policy_json
from components.log_router import RETENTION_DAYS
from components.scheduled import events
from components.scheduled import iam as iam_statements
from components.scheduled.alarms import execution_alarms
from components.scheduled.validation import (
    RetryPolicy,
    cluster_name_from_arn,
    parse_task_definition_arn,
    validate_capacity,
    validate_container_name,
    validate_ids,
    validate_role_arn,
    validate_schedule_expression,
    validate_timeout,
    validate_timezone,
    when_known,
)
from components.state_machine import RunTaskSpec, build_definition

__all__ = ["RetryPolicy", "ScheduledRunTask", "ScheduledRunTaskArgs"]

LOG_LEVELS = ("ALL", "ERROR", "FATAL")
_ENV_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")


@dataclass
class ScheduledRunTaskArgs:
    """What to run, where, when, and whom to tell.

    ``task_definition_arn`` may be a family ARN without revision (RunTask then starts the latest
    ACTIVE revision, and IAM allows ``<family-arn>:*``) or an exact revision.
    """

    cluster_arn: pulumi.Input[str]
    task_definition_arn: pulumi.Input[str]
    task_role_arn: pulumi.Input[str]  # the only roles the state machine may pass
    execution_role_arn: pulumi.Input[str]
    container_name: str  # the container to override and whose exit code is reported
    subnet_ids: pulumi.Input[Sequence[pulumi.Input[str]]]  # private subnets
    security_group_ids: pulumi.Input[Sequence[pulumi.Input[str]]]
    schedule_expression: str  # cron(...), rate(...) or at(...), EventBridge Scheduler syntax
    command: Sequence[str] | None = None  # container command override
    environment: Mapping[str, pulumi.Input[str]] = field(default_factory=dict)
    capacity: pulumi.Input[str] = "FARGATE"  # FARGATE | FARGATE_SPOT | EC2 capacity provider
    assign_public_ip: bool = False  # Fargate only; keep tasks in private subnets
    schedule_timezone: str = "UTC"  # IANA name, e.g. "Asia/Tokyo"
    enabled: bool = True
    retry: RetryPolicy = field(default_factory=RetryPolicy)
    timeout_seconds: int = 3600  # per attempt (Task state TimeoutSeconds)
    alarm_topic_arn: pulumi.Input[str] | None = None  # else an encrypted topic is created
    alarm_topic_kms_key_arn: pulumi.Input[str] | None = None  # key of a given encrypted topic
    alarm_email: str | None = None  # subscription to the created topic (confirm by e-mail)
    log_retention_days: int = 90
    log_level: str = "ERROR"  # state machine execution logging: ALL | ERROR | FATAL
    log_kms_key_arn: pulumi.Input[str] | None = None
    tracing: bool = False  # X-Ray
    schedule_max_event_age_seconds: int = 3600  # give up starting a run this late
    tags: Mapping[str, str] = field(default_factory=dict)


def _validate(args: ScheduledRunTaskArgs) -> None:
    """Everything that can be checked before any cloud call; raises ValueError."""
    validate_schedule_expression(args.schedule_expression)
    validate_timezone(args.schedule_timezone)
    validate_timeout(args.timeout_seconds)
    validate_container_name(args.container_name)
    if not isinstance(args.retry, RetryPolicy):
        raise ValueError(f"retry {args.retry!r} must be a RetryPolicy")
    when_known(args.capacity, validate_capacity)
    if (
        args.assign_public_ip
        and isinstance(args.capacity, str)
        and args.capacity not in ("FARGATE", "FARGATE_SPOT")
    ):
        raise ValueError(
            f"assign_public_ip is only supported on Fargate, not on capacity {args.capacity!r}"
        )
    validate_ids("subnet_ids", args.subnet_ids)
    validate_ids("security_group_ids", args.security_group_ids)
    when_known(args.cluster_arn, cluster_name_from_arn)
    when_known(args.task_definition_arn, parse_task_definition_arn)
    when_known(args.task_role_arn, lambda v: validate_role_arn("task_role_arn", v))
    when_known(args.execution_role_arn, lambda v: validate_role_arn("execution_role_arn", v))
    for key in args.environment:
        if not _ENV_NAME.match(key):
            raise ValueError(f"environment variable name {key!r} is not valid")
    if args.command is not None and (
        isinstance(args.command, str) or not all(isinstance(c, str) for c in args.command)
    ):
        raise ValueError(f"command {args.command!r} must be a list of strings (exec form)")
    # CloudWatch Logs' values, without LogRouter's 0: execution logs always expire.
    if args.log_retention_days not in RETENTION_DAYS:
        raise ValueError(
            f"log_retention_days {args.log_retention_days} is not accepted by CloudWatch Logs; "
            f"use one of {RETENTION_DAYS}"
        )
    if args.log_level not in LOG_LEVELS:
        raise ValueError(f"log_level {args.log_level!r} must be one of {LOG_LEVELS}")
    if not 60 <= args.schedule_max_event_age_seconds <= 86400:
        raise ValueError(
            f"schedule_max_event_age_seconds {args.schedule_max_event_age_seconds} must be "
            "between 60 and 86400"
        )
    if args.alarm_topic_arn is not None and args.alarm_email:
        raise ValueError(
            "alarm_email subscribes to the topic this component creates; with alarm_topic_arn "
            "subscribe on that topic instead"
        )


class ScheduledRunTask(pulumi.ComponentResource):
    """A scheduled, retried, alerting ECS RunTask (EventBridge Scheduler -> Step Functions)."""

    state_machine_arn: pulumi.Output[str]
    state_machine_role_arn: pulumi.Output[str]
    schedule_arn: pulumi.Output[str]
    scheduler_role_arn: pulumi.Output[str]
    topic_arn: pulumi.Output[str]
    log_group_name: pulumi.Output[str]
    task_failed_rule_arn: pulumi.Output[str]
    run_task_failed_rule_arn: pulumi.Output[str]

    def __init__(
        self, name: str, args: ScheduledRunTaskArgs, opts: pulumi.ResourceOptions | None = None
    ) -> None:
        _validate(args)  # before registering anything, so a bad value fails the preview cleanly
        super().__init__("onnx-ecs:index:ScheduledRunTask", name, None, opts)
        child = pulumi.ResourceOptions(parent=self)
        invoke = pulumi.InvokeOutputOptions(parent=self)
        tags = {**args.tags, "scheduled-task": name}

        identity = aws.get_caller_identity_output(opts=invoke)
        region = aws.get_region_output(opts=invoke).region
        partition = aws.get_partition_output(opts=invoke).partition
        account = identity.account_id
        same_account = account.apply(lambda a: {"StringEquals": {"aws:SourceAccount": a}})

        # -- alert topic --------------------------------------------------------------------
        alerts: AlertTopic | None = None
        topic_arn: pulumi.Output[str]
        kms_key_arn: pulumi.Output[str] | None
        if args.alarm_topic_arn is None:
            alerts = create_alert_topic(
                self,
                name=f"{name}-alerts",
                topic_name=f"{name}-alerts",
                description=f"Encrypts the failure alerts of scheduled task {name}",
                partition=partition,
                account=account,
                email=args.alarm_email,
                tags=tags,
            )
            topic_arn, kms_key_arn = alerts.arn, alerts.kms_key_arn
        else:
            topic_arn = pulumi.Output.from_input(args.alarm_topic_arn)
            kms_key_arn = (
                pulumi.Output.from_input(args.alarm_topic_kms_key_arn)
                if args.alarm_topic_kms_key_arn is not None
                else None
            )

        # -- state machine ------------------------------------------------------------------
        log_group = aws.cloudwatch.LogGroup(
            f"{name}-sfn-logs",
            # the /aws/vendedlogs/ prefix keeps CloudWatch's resource policy small
            name_prefix=f"/aws/vendedlogs/states/{name}-",
            retention_in_days=args.log_retention_days,
            kms_key_id=args.log_kms_key_arn,
            tags=tags,
            opts=child,
        )
        sfn_role = aws.iam.Role(
            f"{name}-sfn-role",
            description=f"Step Functions role of scheduled task {name}",
            assume_role_policy=same_account.apply(
                lambda c: assume_role_policy("states.amazonaws.com", c)
            ),
            tags=tags,
            opts=child,
        )
        td_ref = pulumi.Output.from_input(args.task_definition_arn).apply(parse_task_definition_arn)
        statements: list[Any] = [
            pulumi.Output.all(
                args.cluster_arn, td_ref, args.task_role_arn, args.execution_role_arn
            ).apply(
                lambda v: iam_statements.run_task_statements(_cluster_arn(v[0]), v[1], v[2], v[3])
            ),
            pulumi.Output.all(partition, region, account).apply(
                lambda v: [iam_statements.sync_rule_statement(v[0], v[1], v[2])]
            ),
            pulumi.Output.all(topic_arn, kms_key_arn, region).apply(
                lambda v: iam_statements.publish_statements(v[0], v[1], v[2])
            ),
            [iam_statements.log_delivery_statement()],
        ]
        if args.tracing:
            statements.append([iam_statements.xray_statement()])
        sfn_policy = aws.iam.RolePolicy(
            f"{name}-sfn-policy",
            role=sfn_role.id,
            policy=pulumi.Output.all(*statements).apply(
                lambda groups: json.dumps(
                    {"Version": "2012-10-17", "Statement": [s for g in groups for s in g]}
                )
            ),
            opts=child,
        )

        definition = pulumi.Output.all(
            cluster=args.cluster_arn,
            task_definition=args.task_definition_arn,
            subnets=args.subnet_ids,
            security_groups=args.security_group_ids,
            capacity=args.capacity,
            topic=topic_arn,
            environment=dict(args.environment),
        ).apply(lambda v: json.dumps(build_definition(self._spec(name, args, v)), indent=2))
        state_machine = aws.sfn.StateMachine(
            f"{name}-sfn",
            type="STANDARD",
            role_arn=sfn_role.arn,
            definition=definition,
            logging_configuration=aws.sfn.StateMachineLoggingConfigurationArgs(
                level=args.log_level,
                include_execution_data=True,
                log_destination=log_group.arn.apply(lambda arn: f"{arn}:*"),
            ),
            tracing_configuration=aws.sfn.StateMachineTracingConfigurationArgs(
                enabled=args.tracing
            ),
            tags=tags,
            # CreateStateMachine checks that the role may deliver logs: policy first.
            opts=pulumi.ResourceOptions(parent=self, depends_on=[sfn_policy]),
        )

        # -- schedule -----------------------------------------------------------------------
        # A StartExecution that fails past the retries (throttling, a deleted state machine, a
        # role that lost its permission) lands here instead of vanishing.
        schedule_dlq = create_dead_letter_queue(self, f"{name}-schedule-dlq", tags)
        scheduler_role = aws.iam.Role(
            f"{name}-scheduler-role",
            description=f"EventBridge Scheduler role of scheduled task {name}",
            assume_role_policy=same_account.apply(
                lambda c: assume_role_policy("scheduler.amazonaws.com", c)
            ),
            tags=tags,
            opts=child,
        )
        scheduler_policy = aws.iam.RolePolicy(
            f"{name}-scheduler-policy",
            role=scheduler_role.id,
            policy=policy_json(
                [
                    state_machine.arn.apply(iam_statements.start_execution_statement),
                    schedule_dlq.arn.apply(iam_statements.dead_letter_statement),
                ]
            ),
            opts=child,
        )
        schedule = aws.scheduler.Schedule(
            f"{name}-schedule",
            description=f"Starts scheduled task {name}",
            schedule_expression=args.schedule_expression,
            schedule_expression_timezone=args.schedule_timezone,
            # OFF: run at the stated time, not somewhere in a window
            flexible_time_window=aws.scheduler.ScheduleFlexibleTimeWindowArgs(mode="OFF"),
            state="ENABLED" if args.enabled else "DISABLED",
            target=aws.scheduler.ScheduleTargetArgs(
                arn=state_machine.arn,
                role_arn=scheduler_role.arn,
                input=json.dumps({"schedule": name}),
                # These retries are for *starting* the execution (throttling); the task's own
                # retries live in the state machine. Starting a nightly job hours late is worse
                # than skipping it, hence the capped event age.
                retry_policy=aws.scheduler.ScheduleTargetRetryPolicyArgs(
                    maximum_event_age_in_seconds=args.schedule_max_event_age_seconds,
                    maximum_retry_attempts=10,
                ),
                dead_letter_config=aws.scheduler.ScheduleTargetDeadLetterConfigArgs(
                    arn=schedule_dlq.arn
                ),
            ),
            opts=pulumi.ResourceOptions(parent=self, depends_on=[scheduler_policy]),
        )

        # -- event rules for what the state machine cannot see ------------------------------
        task_rule = aws.cloudwatch.EventRule(
            f"{name}-task-failed",
            description=f"A task of scheduled job {name} stopped with a non-zero exit code",
            event_pattern=pulumi.Output.all(args.cluster_arn, td_ref).apply(
                lambda v: json.dumps(events.task_failed_pattern(_cluster_arn(v[0]), v[1].family))
            ),
            tags=tags,
            opts=child,
        )
        run_task_rule = aws.cloudwatch.EventRule(
            f"{name}-runtask-failed",
            description=f"RunTask placed no task for scheduled job {name} (CloudTrail)",
            event_pattern=pulumi.Output.all(args.cluster_arn, td_ref).apply(
                lambda v: json.dumps(
                    events.run_task_failed_pattern(
                        _cluster_arn(v[0]), cluster_name_from_arn(v[0]), v[1]
                    )
                )
            ),
            tags=tags,
            opts=child,
        )

        def transformer(paths: dict[str, str], template: str) -> dict[str, Any]:
            return {
                "input_transformer": aws.cloudwatch.EventTargetInputTransformerArgs(
                    input_paths=paths, input_template=template
                )
            }

        alert_targets(
            self,
            name,
            rules=[
                (
                    "task-failed",
                    task_rule,
                    transformer(events.TASK_FAILED_PATHS, events.task_failed_template(name)),
                ),
                (
                    "runtask-failed",
                    run_task_rule,
                    transformer(
                        events.RUN_TASK_FAILED_PATHS, events.run_task_failed_template(name)
                    ),
                ),
            ],
            topic_arn=topic_arn,
            tags=tags,
        )
        dead_letter_alarm(
            self, f"{name}-schedule-dlq-alarm", schedule_dlq, topic_arn, "A scheduled start", tags
        )
        execution_alarms(self, name, state_machine, log_group, topic_arn, tags)
        # The RunTask-failure rule sees CloudTrail's record of RunTask: no trail, no alert.
        pulumi.log.warn(
            f"{name}: the alert on RunTask placement failures (failures in an HTTP 200 answer) "
            "only fires in an account with a CloudTrail trail that records management events; "
            "check `aws cloudtrail describe-trails` (docs/scheduled-tasks.md).",
            resource=self,
        )
        if alerts is not None:
            # A given topic keeps its owner's policy (a TopicPolicy would replace it); its
            # owner must let these rules publish (rule ARNs are outputs).
            alerts.allow_rules(f"{name}-alerts-policy", [task_rule.arn, run_task_rule.arn])

        self.state_machine_arn = state_machine.arn
        self.state_machine_role_arn = sfn_role.arn
        self.schedule_arn = schedule.arn
        self.scheduler_role_arn = scheduler_role.arn
        self.topic_arn = topic_arn
        self.log_group_name = log_group.name
        self.task_failed_rule_arn = task_rule.arn
        self.run_task_failed_rule_arn = run_task_rule.arn
        self.register_outputs(
            {
                "state_machine_arn": self.state_machine_arn,
                "state_machine_role_arn": self.state_machine_role_arn,
                "schedule_arn": self.schedule_arn,
                "scheduler_role_arn": self.scheduler_role_arn,
                "topic_arn": self.topic_arn,
                "log_group_name": self.log_group_name,
                "task_failed_rule_arn": self.task_failed_rule_arn,
                "run_task_failed_rule_arn": self.run_task_failed_rule_arn,
            }
        )

    @staticmethod
    def _spec(name: str, args: ScheduledRunTaskArgs, v: dict[str, Any]) -> RunTaskSpec:
        """Resolved values -> definition inputs; values that were Outputs are checked here."""
        parse_task_definition_arn(v["task_definition"])
        validate_ids("subnet_ids", v["subnets"])
        validate_ids("security_group_ids", v["security_groups"])
        capacity = validate_capacity(v["capacity"])
        if args.assign_public_ip and capacity not in ("FARGATE", "FARGATE_SPOT"):
            raise ValueError(f"assign_public_ip is only supported on Fargate, not {capacity!r}")
        return RunTaskSpec(
            job_name=name,
            cluster_arn=_cluster_arn(v["cluster"]),
            task_definition_arn=v["task_definition"],
            container_name=args.container_name,
            subnet_ids=list(v["subnets"]),
            security_group_ids=list(v["security_groups"]),
            capacity=capacity,
            topic_arn=v["topic"],
            assign_public_ip=args.assign_public_ip,
            command=list(args.command) if args.command is not None else None,
            environment=v["environment"],
            retry=args.retry,
            timeout_seconds=args.timeout_seconds,
        )


def _cluster_arn(arn: str) -> str:
    """Check a resolved cluster ARN (it may have been an Output) and return it."""
    cluster_name_from_arn(arn)
    return arn
