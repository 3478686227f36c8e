"""``ModelSyncJob``: publish models from S3 into the EFS model store on a schedule.

The inference service mounts the model store read-only; new model versions get there through
the publisher (``python -m service.sync``, docs/operations.md), which copies, verifies and
atomically renames each version into place. This component runs that publisher as its own
Fargate task definition, in the service image, with the store mounted READ-WRITE, and starts
it on a schedule through :class:`components.scheduled.run_task.ScheduledRunTask` (Step
Functions ``ecs:runTask.sync`` with retries and an SNS alert when the last attempt fails).

Least privilege: the task role may list only ``<prefix>/`` of the source bucket and read only
objects under it (plus ``kms:Decrypt`` through S3 on a given key), and mount the store for
writing through its access point; the task's security group has no ingress, and egress only
HTTPS (S3, ECR, logs) and NFS to the store, which admits it with ``allow_from``.

Children (``<name>-<role>``): security group + 2 egress rules, task and execution roles with
their policies, the task definition (publisher + FireLens log router) and ``<name>-run``
(the scheduled run).
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import pulumi
import pulumi_aws as aws

from components.ecs_service import (
    MODEL_PATH,
    LogRouterLike,
    ModelStore,
    execution_role_policy,
)
from components.fargate_sizes import validate_architecture, validate_fargate_size
from components.iam import policy_json
from components.one_off_task import (
    ecs_role,
    fargate_task_definition,
    model_reader_security_group,
    one_off_container,
)
from components.scheduled.run_task import RetryPolicy, ScheduledRunTask, ScheduledRunTaskArgs
from components.scheduled.validation import (
    FARGATE_CAPACITIES,
    validate_schedule_expression,
    validate_timeout,
    validate_timezone,
)

CONTAINER_NAME = "model-sync"
# The service image's entry point is `python -m service`; a container override can replace only
# the command (the arguments after the entry point), so the publisher is the entry point here.
ENTRY_POINT = ["python", "-m", "service.sync"]
DEFAULT_SCHEDULE = "cron(0 3 * * ? *)"
STOP_TIMEOUT_S = 60  # the publisher removes its staging folder on SIGTERM
_BUCKET = re.compile(r"^[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]$")
_IPV4 = re.compile(r"^\d+\.\d+\.\d+\.\d+$")
# S3's "safe" key characters, less '*' (a wildcard in IAM resources and conditions).
_PREFIX_SEGMENT = re.compile(r"^[A-Za-z0-9!_.'()=+,@-]+$")


# -- the source URL -----------------------------------------------------------------------------
@dataclass(frozen=True)
class S3Location:
    """``s3://bucket[/prefix]``, with the prefix stripped of its slashes ('' = whole bucket)."""

    bucket: str
    prefix: str

    @property
    def url(self) -> str:
        return f"s3://{self.bucket}/{self.prefix}" if self.prefix else f"s3://{self.bucket}"

    def read_statements(self, partition: str = "aws") -> list[dict[str, Any]]:
        """ListBucket limited to the prefix, GetObject (also HeadObject) on keys under it."""
        bucket_arn = f"arn:{partition}:s3:::{self.bucket}"
        listing: dict[str, Any] = {
            "Sid": "ListModelSource",
            "Effect": "Allow",
            "Action": "s3:ListBucket",
            "Resource": bucket_arn,
        }
        if self.prefix:
            # the publisher lists with Prefix "<prefix>/"
            listing["Condition"] = {"StringLike": {"s3:prefix": [f"{self.prefix}/*"]}}
        objects = f"{bucket_arn}/{self.prefix}/*" if self.prefix else f"{bucket_arn}/*"
        reading = {
            "Sid": "ReadModelSource",
            "Effect": "Allow",
            "Action": "s3:GetObject",
            "Resource": objects,
        }
        return [listing, reading]


def parse_s3_url(url: str) -> S3Location:
    """Parse and check ``s3://bucket/prefix`` at preview time (the IAM policy is built from it)."""
    accepted = "expected s3://<bucket>/<prefix>, e.g. s3://my-models/prod"
    if not isinstance(url, str) or not url.startswith("s3://"):
        raise ValueError(f"model sync source {url!r} is not an S3 URL; {accepted}")
    bucket, _, prefix = url.removeprefix("s3://").partition("/")
    if not _BUCKET.match(bucket) or ".." in bucket or _IPV4.match(bucket):
        raise ValueError(
            f"model sync source {url!r}: bucket {bucket!r} is not a valid S3 bucket name "
            "(3-63 lowercase letters, digits, '.' and '-', starting and ending with a letter "
            f"or digit); {accepted}"
        )
    prefix = prefix.strip("/")
    segments = prefix.split("/") if prefix else []
    for segment in segments:
        if not _PREFIX_SEGMENT.match(segment) or segment in (".", ".."):
            raise ValueError(
                f"model sync source {url!r}: prefix {prefix!r} has an empty, '.'/'..' or "
                "unsupported path segment; use letters, digits and !_.'()=+,@- between "
                f"single slashes (no '*', '?', '#' or spaces); {accepted}"
            )
    return S3Location(bucket, prefix)


# -- args ---------------------------------------------------------------------------------------
@dataclass
class ModelSyncSettings:
    """What to publish, when, and how big the task is (plain values: stack config maps here)."""

    source: str  # s3://bucket/prefix
    schedule_expression: str = DEFAULT_SCHEDULE
    schedule_timezone: str = "UTC"
    keep: int = 3  # versions kept per model (SYNC_KEEP); 0 keeps all
    cpu: int = 1024
    memory: int = 4096  # the publisher loads each new model once to prove it is valid
    architecture: str = "X86_64"  # must match the service image
    # FARGATE_SPOT (default) needs FARGATE_SPOT among the cluster's capacity providers (the
    # clusters this project creates have it); an interruption is retried (retry) and leaves the
    # store consistent (publish protocol, tests/sync/test_sync_interrupted.py).
    capacity: str = "FARGATE_SPOT"
    source_kms_key_arn: str | None = None  # SSE-KMS key of the source bucket
    retry: RetryPolicy = field(default_factory=RetryPolicy)
    timeout_seconds: int = 3600  # per attempt
    enabled: bool = True

    @property
    def location(self) -> S3Location:
        return parse_s3_url(self.source)

    @property
    def vcpu(self) -> float:
        """vCPU of one run (for the Fargate quota guard)."""
        return self.cpu / 1024

    def validate(self) -> None:
        """Everything checkable before a cloud call; raises ValueError naming the value."""
        parse_s3_url(self.source)
        validate_schedule_expression(self.schedule_expression)
        validate_timezone(self.schedule_timezone)
        validate_timeout(self.timeout_seconds)
        validate_fargate_size(self.cpu, self.memory)
        validate_architecture(self.architecture)
        if isinstance(self.keep, bool) or not isinstance(self.keep, int) or self.keep < 0:
            raise ValueError(f"model sync keep {self.keep!r}: versions per model, >= 0 (0 = all)")
        if self.capacity not in FARGATE_CAPACITIES:
            raise ValueError(
                f"model sync capacity {self.capacity!r}: the publisher is a Fargate task; use "
                f"one of {FARGATE_CAPACITIES}"
            )
        if self.capacity == "FARGATE_SPOT" and self.retry.max_attempts < 1:
            raise ValueError(
                "model sync on FARGATE_SPOT with retry max_attempts 0: a Spot interruption "
                "(the task stops with SpotInterruption and the publisher exits non-zero, which "
                "Step Functions reports as States.TaskFailed) would not be retried; allow at "
                "least one retry or use capacity FARGATE"
            )
        if self.source_kms_key_arn is not None and not self.source_kms_key_arn.startswith("arn:"):
            raise ValueError(
                f"model sync source KMS key {self.source_kms_key_arn!r}: give the key ARN "
                "(arn:aws:kms:<region>:<account>:key/<id>)"
            )


@dataclass
class ModelSyncJobArgs:
    """Where the publisher runs and what it needs from the rest of the stack."""

    cluster_arn: pulumi.Input[str]
    vpc_id: pulumi.Input[str]
    subnet_ids: pulumi.Input[Sequence[pulumi.Input[str]]]  # private subnets
    image: pulumi.Input[str]  # the service image (it contains service.sync)
    model_store: ModelStore
    log_router: LogRouterLike
    settings: ModelSyncSettings
    # Alerts: a topic of your own (its policy must admit the job's event rules, see
    # docs/scheduled-tasks.md), else a new encrypted topic with an optional e-mail subscription.
    alarm_topic_arn: pulumi.Input[str] | None = None
    alarm_topic_kms_key_arn: pulumi.Input[str] | None = None
    alarm_email: str | None = None
    tags: Mapping[str, str] = field(default_factory=dict)


# -- pure helpers -------------------------------------------------------------------------------
def sync_environment(settings: ModelSyncSettings) -> dict[str, str]:
    """The publisher's settings (service/sync.py reads them from the environment)."""
    return {
        "SYNC_SOURCE": settings.location.url,
        "MODEL_DIR": MODEL_PATH,
        "SYNC_KEEP": str(settings.keep),
        "SYNC_LOG_FORMAT": "json",  # one object a line: the log router routes on `level`
    }


def sync_container_definition(
    *,
    image: str,
    environment: Mapping[str, str],
    mount_points: Sequence[Mapping[str, Any]],
    log_configuration: Mapping[str, Any],
    log_router_name: str,
) -> dict[str, Any]:
    """The publisher container, in ECS API field names (see tests/ecs_schema.py)."""
    # read-only root file system: writes go to /models (EFS) and /tmp only
    return one_off_container(
        name=CONTAINER_NAME,
        image=image,
        entry_point=ENTRY_POINT,
        environment=environment,
        mount_points=mount_points,
        extra={
            "stopTimeout": STOP_TIMEOUT_S,
            "logConfiguration": dict(log_configuration),
            "dependsOn": [{"containerName": log_router_name, "condition": "START"}],
            "linuxParameters": {"initProcessEnabled": True},
        },
    )


def kms_decrypt_statement(key_arn: str, region: str) -> dict[str, Any]:
    """Decrypt SSE-KMS objects of the source bucket, through S3 only."""
    return {
        "Sid": "DecryptModelSource",
        "Effect": "Allow",
        "Action": "kms:Decrypt",
        "Resource": key_arn,
        "Condition": {"StringEquals": {"kms:ViaService": f"s3.{region}.amazonaws.com"}},
    }


# -- the component ------------------------------------------------------------------------------
class ModelSyncJob(pulumi.ComponentResource):
    """The model publisher as a scheduled, retried, alerting Fargate task (module docstring)."""

    task_definition_arn: pulumi.Output[str]
    task_definition_family: pulumi.Output[str]
    task_role_arn: pulumi.Output[str]
    execution_role_arn: pulumi.Output[str]
    security_group_id: pulumi.Output[str]
    state_machine_arn: pulumi.Output[str]
    schedule_arn: pulumi.Output[str]
    alarm_topic_arn: pulumi.Output[str]

    def __init__(
        self, name: str, args: ModelSyncJobArgs, opts: pulumi.ResourceOptions | None = None
    ) -> None:
        settings = args.settings
        settings.validate()  # before registering anything: a bad value fails the preview cleanly
        location = settings.location
        super().__init__("onnx-ecs:index:ModelSyncJob", name, None, opts)
        child = pulumi.ResourceOptions(parent=self)
        tags = {**args.tags, "job": "model-sync"}

        security_group = self._security_group(name, args, tags)
        task_role = self._task_role(name, args, location, tags)
        execution_role = ecs_role(
            name,
            "execution",
            parent=self,
            description="ECS agent for the model publisher: pull images, router logs",
            policy=execution_role_policy(self, args.image, args.log_router),
            tags=tags,
        )

        mount_points = [
            args.model_store.mount_point(MODEL_PATH, read_only=False),
            {"sourceVolume": "tmp", "containerPath": "/tmp", "readOnly": False},
        ]
        environment = sync_environment(settings)

        def render(values: list[Any]) -> str:
            image, router, log_config = values
            publisher = sync_container_definition(
                image=image,
                environment=environment,
                mount_points=mount_points,
                log_configuration=log_config,
                log_router_name=args.log_router.container_name,
            )
            return json.dumps([publisher, router])

        task_definition = fargate_task_definition(
            name,
            parent=self,
            cpu=settings.cpu,
            memory=settings.memory,
            architecture=settings.architecture,
            task_role=task_role,
            execution_role=execution_role,
            container_definitions=pulumi.Output.all(
                args.image,
                args.log_router.container_definition(),
                args.log_router.app_log_configuration(),
            ).apply(render),
            volumes=[args.model_store.volume(), aws.ecs.TaskDefinitionVolumeArgs(name="tmp")],
            tags=tags,
        )

        run = ScheduledRunTask(
            f"{name}-run",
            ScheduledRunTaskArgs(
                cluster_arn=args.cluster_arn,
                task_definition_arn=task_definition.arn,
                task_role_arn=task_role.arn,
                execution_role_arn=execution_role.arn,
                container_name=CONTAINER_NAME,
                subnet_ids=args.subnet_ids,
                security_group_ids=[security_group.id],
                schedule_expression=settings.schedule_expression,
                schedule_timezone=settings.schedule_timezone,
                capacity=settings.capacity,
                enabled=settings.enabled,
                retry=settings.retry,
                timeout_seconds=settings.timeout_seconds,
                alarm_topic_arn=args.alarm_topic_arn,
                alarm_topic_kms_key_arn=args.alarm_topic_kms_key_arn,
                alarm_email=args.alarm_email,
                tags=tags,
            ),
            opts=child,
        )

        self.task_definition_arn = task_definition.arn
        self.task_definition_family = task_definition.family
        self.task_role_arn = task_role.arn
        self.execution_role_arn = execution_role.arn
        self.security_group_id = security_group.id
        self.state_machine_arn = run.state_machine_arn
        self.schedule_arn = run.schedule_arn
        self.alarm_topic_arn = run.topic_arn
        self.register_outputs(
            {
                "task_definition_arn": self.task_definition_arn,
                "task_role_arn": self.task_role_arn,
                "execution_role_arn": self.execution_role_arn,
                "security_group_id": self.security_group_id,
                "state_machine_arn": self.state_machine_arn,
                "schedule_arn": self.schedule_arn,
                "alarm_topic_arn": self.alarm_topic_arn,
            }
        )

    def _security_group(
        self,
        name: str,
        args: ModelSyncJobArgs,
        tags: dict[str, str],
    ) -> aws.ec2.SecurityGroup:
        """No ingress; out HTTPS (S3, ECR, logs via NAT or endpoints) and NFS to the store."""
        return model_reader_security_group(
            name,
            parent=self,
            vpc_id=args.vpc_id,
            description="Model publisher tasks: no ingress; HTTPS out, NFS to the model store",
            model_store=args.model_store,
            tags=tags,
        )

    def _task_role(
        self,
        name: str,
        args: ModelSyncJobArgs,
        location: S3Location,
        tags: dict[str, str],
    ) -> aws.iam.Role:
        """Read the source prefix, write the model store, ship logs; nothing else."""
        invoke = pulumi.InvokeOutputOptions(parent=self)
        partition = aws.get_partition_output(opts=invoke).partition
        region = aws.get_region_output(opts=invoke).region
        source = partition.apply(location.read_statements)
        statements: list[Any] = [
            source.apply(lambda s: s[0]),  # list the prefix
            source.apply(lambda s: s[1]),  # read objects under it
            args.model_store.task_role_statement(write=True),
            *args.log_router.task_role_statements(),
        ]
        key_arn = args.settings.source_kms_key_arn
        if key_arn is not None:
            statements.append(region.apply(lambda r: kms_decrypt_statement(key_arn, r)))
        return ecs_role(
            name,
            "task",
            parent=self,
            description="Model publisher: read the S3 source, write the EFS model store",
            policy=policy_json(statements),
            tags=tags,
        )
