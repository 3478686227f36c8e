"""FireLens log router: ship the app's logs cheaply, keep errors searchable.

CloudWatch Logs charges mostly for ingestion, so the app's stdout does not go there wholesale.
The app container uses the ``awsfirelens`` log driver; a Fluent Bit sidecar (image built from
``log_router/``, routing in ``log_router/custom.conf``) sends every record to an S3 archive
(gzip, partitioned by date) and only ERROR/CRITICAL records and 5xx access lines to a CloudWatch
error log group. The router's own logs go to CloudWatch through ``awslogs`` with retention.

This component creates the error log group, the router log group, the archive bucket (encrypted,
public access blocked, owner-enforced, TLS-only, lifecycle) and hands out the sidecar container
definition, the app's log configuration and the task-role statements to write to both
destinations, scoped to them.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import pulumi
import pulumi_aws as aws

from components.private_bucket import private_bucket

# The values CloudWatch Logs accepts for retentionInDays (0 is used here for "never expire").
RETENTION_DAYS: tuple[int, ...] = (
    1, 3, 5, 7, 14, 30, 60, 90, 120, 150, 180, 365, 400, 545, 731, 1096, 1827, 2192, 2557, 2922,
    3288, 3653,
)  # fmt: skip
# Where the image puts the routing config (log_router/Dockerfile) and FireLens reads it.
CONFIG_FILE_PATH = "/fluent-bit/custom.conf"
# First path element of every archive key (s3_key_format in log_router/custom.conf).
ARCHIVE_PREFIX = "app"
CONTAINER_NAME = "log-router"
# Names of the environment variables custom.conf reads.
ENV_REGION = "AWS_REGION"
ENV_ERROR_LOG_GROUP = "ERROR_LOG_GROUP_NAME"
ENV_ARCHIVE_BUCKET = "ARCHIVE_BUCKET_NAME"
ENV_METRICS_LOG_GROUP = "METRICS_LOG_GROUP_NAME"

_STORAGE_CLASSES = (
    "STANDARD_IA", "ONEZONE_IA", "INTELLIGENT_TIERING", "GLACIER_IR", "GLACIER", "DEEP_ARCHIVE",
)  # fmt: skip
_LOG_GROUP_NAME = re.compile(r"^[\w./#-]{1,512}$")
_BUCKET_NAME = re.compile(r"^[a-z0-9][a-z0-9-]{1,61}[a-z0-9]$")
_USER = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_.-]*(:[A-Za-z0-9_][A-Za-z0-9_.-]*)?$")


def validate_retention_days(field_name: str, days: int) -> None:
    """Fail at preview time on a retention CloudWatch Logs would refuse at deploy time."""
    if (
        isinstance(days, bool)
        or not isinstance(days, int)
        or (days != 0 and days not in RETENTION_DAYS)
    ):
        accepted = ", ".join(str(d) for d in RETENTION_DAYS)
        raise ValueError(
            f"{field_name}={days!r} is not a CloudWatch Logs retention; use one of {accepted}, "
            "or 0 to keep logs forever"
        )


@dataclass
class LogRouterArgs:
    """Inputs of :class:`LogRouter`. Defaults follow seed 000: 3-month retention."""

    image: pulumi.Input[str]  # built from log_router/Dockerfile
    router_log_retention_days: int = 90
    error_log_retention_days: int = 90
    # Archive lifecycle: move to a cheaper class after N days, delete after M (None: never).
    archive_transition_days: int | None = 30
    archive_expiration_days: int | None = 365
    archive_transition_storage_class: str = "STANDARD_IA"
    # Customer-managed KMS key for the bucket (SSE-KMS) and both log groups; None: AWS-managed
    # encryption (SSE-S3; CloudWatch Logs' default). The key policy must admit CloudWatch Logs.
    kms_key_arn: pulumi.Input[str] | None = None
    # Explicit names; None derives /ecs/<project>/<stack>/<name>/{errors,log-router}.
    error_log_group_name: str | None = None
    router_log_group_name: str | None = None
    # None: Pulumi names the bucket "<name>-archive-<random>" (the name must then be lowercase).
    archive_bucket_name: str | None = None
    force_destroy_archive: bool = False  # True lets `pulumi destroy` delete archived logs
    memory_reservation_mib: int = 50  # soft limit, FireLens's recommendation for the sidecar
    # FireLens creates its socket in a root-owned ECS agent directory, so the router runs as
    # root (aws/containers-roadmap#2122). Set e.g. "10001:10001" only where ECS supports a
    # non-root FireLens container.
    user: str = "0"
    enable_ecs_log_metadata: bool = True  # adds ecs_cluster / ecs_task_arn / ... to records
    # The service's Embedded Metric Format records (service/emf.py) land here and CloudWatch
    # extracts the metrics from them; the events themselves need not live long.
    metrics_log_retention_days: int = 30
    metrics_log_group_name: str | None = None  # None: /ecs/<project>/<stack>/<name>/metrics
    tags: Mapping[str, str] = field(default_factory=dict)  # log groups and archive bucket


class LogRouter(pulumi.ComponentResource):
    """FireLens sidecar + its destinations. See the module docstring and docs/log-routing.md."""

    error_log_group_name: pulumi.Output[str]
    error_log_group_arn: pulumi.Output[str]
    router_log_group_name: pulumi.Output[str]
    metrics_log_group_name: pulumi.Output[str]
    metrics_log_group_arn: pulumi.Output[str]
    archive_bucket_name: pulumi.Output[str]
    archive_bucket_arn: pulumi.Output[str]
    container_name: str = CONTAINER_NAME

    def __init__(
        self, name: str, args: LogRouterArgs, opts: pulumi.ResourceOptions | None = None
    ) -> None:
        _validate(name, args)
        super().__init__("onnx-ecs:index:LogRouter", name, None, opts)
        self._args = args
        child = pulumi.ResourceOptions(parent=self)
        base = f"/ecs/{pulumi.get_project()}/{pulumi.get_stack()}/{name}"

        def log_group(
            suffix: str, group_name: str | None, leaf: str, retention_days: int
        ) -> aws.cloudwatch.LogGroup:
            """A log group named ``group_name`` or ``<base>/<leaf>``, encrypted with the
            router's key when it has one."""
            return aws.cloudwatch.LogGroup(
                f"{name}-{suffix}",
                name=group_name or f"{base}/{leaf}",
                retention_in_days=retention_days,
                kms_key_id=args.kms_key_arn,
                tags=dict(args.tags) or None,
                opts=child,
            )

        error_group = log_group(
            "errors", args.error_log_group_name, "errors", args.error_log_retention_days
        )
        router_group = log_group(
            "router-logs", args.router_log_group_name, "log-router", args.router_log_retention_days
        )
        metrics_group = log_group(
            "metrics", args.metrics_log_group_name, "metrics", args.metrics_log_retention_days
        )
        bucket = self._archive_bucket(name, args, child)

        region = aws.get_region_output(opts=pulumi.InvokeOutputOptions(parent=self))
        self._region: pulumi.Output[str] = region.region
        self.error_log_group_name = error_group.name
        self.error_log_group_arn = error_group.arn
        self.router_log_group_name = router_group.name
        self.metrics_log_group_name = metrics_group.name
        self.metrics_log_group_arn = metrics_group.arn
        self.archive_bucket_name = bucket.bucket
        self.archive_bucket_arn = bucket.arn
        self.register_outputs(
            {
                "error_log_group_name": self.error_log_group_name,
                "error_log_group_arn": self.error_log_group_arn,
                "router_log_group_name": self.router_log_group_name,
                "archive_bucket_name": self.archive_bucket_name,
                "archive_bucket_arn": self.archive_bucket_arn,
                "metrics_log_group_name": self.metrics_log_group_name,
            }
        )

    # -- children ---------------------------------------------------------------------------
    @staticmethod
    def _archive_bucket(
        name: str, args: LogRouterArgs, child: pulumi.ResourceOptions
    ) -> aws.s3.Bucket:
        """Private, encrypted, TLS-only bucket whose objects age out by lifecycle rule."""
        archive = private_bucket(
            f"{name}-archive",
            parent=child.parent,
            bucket_name=args.archive_bucket_name,
            tags=dict(args.tags) or None,
            force_destroy=args.force_destroy_archive,
            kms_key_arn=args.kms_key_arn,
            bucket_key_enabled=args.kms_key_arn is not None,
        )
        aws.s3.BucketLifecycleConfiguration(
            f"{name}-archive-lifecycle",
            bucket=archive.bucket.id,
            rules=[_lifecycle_rule(args)],
            opts=child,
        )
        return archive.bucket

    # -- what the task definition needs -------------------------------------------------------
    def container_definition(self) -> pulumi.Output[dict]:
        """The FireLens sidecar, in ECS API field names (for ``containerDefinitions``)."""
        args = self._args
        return pulumi.Output.all(
            args.image,
            self._region,
            self.error_log_group_name,
            self.archive_bucket_name,
            self.router_log_group_name,
            self.metrics_log_group_name,
        ).apply(lambda v: self._render_container(*v))

    def _render_container(
        self,
        image: str,
        region: str,
        error_group: str,
        bucket: str,
        router_group: str,
        metrics_group: str,
    ) -> dict[str, Any]:
        args = self._args
        environment = {
            ENV_REGION: region,
            ENV_ERROR_LOG_GROUP: error_group,
            ENV_ARCHIVE_BUCKET: bucket,
            ENV_METRICS_LOG_GROUP: metrics_group,
        }
        return {
            "name": self.container_name,
            "image": image,
            "essential": True,
            "user": args.user,
            "memoryReservation": args.memory_reservation_mib,
            "firelensConfiguration": {
                "type": "fluentbit",
                "options": {
                    "config-file-type": "file",
                    "config-file-value": CONFIG_FILE_PATH,
                    "enable-ecs-log-metadata": str(args.enable_ecs_log_metadata).lower(),
                },
            },
            "environment": [{"name": k, "value": v} for k, v in sorted(environment.items())],
            # The router's own logs (startup, delivery errors): plain awslogs, never itself.
            "logConfiguration": {
                "logDriver": "awslogs",
                "options": {
                    "awslogs-group": router_group,
                    "awslogs-region": region,
                    "awslogs-stream-prefix": self.container_name,
                },
            },
        }

    def app_log_configuration(self) -> dict:
        """``logConfiguration`` for app containers: hand stdout/stderr to the router.

        No options: the routes live in the image's config file, so FireLens generates no
        output of its own for the app.
        """
        return {"logDriver": "awsfirelens"}

    def task_role_statements(self) -> list[pulumi.Output[dict]]:
        """What Fluent Bit (running with the task role) needs: write to the error and metrics
        log groups and put objects under the archive prefix, nothing else. EMF needs no
        cloudwatch:PutMetricData: CloudWatch Logs extracts the metrics itself."""
        logs = pulumi.Output.all(self.error_log_group_arn, self.metrics_log_group_arn).apply(
            lambda arns: {
                "Sid": "LogRouterErrorLogGroup",
                "Effect": "Allow",
                "Action": [
                    "logs:CreateLogStream",
                    "logs:PutLogEvents",
                    "logs:DescribeLogStreams",
                ],
                "Resource": [r for arn in arns for r in (arn, f"{arn}:*")],
            }
        )
        archive = self.archive_bucket_arn.apply(
            lambda arn: {
                "Sid": "LogRouterArchive",
                "Effect": "Allow",
                "Action": ["s3:PutObject"],
                "Resource": [f"{arn}/{ARCHIVE_PREFIX}/*"],
            }
        )
        statements = [logs, archive]
        if self._args.kms_key_arn is not None:
            statements.append(
                pulumi.Output.from_input(self._args.kms_key_arn).apply(
                    lambda key: {
                        "Sid": "LogRouterArchiveKms",
                        "Effect": "Allow",
                        "Action": ["kms:GenerateDataKey", "kms:Decrypt"],
                        "Resource": [key],
                    }
                )
            )
        return statements


def _lifecycle_rule(args: LogRouterArgs) -> aws.s3.BucketLifecycleConfigurationRuleArgs:
    transitions = None
    if args.archive_transition_days is not None:
        transitions = [
            aws.s3.BucketLifecycleConfigurationRuleTransitionArgs(
                days=args.archive_transition_days,
                storage_class=args.archive_transition_storage_class,
            )
        ]
    expiration = None
    if args.archive_expiration_days is not None:
        expiration = aws.s3.BucketLifecycleConfigurationRuleExpirationArgs(
            days=args.archive_expiration_days
        )
    return aws.s3.BucketLifecycleConfigurationRuleArgs(
        id="archive-lifecycle",
        status="Enabled",
        filter=aws.s3.BucketLifecycleConfigurationRuleFilterArgs(prefix=f"{ARCHIVE_PREFIX}/"),
        transitions=transitions,
        expiration=expiration,
        abort_incomplete_multipart_upload=(
            aws.s3.BucketLifecycleConfigurationRuleAbortIncompleteMultipartUploadArgs(
                days_after_initiation=7
            )
        ),
    )


def _validate(name: str, args: LogRouterArgs) -> None:
    """Everything AWS would reject later (or that would be unsafe), before any cloud call."""
    validate_retention_days("router_log_retention_days", args.router_log_retention_days)
    validate_retention_days("error_log_retention_days", args.error_log_retention_days)
    validate_retention_days("metrics_log_retention_days", args.metrics_log_retention_days)
    for field_name in ("error_log_group_name", "router_log_group_name", "metrics_log_group_name"):
        value = getattr(args, field_name)
        if value is not None and not _LOG_GROUP_NAME.match(value):
            raise ValueError(
                f"{field_name}={value!r}: a log group name is 1-512 of letters, digits, "
                "'_', '-', '.', '/', '#'"
            )
    if args.archive_bucket_name is not None:
        if not _BUCKET_NAME.match(args.archive_bucket_name) or ".." in args.archive_bucket_name:
            raise ValueError(
                f"archive_bucket_name={args.archive_bucket_name!r}: use 3-63 lowercase letters, "
                "digits and hyphens, starting and ending with a letter or digit"
            )
    elif not re.fullmatch(r"[a-z0-9][a-z0-9-]{0,46}", name):
        raise ValueError(
            f"LogRouter name {name!r} becomes the archive bucket's name prefix: use lowercase "
            "letters, digits and hyphens (at most 47), or set archive_bucket_name"
        )
    if args.archive_transition_storage_class not in _STORAGE_CLASSES:
        raise ValueError(
            f"archive_transition_storage_class={args.archive_transition_storage_class!r}; "
            f"accepted: {', '.join(_STORAGE_CLASSES)}"
        )
    t, e = args.archive_transition_days, args.archive_expiration_days
    for field_name, days in (("archive_transition_days", t), ("archive_expiration_days", e)):
        if days is not None and (isinstance(days, bool) or not isinstance(days, int) or days < 1):
            raise ValueError(f"{field_name}={days!r}: a whole number of days >= 1, or None")
    if (
        t is not None
        and args.archive_transition_storage_class in ("STANDARD_IA", "ONEZONE_IA")
        and t < 30
    ):
        raise ValueError(
            f"archive_transition_days={t}: S3 moves objects to "
            f"{args.archive_transition_storage_class} only after at least 30 days"
        )
    if t is not None and e is not None and e <= t:
        raise ValueError(
            f"archive_expiration_days={e} must be later than archive_transition_days={t}"
        )
    if args.memory_reservation_mib < 6:
        raise ValueError(
            f"memory_reservation_mib={args.memory_reservation_mib}: ECS needs at least 6 MiB"
        )
    if not _USER.match(args.user):
        raise ValueError(f"user={args.user!r}: use 'uid', 'uid:gid' or a user name")
