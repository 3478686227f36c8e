"""Settings of the shared inference service: constants, the collaborators' protocols and the typed
dataclasses the stack config fills in (validated at preview, before any cloud call)."""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

import pulumi
import pulumi_aws as aws

from components.deployment_alarms import DeploymentAlarmSettings
from components.off_hours import OffHours

CONTAINER_NAME = "app"
PUBLIC_ALB_TAG = "onnx-ecs:role"
CONTAINER_INSIGHTS = ("enabled", "enhanced", "disabled")
CONTAINER_PORT = 8000
# The Open Inference Protocol over gRPC (GRPC_PORT of the service, Triton's port). Behind the ALB
# only with a certificate: an ALB forwards gRPC from HTTPS listeners only. The HTTPS listener
# sends these paths (gRPC's /package.Service/Method) to the gRPC target group.
GRPC_PORT = 8001
GRPC_PATHS = ("/inference.GRPCInferenceService/*", "/grpc.health.v1.Health/*")
# The standard health service; its Check answers gRPC code 0 only while the service is ready.
GRPC_HEALTH_PATH = "/grpc.health.v1.Health/Check"
APP_USER = "10001:10001"
MODEL_PATH = "/models"
HEALTH_PATH = "/health"
# The image has no curl: probe /health with the interpreter it already has. urlopen raises on any
# non-2xx answer or connection error, so the exit status is non-zero unless /health said 200.
HEALTH_COMMAND = [
    "CMD",
    "python",
    "-c",
    "import urllib.request as u; u.urlopen('http://127.0.0.1:8000/health', timeout=3)",
]
# Modern TLS policy: TLS 1.3 with TLS 1.2 fallback, forward-secret ciphers only.
DEFAULT_SSL_POLICY = "ELBSecurityPolicy-TLS13-1-2-2021-06"
# ECS Exec: the SSM agent inside the task opens these channels; they take no resource ARNs.
ECS_EXEC_STATEMENT: dict[str, Any] = {
    "Sid": "EcsExec",
    "Effect": "Allow",
    "Action": [
        "ssmmessages:CreateControlChannel",
        "ssmmessages:CreateDataChannel",
        "ssmmessages:OpenControlChannel",
        "ssmmessages:OpenDataChannel",
    ],
    "Resource": "*",
}
_TargetTracking = aws.appautoscaling.PolicyTargetTrackingScalingPolicyConfigurationArgs
_aas = aws.appautoscaling
_MetricSpec = _aas.PolicyTargetTrackingScalingPolicyConfigurationPredefinedMetricSpecificationArgs
_ECR_URI = re.compile(
    r"^(?P<account>\d{12})\.dkr\.ecr\.(?P<region>[a-z0-9-]+)\.amazonaws\.com(?P<cn>\.cn)?/"
    r"(?P<repo>[^:@]+)"
)


BeforeDeploy = Callable[[pulumi.Output[str]], Sequence[pulumi.Resource]]


# -- what the two collaborators must offer (implemented by EfsModelStore and LogRouter) -----------
class ModelStore(Protocol):
    """The part of ``EfsModelStore`` this service uses."""

    security_group_id: pulumi.Output[str]

    def allow_from(self, name: str, security_group_id: pulumi.Input[str]) -> pulumi.Resource: ...

    def volume(self, name: str = "models") -> aws.ecs.TaskDefinitionVolumeArgs: ...

    def mount_point(
        self, container_path: str, read_only: bool = True, volume_name: str = "models"
    ) -> dict: ...

    def task_role_statement(self, write: bool = False) -> pulumi.Output[dict]: ...


class LogRouterLike(Protocol):
    """The part of ``LogRouter`` this service uses."""

    container_name: str
    router_log_group_name: pulumi.Output[str]

    def container_definition(self) -> pulumi.Output[dict]: ...

    def app_log_configuration(self) -> dict | pulumi.Output[dict]: ...

    def task_role_statements(self) -> list[pulumi.Output[dict]]: ...


# -- placement: what differs between Fargate and GPU EC2 ------------------------------------------
@dataclass(frozen=True)
class Placement:
    """Where and how tasks run. Build it with ``fargate_placement()`` (components.fargate_service)
    or, for GPUs, in ``GpuEc2Cluster``. Example for one GPU per task on a capacity provider::

        Placement(
            requires_compatibilities=("EC2",),
            capacity_provider_strategies=(
                aws.ecs.ServiceCapacityProviderStrategyArgs(capacity_provider=cp.name, weight=1),
            ),
            task_memory="15000",
            resource_requirements=({"type": "GPU", "value": "1"},),
            environment={"NVIDIA_DRIVER_CAPABILITIES": "all", "EXECUTION_PROVIDER": "cuda"},
            placement_constraints=(
                aws.ecs.ServicePlacementConstraintArgs(type="distinctInstance"),
            ),
        )

    Exactly one of ``launch_type`` and ``capacity_provider_strategies`` must be set.
    """

    requires_compatibilities: Sequence[str]
    launch_type: str | None = None
    capacity_provider_strategies: Sequence[aws.ecs.ServiceCapacityProviderStrategyArgs] = ()
    # Task-level size (strings, as the ECS API takes them). Required on Fargate.
    task_cpu: str | None = None
    task_memory: str | None = None
    runtime_platform: aws.ecs.TaskDefinitionRuntimePlatformArgs | None = None
    # App-container-level sizing and devices (EC2: e.g. GPU=1).
    container_cpu: int | None = None
    container_memory_reservation: int | None = None
    resource_requirements: Sequence[Mapping[str, str]] = ()
    environment: Mapping[str, str] = field(default_factory=dict)
    # Service-level scheduling (EC2: distinctInstance) and task-definition constraints.
    placement_constraints: Sequence[aws.ecs.ServicePlacementConstraintArgs] = ()
    ordered_placement_strategies: Sequence[aws.ecs.ServiceOrderedPlacementStrategyArgs] = ()
    platform_version: str | None = None  # Fargate only ("LATEST")
    max_stop_timeout_s: int = 120  # ECS caps stopTimeout at 120 s on Fargate

    def __post_init__(self) -> None:
        if bool(self.launch_type) == bool(self.capacity_provider_strategies):
            raise ValueError(
                "Placement needs exactly one of launch_type and capacity_provider_strategies; "
                f"got launch_type={self.launch_type!r} and "
                f"{len(self.capacity_provider_strategies)} capacity provider strategies"
            )
        bad = set(self.requires_compatibilities) - {"FARGATE", "EC2", "EXTERNAL"}
        if not self.requires_compatibilities or bad:
            raise ValueError(
                f"requires_compatibilities {list(self.requires_compatibilities)!r} is invalid; "
                "use FARGATE or EC2"
            )


# -- tunables ---------------------------------------------------------------------------------
@dataclass
class HealthCheck:
    """ALB target-group health check on ``/health``. Defaults from seed 002."""

    path: str = HEALTH_PATH
    matcher: str = "200"
    interval_s: int = 5
    timeout_s: int = 2
    healthy_threshold: int = 5
    unhealthy_threshold: int = 2
    deregistration_delay_s: int = 60

    def validate(self) -> None:
        """ALB limits: interval 5-300, timeout 2-120 and below the interval, thresholds 2-10."""
        if not 5 <= self.interval_s <= 300:
            raise ValueError(f"health check interval {self.interval_s}s: use 5-300 seconds")
        if not 2 <= self.timeout_s <= 120 or self.timeout_s >= self.interval_s:
            raise ValueError(
                f"health check timeout {self.timeout_s}s: use 2-120 seconds, less than the "
                f"interval ({self.interval_s}s)"
            )
        for label, value in (
            ("healthy threshold", self.healthy_threshold),
            ("unhealthy threshold", self.unhealthy_threshold),
        ):
            if not 2 <= value <= 10:
                raise ValueError(f"health check {label} {value}: use 2-10")
        if not 0 <= self.deregistration_delay_s <= 3600:
            raise ValueError(
                f"deregistration delay {self.deregistration_delay_s}s: use 0-3600 seconds"
            )


@dataclass
class ContainerHealthCheck:
    """Container-level health check (ECS restarts the task when it fails)."""

    interval_s: int = 10
    timeout_s: int = 5
    retries: int = 3
    start_period_s: int = 60  # model loading time before failures count

    def validate(self) -> None:
        """ECS limits: interval 5-300, timeout 2-60, retries 1-10, start period 0-300."""
        if not (
            5 <= self.interval_s <= 300
            and 2 <= self.timeout_s <= 60
            and 1 <= self.retries <= 10
            and 0 <= self.start_period_s <= 300
        ):
            raise ValueError(
                f"container health check {self}: ECS accepts interval 5-300, timeout 2-60, "
                "retries 1-10, start period 0-300 (seconds)"
            )


# Seconds the service keeps an idle connection open beyond the ALB's idle timeout.
KEEP_ALIVE_MARGIN_S = 5


@dataclass
class LoadBalancerOptions:
    """ALB exposure. Internal by default; public needs ``public_subnet_ids``."""

    public: bool = False
    certificate_arn: pulumi.Input[str] | None = None  # turns on HTTPS (+ HTTP->HTTPS redirect)
    ssl_policy: str = DEFAULT_SSL_POLICY
    access_logs_bucket: pulumi.Input[str] | None = None
    access_logs_prefix: str | None = None
    idle_timeout_s: int = 60
    deletion_protection: bool = False

    @property
    def backend_keep_alive_s(self) -> int:
        """The service's KEEP_ALIVE_TIMEOUT_S: longer than the ALB's idle timeout, so the ALB,
        not the service, closes idle connections (ELB guide, "Connection idle timeout")."""
        return self.idle_timeout_s + KEEP_ALIVE_MARGIN_S

    def validate(self) -> None:
        """ALB idle timeout range."""
        if not 1 <= self.idle_timeout_s <= 4000:
            raise ValueError(f"ALB idle timeout {self.idle_timeout_s}s: use 1-4000 seconds")

    @property
    def grpc(self) -> bool:
        """gRPC through the load balancer: needs the HTTPS listener, so a certificate."""
        return bool(self.certificate_arn)

    @property
    def listener_ports(self) -> list[int]:
        """Ports the ALB listens on, so its security group opens exactly these."""
        return [80, 443] if self.certificate_arn else [80]


@dataclass
class Autoscaling:
    """Target tracking on CPU and on ALB requests per target; set ``requests_per_target`` to
    None to scale on CPU only. Scale in slower than out: a cold task loads models first.
    ``concurrency_per_task`` adds a policy on the service's own metric, average in-flight
    inference requests per task (components/ecs_service/service_metrics.py): the signal that
    tracks a saturated GPU, whose tasks show little CPU."""

    min_count: int = 1
    max_count: int = 4
    cpu_target_percent: float = 60.0
    requests_per_target: float | None = 200.0
    scale_in_cooldown_s: int = 300
    scale_out_cooldown_s: int = 60
    concurrency_per_task: float | None = None
    off_hours: OffHours | None = None
    """Scale to zero outside working hours and back (components/off_hours.py)."""

    def validate(self, desired_count: int) -> None:
        """Counts must nest (min <= desired <= max) and scale-in must not outpace scale-out."""
        if not 0 <= self.min_count <= self.max_count or self.max_count < 1:
            raise ValueError(
                f"autoscaling min {self.min_count} / max {self.max_count}: need "
                "0 <= min <= max and max >= 1"
            )
        if not self.min_count <= desired_count <= self.max_count:
            raise ValueError(
                f"desired count {desired_count} is outside autoscaling range "
                f"{self.min_count}-{self.max_count}"
            )
        if not 0 < self.cpu_target_percent <= 100:
            raise ValueError(f"CPU target {self.cpu_target_percent}%: use (0, 100]")
        if self.requests_per_target is not None and self.requests_per_target <= 0:
            raise ValueError(f"requests per target {self.requests_per_target}: must be > 0")
        if self.concurrency_per_task is not None and not 0 < self.concurrency_per_task <= 10000:
            raise ValueError(
                f"concurrency per task {self.concurrency_per_task}: use (0, 10000] in-flight "
                "requests, or None for no policy on it"
            )
        if self.scale_in_cooldown_s <= self.scale_out_cooldown_s:
            raise ValueError(
                f"scale-in cooldown {self.scale_in_cooldown_s}s must be longer than scale-out "
                f"cooldown {self.scale_out_cooldown_s}s"
            )
        if self.off_hours is not None:
            self.off_hours.validate()


@dataclass
class Network:
    """The VPC the service lives in. Tasks always run in the private subnets."""

    vpc_id: pulumi.Input[str]
    vpc_cidr_block: pulumi.Input[str]  # an internal ALB admits this range only
    private_subnet_ids: pulumi.Input[Sequence[pulumi.Input[str]]]
    public_subnet_ids: pulumi.Input[Sequence[pulumi.Input[str]]] | None = None  # public ALB


@dataclass
class ServiceSettings:
    """Tunables shared by the Fargate and GPU variants (stack config maps onto these)."""

    desired_count: int = 3  # seed 000: three tasks
    autoscaling: Autoscaling | None = field(default_factory=Autoscaling)
    load_balancer: LoadBalancerOptions = field(default_factory=LoadBalancerOptions)
    health_check: HealthCheck = field(default_factory=HealthCheck)
    container_health_check: ContainerHealthCheck = field(default_factory=ContainerHealthCheck)
    environment: Mapping[str, pulumi.Input[str]] = field(default_factory=dict)
    log_level: str = "INFO"
    graceful_shutdown_s: int = 25  # passed as GRACEFUL_SHUTDOWN_S
    stop_timeout_s: int = 30  # SIGTERM -> SIGKILL; must exceed graceful_shutdown_s
    health_check_grace_period_s: int = 60  # ECS ignores ALB health this long after start
    enable_execute_command: bool = True
    # None: read-only unless ECS Exec is on (its SSM agent needs a writable root file system).
    readonly_root_filesystem: bool | None = None
    # Seed 002: let deployments (CI, `aws ecs update-service`) own the task definition revision.
    ignore_task_definition_changes: bool = False
    notification_email: str | None = None
    # CloudWatch alarms ECS watches during deployments (rollback on ALARM).
    deployment_alarms: DeploymentAlarmSettings = field(default_factory=DeploymentAlarmSettings)

    @property
    def readonly_root(self) -> bool:
        """Effective readonlyRootFilesystem."""
        if self.readonly_root_filesystem is None:
            return not self.enable_execute_command
        return self.readonly_root_filesystem

    def validate(self, max_stop_timeout_s: int = 120) -> None:
        """Fail at preview time, naming the bad value and what is accepted."""
        self.health_check.validate()
        self.container_health_check.validate()
        self.load_balancer.validate()
        self.deployment_alarms.validate()
        if self.autoscaling is not None:
            self.autoscaling.validate(self.desired_count)
        elif self.desired_count < 0:
            raise ValueError(f"desired count {self.desired_count}: must be >= 0")
        if not 2 <= self.stop_timeout_s <= max_stop_timeout_s:
            raise ValueError(
                f"stop timeout {self.stop_timeout_s}s: use 2-{max_stop_timeout_s} seconds"
            )
        if self.stop_timeout_s <= self.graceful_shutdown_s:
            raise ValueError(
                f"stop timeout {self.stop_timeout_s}s must be longer than the graceful shutdown "
                f"({self.graceful_shutdown_s}s), or in-flight requests are killed"
            )
        if self.readonly_root_filesystem and self.enable_execute_command:
            raise ValueError(
                "readonly_root_filesystem=True does not work with ECS Exec (its agent writes to "
                "the root file system); disable one of them"
            )
        if self.health_check_grace_period_s < 0:
            raise ValueError(
                f"health check grace period {self.health_check_grace_period_s}s: must be >= 0"
            )
        if self.log_level.upper() not in {"DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL"}:
            raise ValueError(
                f"log level {self.log_level!r}: use DEBUG, INFO, WARNING, ERROR or CRITICAL"
            )


@dataclass
class InferenceServiceArgs:
    """Everything the shared service needs. ``cluster_name`` is needed besides the ARN because
    Application Auto Scaling addresses a service as ``service/<cluster name>/<service name>``."""

    cluster_arn: pulumi.Input[str]
    cluster_name: pulumi.Input[str]
    network: Network
    image: pulumi.Input[str]
    placement: Placement
    model_store: ModelStore
    log_router: LogRouterLike
    settings: ServiceSettings = field(default_factory=ServiceSettings)
    tags: Mapping[str, str] = field(default_factory=dict)
    # Called with the cluster ARN before the ECS service is registered; the service's first
    # deployment waits for what it returns (the deploy-time model publish, __main__.py).
    before_deploy: BeforeDeploy | None = None

    def validate(self) -> None:
        """Validate settings against this placement and the network."""
        self.settings.validate(self.placement.max_stop_timeout_s)
        if self.settings.load_balancer.public and self.network.public_subnet_ids is None:
            raise ValueError("a public load balancer needs public_subnet_ids")
