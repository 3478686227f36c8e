"""All stack configuration in one typed dataclass, read from ``pulumi.Config``.

Every field carries its config key and a one-line description in ``metadata``; the loader, the
validation of unknown keys in ``Pulumi.<stack>.yaml`` and the docs table all come from those, so
a key cannot exist in one place and be missing in another. Tests construct ``StackConfig``
directly.
"""

from __future__ import annotations

import dataclasses
import ipaddress
import types
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Union, get_args, get_origin, get_type_hints

import pulumi

from components.deployment_alarms import DeploymentAlarmSettings
from components.ecs_service import (
    Autoscaling,
    ContainerHealthCheck,
    HealthCheck,
    LoadBalancerOptions,
    ServiceSettings,
)
from components.fargate_capacity import (
    DEPLOYMENT_MAXIMUM_PERCENT,
    FargateSpotSplit,
    rollout_tasks,
)
from components.fargate_sizes import validate_architecture, validate_fargate_size
from components.gpu.cluster import GpuEc2ClusterArgs, validate_args
from components.gpu.instance_types import gpu_task_size
from components.log_router import validate_retention_days
from components.model_sync_job import DEFAULT_SCHEDULE, ModelSyncSettings
from components.off_hours import OffHours
from components.quota_guard import Capacity, Demand, gpu_instance_demands
from components.service_alarms import AlarmThresholds

NAT_STRATEGIES = ("Single", "OnePerAz")
DEFAULT_VPC_CIDR = "10.0.0.0/16"
CAPACITIES = ("fargate", "gpu")
GPU_CLUSTER_NAME = "stack-gpu"  # stands in for onnx-<stack>-gpu when validating before any resource
FARGATE_ONLY_KEYS = ("cpu", "memory", "fargateSpotWeight", "fargateOnDemandBase")
# Default in-flight requests per GPU task to scale on: the default MAX_BATCH_SIZE, i.e. one full
# batch waiting behind the one running (docs/operations.md, "Scaling on the right signal").
GPU_CONCURRENCY_PER_TASK = 32
# Without modelSyncSource the sync reads the stack's own SSE-S3 bucket, with no schedule.
SOURCE_ONLY_SYNC_KEYS = ("modelSyncSchedule", "modelSyncTimezone", "modelSyncKmsKeyArn")
DEMO_SOURCE_PLACEHOLDER = "s3://stack-demo-bucket/models"  # validation before the bucket exists


def _gpu_default(field_name: str) -> Any:
    """A default of GpuEc2ClusterArgs, so the stack keys cannot drift from the component."""
    return GpuEc2ClusterArgs.__dataclass_fields__[field_name].default


def _m(key: str, doc: str) -> dict[str, str]:
    """Field metadata: the camelCase config key and its one-line description."""
    return {"key": key, "doc": doc}


@dataclass
class StackConfig:
    """Stack settings with safe defaults; see docs/infrastructure.md for the table."""

    # -- network ---------------------------------------------------------------------------
    vpc_id: str | None = field(
        default=None,
        metadata=_m("vpcId", "Existing VPC to deploy into; unset creates a new VPC (awsx)."),
    )
    private_subnet_ids: list[str] = field(
        default_factory=list,
        metadata=_m(
            "privateSubnetIds", "Private subnets of the existing VPC (tasks, EFS, internal ALB)."
        ),
    )
    public_subnet_ids: list[str] = field(
        default_factory=list,
        metadata=_m(
            "publicSubnetIds", "Public subnets of the existing VPC (only for a public ALB)."
        ),
    )
    vpc_cidr_block: str | None = field(
        default=None,
        metadata=_m(
            "vpcCidrBlock",
            "CIDR of a new VPC (/16 to /20, default 10.0.0.0/16); with vpcId, the range an "
            "internal ALB admits (looked up from the VPC when unset).",
        ),
    )
    availability_zones: int = field(
        default=2, metadata=_m("availabilityZones", "AZs of a new VPC (>= 2).")
    )
    nat_gateways: str = field(
        default="OnePerAz",
        metadata=_m("natGateways", "NAT gateways of a new VPC: Single (cheap) or OnePerAz (HA)."),
    )
    # -- images ----------------------------------------------------------------------------
    service_image: str | None = field(
        default=None,
        metadata=_m(
            "serviceImage",
            "Prebuilt service image URI (e.g. a commit-hash tag from CI; `{variant}` in it "
            "becomes cpu or cuda by `capacity`); unset builds service/Dockerfile and pushes "
            "it to a new ECR repository.",
        ),
    )
    log_router_image: str | None = field(
        default=None,
        metadata=_m(
            "logRouterImage",
            "Prebuilt log router image URI; unset builds log_router/Dockerfile into ECR.",
        ),
    )
    # -- task size -------------------------------------------------------------------------
    cpu: int = field(default=2048, metadata=_m("cpu", "Fargate task CPU units (1024 = 1 vCPU)."))
    memory: int = field(
        default=4096, metadata=_m("memory", "Fargate task memory in MiB; must be valid for cpu.")
    )
    cpu_architecture: str = field(
        default="X86_64", metadata=_m("cpuArchitecture", "X86_64 or ARM64 (Graviton).")
    )
    # -- capacity: Fargate or GPU EC2 -----------------------------------------------------
    capacity: str = field(
        default="fargate",
        metadata=_m(
            "capacity",
            "Where the service runs: fargate (CPU tasks) or gpu (EC2 GPU instances behind an "
            "ECS capacity provider, docs/gpu.md).",
        ),
    )
    gpu_instance_type: str = field(
        default=_gpu_default("instance_type"),
        metadata=_m("gpuInstanceType", "GPU instance type (NVIDIA families, see docs/gpu.md)."),
    )
    gpu_count: int = field(
        default=1, metadata=_m("gpuCount", "GPUs per task (at most the instance's).")
    )
    gpu_min_size: int = field(
        default=_gpu_default("min_size"),
        metadata=_m("gpuMinSize", "Fewest GPU instances; 0 costs nothing at rest but starts cold."),
    )
    gpu_max_size: int = field(
        default=_gpu_default("max_size"),
        metadata=_m(
            "gpuMaxSize",
            "Most GPU instances; one task per instance, so >= the most tasks (2x for rollouts "
            "at full speed).",
        ),
    )
    gpu_spot: bool = field(
        default=_gpu_default("spot"),
        metadata=_m(
            "gpuSpot",
            "Spot GPU instances above an On-Demand base (mixed instances policy, capacity "
            "rebalancing, ECS Spot draining); false is On-Demand only.",
        ),
    )
    gpu_spot_instance_types: list[str] = field(
        default_factory=list,
        metadata=_m(
            "gpuSpotInstanceTypes",
            "More GPU types for Spot besides gpuInstanceType, same GPU count (e.g. g5.xlarge, "
            "g6e.xlarge); gpuSpot needs at least one.",
        ),
    )
    gpu_on_demand_base: int | None = field(
        default=None,
        metadata=_m(
            "gpuOnDemandBaseCapacity",
            "GPU instances always On-Demand with gpuSpot; unset covers the service's minimum "
            "tasks (minCount, or desiredCount without autoscaling).",
        ),
    )
    gpu_on_demand_percent_above_base: int = field(
        default=0,
        metadata=_m(
            "gpuOnDemandPercentAboveBase", "Share (%) of GPU instances above the base On-Demand."
        ),
    )
    gpu_spot_allocation_strategy: str = field(
        default=_gpu_default("spot_allocation_strategy"),
        metadata=_m(
            "gpuSpotAllocationStrategy",
            "price-capacity-optimized (AWS's recommendation) or capacity-optimized.",
        ),
    )
    gpu_ami_id: str | None = field(
        default=None,
        metadata=_m(
            "gpuAmiId",
            "Pin the GPU AMI; unset reads the ECS GPU-optimized AL2023 AMI from SSM at each "
            "deployment.",
        ),
    )
    gpu_root_volume_gib: int = field(
        default=_gpu_default("root_volume_size_gib"),
        metadata=_m(
            "gpuRootVolumeGiB", "Encrypted gp3 root volume of the GPU instances (images), GiB."
        ),
    )
    gpu_target_capacity: int = field(
        default=_gpu_default("target_capacity"),
        metadata=_m(
            "gpuTargetCapacity",
            "Capacity provider target (%); below 100 keeps spare GPU instances warm.",
        ),
    )
    # -- cluster and service ---------------------------------------------------------------
    cluster: str | None = field(
        default=None,
        metadata=_m(
            "cluster",
            "Existing ECS cluster name or ARN; unset creates one with Container Insights.",
        ),
    )
    container_insights: str = field(
        default="enabled",
        metadata=_m(
            "containerInsights", "Container Insights of a new cluster: enabled, enhanced, disabled."
        ),
    )
    desired_count: int = field(
        default=3, metadata=_m("desiredCount", "Tasks at creation (then autoscaling owns it).")
    )
    autoscaling: bool = field(
        default=True, metadata=_m("autoscaling", "Target-tracking autoscaling on or off.")
    )
    min_count: int = field(default=2, metadata=_m("minCount", "Autoscaling minimum task count."))
    max_count: int = field(default=6, metadata=_m("maxCount", "Autoscaling maximum task count."))
    cpu_target_percent: float = field(
        default=60.0, metadata=_m("cpuTargetPercent", "Average CPU to track (%).")
    )
    requests_per_target: float | None = field(
        default=200.0,
        metadata=_m("requestsPerTarget", "ALB requests per task per minute to track; 0 disables."),
    )
    scale_in_cooldown: int = field(
        default=300, metadata=_m("scaleInCooldownSeconds", "Seconds between scale-ins.")
    )
    scale_out_cooldown: int = field(
        default=60, metadata=_m("scaleOutCooldownSeconds", "Seconds between scale-outs.")
    )
    health_check_grace_period: int = field(
        default=60,
        metadata=_m(
            "healthCheckGracePeriodSeconds",
            "Seconds ECS ignores ALB health after a task starts (model loading).",
        ),
    )
    stop_timeout: int = field(
        default=30,
        metadata=_m("stopTimeoutSeconds", "SIGTERM-to-SIGKILL time (<= 120 on Fargate)."),
    )
    graceful_shutdown: int = field(
        default=25,
        metadata=_m(
            "gracefulShutdownSeconds", "GRACEFUL_SHUTDOWN_S of the service (< stopTimeoutSeconds)."
        ),
    )
    log_level: str = field(default="INFO", metadata=_m("logLevel", "LOG_LEVEL of the service."))
    environment: dict[str, str] = field(
        default_factory=dict,
        metadata=_m("environment", "Extra environment variables for the service container."),
    )
    enable_execute_command: bool = field(
        default=True, metadata=_m("enableExecuteCommand", "ECS Exec on the tasks.")
    )
    readonly_root_filesystem: bool | None = field(
        default=None,
        metadata=_m(
            "readonlyRootFilesystem",
            "Read-only root file system; unset means read-only unless ECS Exec is on.",
        ),
    )
    ignore_task_definition_changes: bool = field(
        default=False,
        metadata=_m(
            "ignoreTaskDefinitionChanges",
            "Leave the task definition revision to external deployments after creation.",
        ),
    )
    # -- load balancer ---------------------------------------------------------------------
    public_load_balancer: bool = field(
        default=False, metadata=_m("publicLoadBalancer", "Internet-facing ALB instead of internal.")
    )
    certificate_arn: str | None = field(
        default=None,
        metadata=_m(
            "certificateArn",
            "ACM certificate: adds HTTPS :443 (HTTP redirects to it) and gRPC through it.",
        ),
    )
    access_logs_bucket: str | None = field(
        default=None, metadata=_m("accessLogsBucket", "S3 bucket for ALB access logs.")
    )
    access_logs_prefix: str | None = field(
        default=None, metadata=_m("accessLogsPrefix", "Key prefix for ALB access logs.")
    )
    idle_timeout: int = field(
        default=60,
        metadata=_m("idleTimeoutSeconds", "ALB idle timeout; raise it for long inferences."),
    )
    deletion_protection: bool = field(
        default=False,
        metadata=_m("loadBalancerDeletionProtection", "ALB deletion protection (prod: true)."),
    )
    health_check_interval: int = field(
        default=5, metadata=_m("healthCheckIntervalSeconds", "Target group health check interval.")
    )
    health_check_timeout: int = field(
        default=2, metadata=_m("healthCheckTimeoutSeconds", "Target group health check timeout.")
    )
    healthy_threshold: int = field(
        default=5, metadata=_m("healthyThreshold", "Checks to become healthy.")
    )
    unhealthy_threshold: int = field(
        default=2, metadata=_m("unhealthyThreshold", "Checks to become unhealthy.")
    )
    deregistration_delay: int = field(
        default=60,
        metadata=_m("deregistrationDelaySeconds", "Connection draining time on scale-in/deploy."),
    )
    # -- storage, logs, notifications ------------------------------------------------------
    efs_backup: bool = field(
        default=True, metadata=_m("efsBackup", "AWS Backup for the model file system.")
    )
    router_log_retention_days: int = field(
        default=90, metadata=_m("routerLogRetentionDays", "Retention of the log router's own logs.")
    )
    error_log_retention_days: int = field(
        default=90, metadata=_m("errorLogRetentionDays", "Retention of the error log group.")
    )
    archive_transition_days: int = field(
        default=30,
        metadata=_m(
            "archiveTransitionDays", "Days before archived logs move to a colder S3 class."
        ),
    )
    archive_expiration_days: int = field(
        default=365, metadata=_m("archiveExpirationDays", "Days before archived logs are deleted.")
    )
    notification_email: str | None = field(
        default=None,
        metadata=_m(
            "notificationEmail", "E-mail subscribed to the notification topic (confirm the mail)."
        ),
    )
    # -- nightly model sync (S3 -> EFS) ----------------------------------------------------
    model_sync_source: str | None = field(
        default=None,
        metadata=_m(
            "modelSyncSource",
            "s3://bucket/prefix the model sync publishes from into the model store (at every "
            "`pulumi up` that changes it, then on schedule); unset: a private bucket of the "
            "stack's own, seeded with the demo model, synced at `pulumi up` only.",
        ),
    )
    model_sync_schedule: str = field(
        default=DEFAULT_SCHEDULE,
        metadata=_m("modelSyncSchedule", "When the sync runs (EventBridge Scheduler syntax)."),
    )
    model_sync_timezone: str = field(
        default="UTC", metadata=_m("modelSyncTimezone", "IANA time zone of modelSyncSchedule.")
    )
    model_sync_keep: int = field(
        default=3, metadata=_m("modelSyncKeep", "Versions kept per model; 0 keeps all.")
    )
    model_sync_cpu: int = field(
        default=1024, metadata=_m("modelSyncCpu", "Fargate CPU units of the sync task.")
    )
    model_sync_memory: int = field(
        default=4096,
        metadata=_m(
            "modelSyncMemory", "Fargate memory (MiB) of the sync task; holds the largest model."
        ),
    )
    model_sync_capacity: str = field(
        default="FARGATE_SPOT",
        metadata=_m(
            "modelSyncCapacity",
            "FARGATE_SPOT (about 70 % cheaper; an interrupted run is retried and leaves the store "
            "consistent) or FARGATE.",
        ),
    )
    model_sync_kms_key_arn: str | None = field(
        default=None,
        metadata=_m(
            "modelSyncKmsKeyArn", "KMS key of an SSE-KMS source bucket (kms:Decrypt via S3)."
        ),
    )
    # -- Fargate Spot for the service ----------------------------------------------------------
    fargate_spot_weight: int = field(
        default=0,
        metadata=_m(
            "fargateSpotWeight",
            "Weight of FARGATE_SPOT against FARGATE (weight 1) for service tasks above the "
            "On-Demand base; 0 runs the service On-Demand only.",
        ),
    )
    fargate_on_demand_base: int | None = field(
        default=None,
        metadata=_m(
            "fargateOnDemandBase",
            "Service tasks always on On-Demand Fargate with fargateSpotWeight; unset covers the "
            "minimum (minCount, or desiredCount without autoscaling).",
        ),
    )
    # -- off-hours (scale to zero on a schedule) ------------------------------------------------
    off_hours_start: str | None = field(
        default=None,
        metadata=_m(
            "offHoursStart",
            "HH:MM the service (and GPU group) scales back up on offHoursDays; with "
            "offHoursStop, it runs only in between (docs/cost.md); unset: always on.",
        ),
    )
    off_hours_stop: str | None = field(
        default=None,
        metadata=_m("offHoursStop", "HH:MM the service scales to zero (callers get ALB 503)."),
    )
    off_hours_days: str = field(
        default="MON-FRI",
        metadata=_m("offHoursDays", "Days the service runs (SUN..SAT, e.g. MON-FRI)."),
    )
    off_hours_timezone: str = field(
        default="UTC", metadata=_m("offHoursTimezone", "IANA time zone of the off-hours times.")
    )
    # -- deployment alarms (ECS rolls back a deployment on ALARM) --------------------------
    alarm_5xx_rate_percent: float = field(
        default=5.0,
        metadata=_m("alarm5xxRatePercent", "Deployment alarm: target 5xx share of requests (%)."),
    )
    alarm_5xx_min_requests: int = field(
        default=20,
        metadata=_m(
            "alarm5xxMinRequests", "Requests a minute below which the 5xx rate alarm stays OK."
        ),
    )
    alarm_latency_p99_seconds: float = field(
        default=2.0,
        metadata=_m("alarmLatencyP99Seconds", "Deployment alarm: p99 TargetResponseTime (s)."),
    )
    alarm_unhealthy_hosts: int = field(
        default=1,
        metadata=_m("alarmUnhealthyHosts", "Deployment alarm: unhealthy targets (maximum)."),
    )
    alarm_evaluation_periods: int = field(
        default=3,
        metadata=_m(
            "alarmEvaluationPeriods",
            "Minutes a deployment alarm must breach before ECS rolls back (1-60).",
        ),
    )
    model_publish_timeout: int = field(
        default=1800,
        metadata=_m(
            "modelPublishTimeoutSeconds",
            "How long `pulumi up` waits for the model sync task it runs (60-7200).",
        ),
    )
    # -- guards ----------------------------------------------------------------------------
    quota_guard_skip: bool = field(
        default=False,
        metadata=_m(
            "quotaGuardSkip",
            "Skip the preview-time Fargate and EC2 GPU vCPU quota checks (they need "
            "servicequotas:GetServiceQuota).",
        ),
    )
    tags: dict[str, str] = field(
        default_factory=dict,
        metadata=_m(
            "tags", "Extra tags (besides project and stack) for the resources that take tags."
        ),
    )
    # -- observability: service metrics, dashboard, alarms, scaling signal (docs/operations.md)
    concurrency_per_task: float | None = field(
        default=None,
        metadata=_m(
            "concurrencyPerTask",
            "In-flight inference requests per task to keep (target tracking on the service's "
            f"ConcurrentRequests metric); unset: {GPU_CONCURRENCY_PER_TASK} with capacity gpu, "
            "no such policy with fargate; 0 turns it off.",
        ),
    )
    shedding_alarm_per_minute: int = field(
        default=10,
        metadata=_m(
            "sheddingAlarmPerMinute",
            "Alarm when at least this many requests a minute are shed (503, queue full)...",
        ),
    )
    shedding_alarm_minutes: int = field(
        default=5,
        metadata=_m("sheddingAlarmMinutes", "... for this many minutes in a row."),
    )
    queue_time_alarm_ms: float = field(
        default=100.0,
        metadata=_m("queueTimeAlarmMs", "Alarm when the p99 queue time exceeds this (ms)..."),
    )
    queue_time_alarm_minutes: int = field(
        default=5,
        metadata=_m("queueTimeAlarmMinutes", "... for this many minutes in a row."),
    )
    metrics_log_retention_days: int = field(
        default=30,
        metadata=_m(
            "metricsLogRetentionDays",
            "Retention of the log group the service's EMF metric records go to (the metrics "
            "themselves stay 15 months in CloudWatch).",
        ),
    )
    gpu_metrics: bool = field(
        default=True,
        metadata=_m(
            "gpuMetrics",
            "CloudWatch agent on the GPU instances: GPU utilisation and memory per GPU.",
        ),
    )

    # -- loading -----------------------------------------------------------------------------
    @classmethod
    def keys(cls) -> dict[str, dataclasses.Field]:
        """Config key -> dataclass field."""
        return {f.metadata["key"]: f for f in dataclasses.fields(cls)}

    @classmethod
    def from_config(cls, config: pulumi.Config | None = None) -> StackConfig:
        """Read every key (typed), fall back to the defaults, then validate."""
        config = config or pulumi.Config()
        hints = get_type_hints(cls)
        values: dict[str, Any] = {}
        explicit: list[str] = []
        for key, f in cls.keys().items():
            value = _read(config, key, hints[f.name])
            if value is not None:
                values[f.name] = value
                explicit.append(key)
        loaded = cls(**values)
        loaded.validate()
        for message in loaded.ignored_key_warnings(explicit):
            pulumi.log.warn(message)
        return loaded

    def validate(self) -> None:
        """Combinations AWS would refuse late, refused here with the accepted values."""
        if self.capacity not in CAPACITIES:
            raise ValueError(f"capacity {self.capacity!r}: use one of {CAPACITIES}")
        if self.capacity == "gpu":
            self._validate_gpu()
        else:
            validate_fargate_size(self.cpu, self.memory)
            self.fargate_spot()  # raises on a negative or non-integer weight/base
        validate_architecture(self.cpu_architecture)
        if self.vpc_id:
            if len(self.private_subnet_ids) < 2:
                raise ValueError(
                    f"vpcId {self.vpc_id} needs privateSubnetIds in at least two AZs "
                    f"(got {self.private_subnet_ids}); an ALB needs two"
                )
            if self.public_load_balancer and len(self.public_subnet_ids) < 2:
                raise ValueError(
                    "publicLoadBalancer with vpcId needs publicSubnetIds in at least two AZs"
                )
        elif self.private_subnet_ids or self.public_subnet_ids:
            raise ValueError("privateSubnetIds/publicSubnetIds are only used together with vpcId")
        if self.nat_gateways not in NAT_STRATEGIES:
            raise ValueError(f"natGateways {self.nat_gateways!r}: use one of {NAT_STRATEGIES}")
        if self.availability_zones < 2:
            raise ValueError(f"availabilityZones {self.availability_zones}: an ALB needs >= 2")
        if not self.vpc_id:
            self.new_vpc_subnet_masks()  # raises on a CIDR too small to split
        if self.concurrency_per_task is not None and not 0 <= self.concurrency_per_task <= 10000:
            raise ValueError(
                f"concurrencyPerTask {self.concurrency_per_task}: use in-flight requests per "
                "task in (0, 10000], or 0 for no policy on it"
            )
        self.service_settings().validate()
        self.alarm_thresholds().validate()
        validate_retention_days("metricsLogRetentionDays", self.metrics_log_retention_days)
        self.off_hours()  # raises on a half-set or malformed schedule
        sync = self.model_sync_settings(DEMO_SOURCE_PLACEHOLDER)
        assert sync is not None
        sync.validate()
        if not 60 <= self.model_publish_timeout <= 7200:
            raise ValueError(
                f"modelPublishTimeoutSeconds {self.model_publish_timeout}: use 60-7200 seconds"
            )

    def _validate_gpu(self) -> None:
        """GPU capacity: the same checks GpuEc2Cluster makes, before any resource exists."""
        if self.cluster:
            raise ValueError(
                f"cluster {self.cluster!r} works only with capacity fargate; capacity gpu "
                "creates its own cluster with the GPU capacity provider"
            )
        if self.cpu_architecture != "X86_64":
            raise ValueError(
                f"cpuArchitecture {self.cpu_architecture!r} with capacity gpu: the ECS GPU "
                "instances are x86_64, so the image must be X86_64"
            )
        validate_args(GPU_CLUSTER_NAME, self.gpu_cluster_args("vpc", ["subnet"]))
        gpu_task_size(
            self.gpu_cluster_args("vpc", ["subnet"]).sizing_instance_type, gpu_count=self.gpu_count
        )
        most = self.max_service_tasks
        if most > self.gpu_max_size:
            raise ValueError(
                f"the service may run {most} tasks (desiredCount/maxCount) but GPU tasks are "
                f"placed one per instance (distinctInstance) and gpuMaxSize is "
                f"{self.gpu_max_size}; raise gpuMaxSize to at least {most} ({2 * most} for "
                "rollouts at full speed)"
            )

    def ignored_key_warnings(self, explicit: Iterable[str]) -> list[str]:
        """Keys set in the stack file that this capacity/sync setup does not use (a warning,
        not an error: switching capacity back and forth should not mean deleting keys)."""
        keys = set(explicit)
        warnings: list[str] = []
        gpu_keys = sorted(k for k in keys if k.startswith("gpu"))
        if self.capacity == "fargate" and gpu_keys:
            warnings.append(
                f"{', '.join(gpu_keys)} ignored: capacity is fargate (set capacity: gpu to run "
                "on GPU instances)"
            )
        fargate_keys = sorted(k for k in keys if k in FARGATE_ONLY_KEYS)
        if self.capacity == "gpu" and fargate_keys:
            warnings.append(
                f"{', '.join(fargate_keys)} ignored: Fargate task sizes; with capacity gpu a "
                "task takes its GPU instance's size"
            )
        if self.cluster and self.model_sync_capacity == "FARGATE_SPOT":
            warnings.append(
                f"cluster {self.cluster!r} is not created by this stack: the model sync runs on "
                "FARGATE_SPOT, which ECS accepts only if the cluster has the FARGATE_SPOT "
                "capacity provider (aws ecs put-cluster-capacity-providers); or set "
                "modelSyncCapacity: FARGATE"
            )
        off_keys = sorted(k for k in keys if k.startswith("offHours"))
        if not self.autoscaling and off_keys:
            warnings.append(
                f"{', '.join(off_keys)} ignored: off-hours scheduled actions act on the "
                "autoscaling target, and autoscaling is false"
            )
        sync_keys = sorted(k for k in keys if k in SOURCE_ONLY_SYNC_KEYS)
        if self.model_sync_source is None and sync_keys:
            warnings.append(
                f"{', '.join(sync_keys)} ignored: modelSyncSource is not set, so the model sync "
                "reads the stack's own demo bucket and runs only at `pulumi up`"
            )
        return warnings

    # -- mapping onto component args --------------------------------------------------------
    @property
    def new_vpc_cidr(self) -> str:
        """CIDR of the VPC this stack creates (when no vpcId is given)."""
        return self.vpc_cidr_block or DEFAULT_VPC_CIDR

    def new_vpc_subnet_masks(self) -> tuple[int, int]:
        """(private, public) subnet prefix lengths for a new VPC: private subnets get 1/16 of
        the range each (room for many tasks' ENIs), public ones 1/256 (NAT gateways, a public
        ALB), never smaller than AWS's /28."""
        try:
            prefix = ipaddress.ip_network(self.new_vpc_cidr).prefixlen
        except ValueError as err:
            raise ValueError(f"vpcCidrBlock {self.new_vpc_cidr!r}: {err}") from err
        if not 16 <= prefix <= 20 or self.availability_zones > 8:
            raise ValueError(
                f"vpcCidrBlock {self.new_vpc_cidr}: use a /16 to /20 range for a new VPC "
                f"(with up to 8 availability zones; got {self.availability_zones})"
            )
        return prefix + 4, min(prefix + 8, 28)

    @property
    def max_service_tasks(self) -> int:
        """The most tasks the service can run (autoscaling maximum or the fixed count)."""
        most = self.max_count if self.autoscaling else 0
        return max(most, self.desired_count)

    @property
    def gpu_on_demand_base_capacity(self) -> int | None:
        """gpuOnDemandBaseCapacity, or with Spot the service's floor (its minimum tasks, one
        per instance); None (the component's min_size) without Spot, where it does not apply."""
        if self.gpu_on_demand_base is not None:
            return self.gpu_on_demand_base
        return self.min_service_tasks if self.gpu_spot else None

    @property
    def min_service_tasks(self) -> int:
        """The service's floor: the autoscaling minimum, or the fixed count."""
        return self.min_count if self.autoscaling else self.desired_count

    def gpu_cluster_args(
        self,
        vpc_id: pulumi.Input[str],
        subnet_ids: pulumi.Input[Sequence[pulumi.Input[str]]],
        tags: Mapping[str, str] | None = None,
    ) -> GpuEc2ClusterArgs:
        """The GPU capacity (capacity: gpu), in the given private subnets."""
        return GpuEc2ClusterArgs(
            vpc_id=vpc_id,
            subnet_ids=subnet_ids,
            instance_type=self.gpu_instance_type,
            ami_id=self.gpu_ami_id,
            min_size=self.gpu_min_size,
            max_size=self.gpu_max_size,
            root_volume_size_gib=self.gpu_root_volume_gib,
            spot=self.gpu_spot,
            spot_instance_types=tuple(self.gpu_spot_instance_types),
            on_demand_base_capacity=self.gpu_on_demand_base_capacity,
            on_demand_percentage_above_base=self.gpu_on_demand_percent_above_base,
            spot_allocation_strategy=self.gpu_spot_allocation_strategy,
            off_hours=self.off_hours(),
            target_capacity=self.gpu_target_capacity,
            container_insights=self.container_insights,
            tags=dict(tags or {}),
            gpu_metrics=self.gpu_metrics,
        )

    @property
    def effective_concurrency_per_task(self) -> float | None:
        """The in-flight target per task, or None for no policy on it (see concurrencyPerTask)."""
        if self.concurrency_per_task is None:
            return GPU_CONCURRENCY_PER_TASK if self.capacity == "gpu" else None
        return self.concurrency_per_task or None

    def alarm_thresholds(self) -> AlarmThresholds:
        return AlarmThresholds(
            shed_per_minute=self.shedding_alarm_per_minute,
            shed_minutes=self.shedding_alarm_minutes,
            queue_time_p99_ms=self.queue_time_alarm_ms,
            queue_time_minutes=self.queue_time_alarm_minutes,
        )

    def model_sync_settings(self, demo_source: str | None = None) -> ModelSyncSettings | None:
        """The model sync: from modelSyncSource on its schedule; without one, from
        ``demo_source`` (the stack's own bucket) with the schedule off; else None."""
        source = self.model_sync_source or demo_source
        if source is None:
            return None
        return ModelSyncSettings(
            source=source,
            enabled=self.model_sync_source is not None,
            schedule_expression=self.model_sync_schedule,
            schedule_timezone=self.model_sync_timezone,
            keep=self.model_sync_keep,
            cpu=self.model_sync_cpu,
            memory=self.model_sync_memory,
            architecture=self.cpu_architecture,  # same image as the service
            source_kms_key_arn=self.model_sync_kms_key_arn,
            capacity=self.model_sync_capacity,
        )

    def off_hours(self) -> OffHours | None:
        """The off-hours schedule, or None when the stack runs around the clock (or has a fixed
        task count: the schedule acts on the autoscaling target)."""
        if self.off_hours_start is None and self.off_hours_stop is None:
            return None
        if self.off_hours_start is None or self.off_hours_stop is None:
            raise ValueError(
                "set both offHoursStart and offHoursStop (e.g. 07:00 and 20:00), or neither"
            )
        off_hours = OffHours(
            start=self.off_hours_start,
            stop=self.off_hours_stop,
            days=self.off_hours_days,
            timezone=self.off_hours_timezone,
        )
        off_hours.validate()
        return off_hours if self.autoscaling else None

    def fargate_spot(self) -> FargateSpotSplit:
        """The service's FARGATE / FARGATE_SPOT split (On-Demand only when the weight is 0)."""
        base = self.fargate_on_demand_base
        return FargateSpotSplit(
            spot_weight=self.fargate_spot_weight,
            on_demand_base=self.min_service_tasks if base is None else base,
        )

    def fargate_demands(self, name: str) -> list[Demand]:
        """What this stack can run on Fargate at most, for the vCPU quota guards: the service
        (Fargate capacity only; GPU instances count against EC2 quotas) at its most tasks times
        the deployment's maximumPercent (a rolling deployment runs old and new tasks side by
        side), split between the On-Demand and Spot quotas; and the sync job."""
        demands: list[Demand] = []
        if self.capacity == "fargate":
            during_rollout = rollout_tasks(self.max_service_tasks)
            on_demand, spot = self.fargate_spot().most_tasks(during_rollout)
            label = f"{name} service (x{DEPLOYMENT_MAXIMUM_PERCENT}% during deployments)"
            demands.append(Demand.from_cpu_units(label, Capacity.FARGATE, on_demand, self.cpu))
            if spot:
                demands.append(Demand.from_cpu_units(label, Capacity.FARGATE_SPOT, spot, self.cpu))
        sync = self.model_sync_settings(DEMO_SOURCE_PLACEHOLDER)  # every stack has one
        if sync is not None:
            # one run at a time: retries are sequential and a nightly run ends long before
            # the next one
            demands.append(Demand(f"{name} model sync", sync.capacity, 1, sync.vcpu))
        return demands

    def gpu_demands(self, name: str) -> list[Demand]:
        """What the GPU group can scale to, in vCPU, against the EC2 G and VT quotas."""
        if self.capacity != "gpu":
            return []
        args = self.gpu_cluster_args("vpc", ["subnet"])
        return gpu_instance_demands(f"{name} GPU group", args, args.market)

    @property
    def image_platform(self) -> str:
        """Docker platform matching the task's CPU architecture."""
        return "linux/arm64" if self.cpu_architecture == "ARM64" else "linux/amd64"

    def service_settings(self) -> ServiceSettings:
        """The shared service tunables."""
        autoscaling = None
        if self.autoscaling:
            autoscaling = Autoscaling(
                min_count=self.min_count,
                max_count=self.max_count,
                cpu_target_percent=self.cpu_target_percent,
                requests_per_target=self.requests_per_target or None,
                scale_in_cooldown_s=self.scale_in_cooldown,
                scale_out_cooldown_s=self.scale_out_cooldown,
                concurrency_per_task=self.effective_concurrency_per_task,
                off_hours=self.off_hours(),
            )
        return ServiceSettings(
            desired_count=self.desired_count,
            autoscaling=autoscaling,
            load_balancer=LoadBalancerOptions(
                public=self.public_load_balancer,
                certificate_arn=self.certificate_arn,
                access_logs_bucket=self.access_logs_bucket,
                access_logs_prefix=self.access_logs_prefix,
                idle_timeout_s=self.idle_timeout,
                deletion_protection=self.deletion_protection,
            ),
            health_check=HealthCheck(
                interval_s=self.health_check_interval,
                timeout_s=self.health_check_timeout,
                healthy_threshold=self.healthy_threshold,
                unhealthy_threshold=self.unhealthy_threshold,
                deregistration_delay_s=self.deregistration_delay,
            ),
            container_health_check=ContainerHealthCheck(),
            environment=dict(self.environment),
            log_level=self.log_level,
            graceful_shutdown_s=self.graceful_shutdown,
            stop_timeout_s=self.stop_timeout,
            health_check_grace_period_s=self.health_check_grace_period,
            enable_execute_command=self.enable_execute_command,
            readonly_root_filesystem=self.readonly_root_filesystem,
            ignore_task_definition_changes=self.ignore_task_definition_changes,
            notification_email=self.notification_email,
            deployment_alarms=DeploymentAlarmSettings(
                error_rate_percent=self.alarm_5xx_rate_percent,
                min_requests=self.alarm_5xx_min_requests,
                latency_p99_seconds=self.alarm_latency_p99_seconds,
                unhealthy_hosts=self.alarm_unhealthy_hosts,
                evaluation_periods=self.alarm_evaluation_periods,
            ),
        )


def _base_type(hint: Any) -> Any:
    """``int | None`` -> int; ``list[str]`` -> list."""
    if get_origin(hint) in (Union, types.UnionType):
        hint = next(a for a in get_args(hint) if a is not type(None))
    return get_origin(hint) or hint


def _read(config: pulumi.Config, key: str, hint: Any) -> Any:
    """One typed value, or None when the key is not set."""
    base = _base_type(hint)
    if base is bool:
        return config.get_bool(key)
    if base is int:
        return config.get_int(key)
    if base is float:
        return config.get_float(key)
    if base in (list, dict):
        value = config.get_object(key)
        if value is not None and not isinstance(value, base):
            raise ValueError(f"config {key}: expected a {base.__name__}, got {value!r}")
        return value
    return config.get(key)


def config_rows() -> Iterator[tuple[str, str, str]]:
    """(key, description, default) for the docs table, defaults as written in YAML."""
    for key, f in StackConfig.keys().items():
        default = f.default if f.default is not dataclasses.MISSING else f.default_factory()  # type: ignore[misc]
        if default in (None, [], {}):
            shown = "unset"
        elif isinstance(default, bool):
            shown = f"`{str(default).lower()}`"
        elif isinstance(default, float) and default.is_integer():
            shown = f"`{int(default)}`"
        else:
            shown = f"`{default}`"
        yield key, f.metadata["doc"], shown


def unknown_keys(config: Mapping[str, Any], project: str) -> list[str]:
    """Keys under ``<project>:`` in a stack file that StackConfig does not know (typos)."""
    prefix = f"{project}:"
    known = StackConfig.keys()
    return sorted(k for k in config if k.startswith(prefix) and k.removeprefix(prefix) not in known)
