"""The one shared "load-balanced ECS service for the inference container".

``FargateInferenceService`` (CPU, Fargate) and ``GpuEc2Cluster`` (GPU, EC2 capacity provider) both
build the same thing here and differ only in a :class:`Placement`: launch type or capacity
provider strategy, task/container sizing, GPU resource requirements, extra environment and
service placement constraints.

Both use network mode ``awsvpc``: every task gets its own ENI and therefore its own security group,
which admits port 8000 only from the load balancer's security group. Bridge mode on EC2 would
share the instance's security group between all tasks and force the ALB to reach dynamic host
ports, so "only the ALB may talk to the task" could no longer be expressed; that is why the GPU
variant uses ``awsvpc`` too (it costs one ENI per task, which g4dn/g5 instances have room for).

What this component creates (children named ``<name>-<role>``):
task definition (app container + FireLens log router sidecar), task and execution roles, security
groups for ALB and tasks, the ALB with target group and listeners, the ECS service, application
autoscaling (CPU and ALBRequestCountPerTarget target tracking) and notifications
(:class:`components.notifications.ServiceNotifications`).
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

import pulumi
import pulumi_aws as aws

from components.iam import assume_role_policy, policy_json
from components.notifications import ServiceNotifications, ServiceNotificationsArgs

CONTAINER_NAME = "app"
PUBLIC_ALB_TAG = "onnx-ecs:role"
CONTAINER_INSIGHTS = ("enabled", "enhanced", "disabled")
CONTAINER_PORT = 8000
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

    def validate(self) -> None:
        """ALB idle timeout range."""
        if not 1 <= self.idle_timeout_s <= 4000:
            raise ValueError(f"ALB idle timeout {self.idle_timeout_s}s: use 1-4000 seconds")

    @property
    def listener_ports(self) -> list[int]:
        """Ports the ALB listens on, so its security group opens exactly these."""
        return [80, 443] if self.certificate_arn else [80]


@dataclass
class Autoscaling:
    """Target tracking on CPU and on ALB requests per target; set ``requests_per_target`` to
    None to scale on CPU only. Scale in slower than out: a cold task loads models first."""

    min_count: int = 1
    max_count: int = 4
    cpu_target_percent: float = 60.0
    requests_per_target: float | None = 200.0
    scale_in_cooldown_s: int = 300
    scale_out_cooldown_s: int = 60

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
        if self.scale_in_cooldown_s <= self.scale_out_cooldown_s:
            raise ValueError(
                f"scale-in cooldown {self.scale_in_cooldown_s}s must be longer than scale-out "
                f"cooldown {self.scale_out_cooldown_s}s"
            )


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

    def validate(self) -> None:
        """Validate settings against this placement and the network."""
        self.settings.validate(self.placement.max_stop_timeout_s)
        if self.settings.load_balancer.public and self.network.public_subnet_ids is None:
            raise ValueError("a public load balancer needs public_subnet_ids")


# -- pure helpers (unit-testable without Pulumi) ---------------------------------------------------
def ecr_repository_arn(image: str) -> str | None:
    """ARN of the ECR repository an image URI points at, or None for non-ECR images."""
    match = _ECR_URI.match(image)
    if match is None:
        return None
    partition = "aws-cn" if match["cn"] else "aws"
    return f"arn:{partition}:ecr:{match['region']}:{match['account']}:repository/{match['repo']}"


def app_container_definition(
    *,
    image: str,
    environment: Mapping[str, str],
    mount_points: Sequence[Mapping[str, Any]],
    log_configuration: Mapping[str, Any],
    log_router_name: str,
    stop_timeout_s: int,
    readonly_root: bool,
    health: ContainerHealthCheck,
    placement: Placement,
) -> dict[str, Any]:
    """The inference container, in ECS API field names (see tests/ecs_schema.py)."""
    env = {**environment, **placement.environment}
    container: dict[str, Any] = {
        "name": CONTAINER_NAME,
        "image": image,
        "essential": True,
        "user": APP_USER,
        "portMappings": [
            {
                "containerPort": CONTAINER_PORT,
                "protocol": "tcp",
                "name": "http",
                "appProtocol": "http",
            }
        ],
        "environment": [{"name": k, "value": str(v)} for k, v in sorted(env.items())],
        "mountPoints": [dict(m) for m in mount_points],
        "readonlyRootFilesystem": readonly_root,
        "stopTimeout": stop_timeout_s,
        "healthCheck": {
            "command": list(HEALTH_COMMAND),
            "interval": health.interval_s,
            "timeout": health.timeout_s,
            "retries": health.retries,
            "startPeriod": health.start_period_s,
        },
        "logConfiguration": dict(log_configuration),
        # The router must be up before the app logs its first line.
        "dependsOn": [{"containerName": log_router_name, "condition": "START"}],
        # tini as PID 1: forwards SIGTERM for graceful shutdown and reaps ECS Exec sessions.
        "linuxParameters": {"initProcessEnabled": True},
    }
    if placement.resource_requirements:
        container["resourceRequirements"] = [dict(r) for r in placement.resource_requirements]
    if placement.container_cpu is not None:
        container["cpu"] = placement.container_cpu
    if placement.container_memory_reservation is not None:
        container["memoryReservation"] = placement.container_memory_reservation
    return container


# -- IAM helpers, shared with other task definitions (components/model_sync_job.py) -----------
def task_role_trust_policy(parent: pulumi.Resource) -> pulumi.Output[str]:
    """Trust policy of a task role. Confused-deputy guard: only ECS acting for this account may
    assume it, and ``aws:SourceArn`` is pinned to this account's ECS resources in this region,
    as the ECS guide for task roles shows."""
    invoke = pulumi.InvokeOutputOptions(parent=parent)
    account = aws.get_caller_identity_output(opts=invoke).account_id
    region = aws.get_region_output(opts=invoke).region
    partition = aws.get_partition_output(opts=invoke).partition
    return pulumi.Output.all(account, region, partition).apply(
        lambda v: assume_role_policy(
            "ecs-tasks.amazonaws.com",
            {
                "StringEquals": {"aws:SourceAccount": v[0]},
                "ArnLike": {"aws:SourceArn": f"arn:{v[2]}:ecs:{v[1]}:{v[0]}:*"},
            },
        )
    )


def execution_role_trust_policy(parent: pulumi.Resource) -> pulumi.Output[str]:
    """Trust policy of an execution role: ``aws:SourceAccount`` only, the condition the ECS
    agent is documented to send when it pulls images."""
    invoke = pulumi.InvokeOutputOptions(parent=parent)
    return aws.get_caller_identity_output(opts=invoke).account_id.apply(
        lambda account: assume_role_policy(
            "ecs-tasks.amazonaws.com", {"StringEquals": {"aws:SourceAccount": account}}
        )
    )


def execution_role_policy(
    parent: pulumi.Resource, image: pulumi.Input[str], log_router: LogRouterLike
) -> pulumi.Output[str]:
    """Execution-role policy for a task of ``image`` + the log router sidecar: pull from the ECR
    repositories in use, write the router's own log group (see :func:`execution_statements`)."""
    invoke = pulumi.InvokeOutputOptions(parent=parent)
    account = aws.get_caller_identity_output(opts=invoke).account_id
    region = aws.get_region_output(opts=invoke).region
    partition = aws.get_partition_output(opts=invoke).partition
    router_image = log_router.container_definition().apply(lambda c: c.get("image", ""))
    log_group_arn = pulumi.Output.all(
        partition, region, account, log_router.router_log_group_name
    ).apply(lambda v: f"arn:{v[0]}:logs:{v[1]}:{v[2]}:log-group:{v[3]}:*")
    return pulumi.Output.all(image, router_image, log_group_arn).apply(
        lambda v: json.dumps(
            {"Version": "2012-10-17", "Statement": execution_statements(v[0], v[1], v[2])}
        )
    )


# -- the component --------------------------------------------------------------------------------
def cluster_settings(container_insights: str) -> list[aws.ecs.ClusterSettingArgs]:
    """Settings of a cluster a component creates; raises on a Container Insights value ECS
    does not know."""
    if container_insights not in CONTAINER_INSIGHTS:
        raise ValueError(
            f"container_insights {container_insights!r} must be one of "
            f"{', '.join(CONTAINER_INSIGHTS)}"
        )
    return [aws.ecs.ClusterSettingArgs(name="containerInsights", value=container_insights)]


def task_egress(
    prefix: str,
    security_group: aws.ec2.SecurityGroup,
    model_store: ModelStore,
    opts: pulumi.ResourceOptions,
) -> None:
    """What a task that reads models may reach: HTTPS to AWS APIs (ECR, CloudWatch, S3, SSM, via
    NAT or VPC endpoints) and NFS to the model store; nothing else."""
    aws.vpc.SecurityGroupEgressRule(
        f"{prefix}-out-https",
        security_group_id=security_group.id,
        ip_protocol="tcp",
        from_port=443,
        to_port=443,
        cidr_ipv4="0.0.0.0/0",
        description="HTTPS to AWS APIs (ECR, logs, S3, SSM)",
        opts=opts,
    )
    aws.vpc.SecurityGroupEgressRule(
        f"{prefix}-out-nfs",
        security_group_id=security_group.id,
        ip_protocol="tcp",
        from_port=2049,
        to_port=2049,
        referenced_security_group_id=model_store.security_group_id,
        description="NFS to the model file system",
        opts=opts,
    )


class InferenceService(pulumi.ComponentResource):
    """Load-balanced ECS service running the inference container (see module docstring)."""

    cluster_name: pulumi.Output[str]
    cluster_arn: pulumi.Output[str]
    service_name: pulumi.Output[str]
    service_arn: pulumi.Output[str]
    url: pulumi.Output[str]
    load_balancer_dns: pulumi.Output[str]
    load_balancer_arn: pulumi.Output[str]
    target_group_arn: pulumi.Output[str]
    alarm_topic_arn: pulumi.Output[str]
    task_definition_arn: pulumi.Output[str]
    task_definition_family: pulumi.Output[str]
    task_role_arn: pulumi.Output[str]
    execution_role_arn: pulumi.Output[str]
    task_security_group_id: pulumi.Output[str]
    alb_security_group_id: pulumi.Output[str]
    subnet_ids: pulumi.Output[list[str]]

    def __init__(
        self,
        name: str,
        args: InferenceServiceArgs,
        opts: pulumi.ResourceOptions | None = None,
    ) -> None:
        args.validate()
        super().__init__("onnx-ecs:index:InferenceService", name, None, opts)
        self._name = name
        self._args = args
        self._child = pulumi.ResourceOptions(parent=self)
        self._tags = dict(args.tags)

        alb_sg, task_sg = self._security_groups()
        task_role, execution_role = self._roles()
        task_definition = self._task_definition(task_role, execution_role)
        alb, target_group, listeners = self._load_balancer(alb_sg)
        service = self._service(task_definition, task_sg, target_group, listeners)
        if args.settings.autoscaling is not None:
            self._autoscaling(args.settings.autoscaling, service, alb, target_group)
        notifications = ServiceNotifications(
            f"{name}-notify",
            ServiceNotificationsArgs(
                cluster_arn=args.cluster_arn,
                service_arn=service.arn,
                service_name=service.name,
                email=args.settings.notification_email,
                tags=self._tags,
            ),
            opts=self._child,
        )

        scheme = "https" if args.settings.load_balancer.certificate_arn else "http"
        self.cluster_name = pulumi.Output.from_input(args.cluster_name)
        self.cluster_arn = pulumi.Output.from_input(args.cluster_arn)
        self.service_name = service.name
        self.service_arn = service.arn
        self.load_balancer_dns = alb.dns_name
        self.load_balancer_arn = alb.arn
        self.target_group_arn = target_group.arn
        self.url = pulumi.Output.concat(scheme, "://", alb.dns_name)
        self.alarm_topic_arn = notifications.topic_arn
        self.task_definition_arn = task_definition.arn
        self.task_definition_family = task_definition.family
        self.task_role_arn = task_role.arn
        self.execution_role_arn = execution_role.arn
        self.task_security_group_id = task_sg.id
        self.alb_security_group_id = alb_sg.id
        self.subnet_ids = pulumi.Output.from_input(args.network.private_subnet_ids)
        self.register_outputs(
            {
                "cluster_name": self.cluster_name,
                "cluster_arn": self.cluster_arn,
                "service_name": self.service_name,
                "url": self.url,
                "load_balancer_dns": self.load_balancer_dns,
                "alarm_topic_arn": self.alarm_topic_arn,
                "task_definition_arn": self.task_definition_arn,
                "task_role_arn": self.task_role_arn,
                "execution_role_arn": self.execution_role_arn,
                "task_security_group_id": self.task_security_group_id,
            }
        )

    # -- network ------------------------------------------------------------------------------
    def _security_groups(self) -> tuple[aws.ec2.SecurityGroup, aws.ec2.SecurityGroup]:
        """ALB SG (listener ports in, 8000 to tasks out) and task SG (8000 from ALB only).

        Rules are separate resources so the two groups can reference each other without a cycle.
        """
        name, args, child = self._name, self._args, self._child
        lb = args.settings.load_balancer
        alb_sg = aws.ec2.SecurityGroup(
            f"{name}-alb-sg",
            vpc_id=args.network.vpc_id,
            description="Inference ALB: listener ports in, container port out to tasks",
            # The policy pack admits internet ingress only on groups tagged as a public ALB's.
            tags={**self._tags, **({PUBLIC_ALB_TAG: "public-alb"} if lb.public else {})},
            opts=child,
        )
        task_sg = aws.ec2.SecurityGroup(
            f"{name}-task-sg",
            vpc_id=args.network.vpc_id,
            description="Inference tasks: container port from the ALB only",
            tags=self._tags,
            opts=child,
        )
        source = "0.0.0.0/0" if lb.public else args.network.vpc_cidr_block
        for port in lb.listener_ports:
            aws.vpc.SecurityGroupIngressRule(
                f"{name}-alb-in-{port}",
                security_group_id=alb_sg.id,
                ip_protocol="tcp",
                from_port=port,
                to_port=port,
                cidr_ipv4=source,
                description="public listener" if lb.public else "listener, from inside the VPC",
                opts=child,
            )
        aws.vpc.SecurityGroupEgressRule(
            f"{name}-alb-out-tasks",
            security_group_id=alb_sg.id,
            ip_protocol="tcp",
            from_port=CONTAINER_PORT,
            to_port=CONTAINER_PORT,
            referenced_security_group_id=task_sg.id,
            description="to the inference tasks",
            opts=child,
        )
        aws.vpc.SecurityGroupIngressRule(
            f"{name}-task-in-alb",
            security_group_id=task_sg.id,
            ip_protocol="tcp",
            from_port=CONTAINER_PORT,
            to_port=CONTAINER_PORT,
            referenced_security_group_id=alb_sg.id,
            description="from the inference ALB only",
            opts=child,
        )
        task_egress(f"{name}-task", task_sg, args.model_store, child)
        args.model_store.allow_from(f"{name}-tasks", task_sg.id)
        return alb_sg, task_sg

    # -- IAM --------------------------------------------------------------------------------
    def _roles(self) -> tuple[aws.iam.Role, aws.iam.Role]:
        """Task role (EFS mount, log destinations, ECS Exec) and execution role (pull, awslogs)."""
        name, args, child = self._name, self._args, self._child
        task_role = aws.iam.Role(
            f"{name}-task-role",
            assume_role_policy=task_role_trust_policy(self),
            description="Inference task: mount models, ship logs, ECS Exec",
            tags=self._tags,
            opts=child,
        )
        statements: list[Any] = [
            args.model_store.task_role_statement(write=False),
            *args.log_router.task_role_statements(),
        ]
        if args.settings.enable_execute_command:
            statements.append(ECS_EXEC_STATEMENT)
        aws.iam.RolePolicy(
            f"{name}-task-policy", role=task_role.id, policy=policy_json(statements), opts=child
        )

        execution_role = aws.iam.Role(
            f"{name}-execution-role",
            assume_role_policy=execution_role_trust_policy(self),
            description="ECS agent: pull images, write the log router's own logs",
            tags=self._tags,
            opts=child,
        )
        aws.iam.RolePolicy(
            f"{name}-execution-policy",
            role=execution_role.id,
            policy=execution_role_policy(self, args.image, args.log_router),
            opts=child,
        )
        return task_role, execution_role

    # -- task definition ------------------------------------------------------------------------
    def _task_definition(
        self, task_role: aws.iam.Role, execution_role: aws.iam.Role
    ) -> aws.ecs.TaskDefinition:
        name, args, placement = self._name, self._args, self._args.placement
        environment: dict[str, pulumi.Input[str]] = {
            "MODEL_DIR": MODEL_PATH,
            "PORT": str(CONTAINER_PORT),
            "LOG_LEVEL": args.settings.log_level.upper(),
            "GRACEFUL_SHUTDOWN_S": str(args.settings.graceful_shutdown_s),
            **args.settings.environment,
        }
        env_keys = list(environment)
        mount_points = [args.model_store.mount_point(MODEL_PATH, read_only=True)]
        volumes = [args.model_store.volume()]
        if args.settings.readonly_root:
            # Scratch space for Python/uvicorn temp files when the root file system is read-only.
            mount_points.append({"sourceVolume": "tmp", "containerPath": "/tmp", "readOnly": False})
            volumes.append(aws.ecs.TaskDefinitionVolumeArgs(name="tmp"))

        def render(values: list[Any]) -> str:
            image, router, log_config, *env_values = values
            app = app_container_definition(
                image=image,
                environment=dict(zip(env_keys, env_values, strict=True)),
                mount_points=mount_points,
                log_configuration=log_config,
                log_router_name=args.log_router.container_name,
                stop_timeout_s=args.settings.stop_timeout_s,
                readonly_root=args.settings.readonly_root,
                health=args.settings.container_health_check,
                placement=placement,
            )
            return json.dumps([app, router])

        container_definitions = pulumi.Output.all(
            args.image,
            args.log_router.container_definition(),
            args.log_router.app_log_configuration(),
            *environment.values(),
        ).apply(render)
        return aws.ecs.TaskDefinition(
            f"{name}-taskdef",
            family=name,
            network_mode="awsvpc",
            requires_compatibilities=list(placement.requires_compatibilities),
            cpu=placement.task_cpu,
            memory=placement.task_memory,
            runtime_platform=placement.runtime_platform,
            task_role_arn=task_role.arn,
            execution_role_arn=execution_role.arn,
            container_definitions=container_definitions,
            volumes=volumes,
            tags=self._tags,
            opts=self._child,
        )

    # -- load balancer ------------------------------------------------------------------------
    def _load_balancer(
        self, alb_sg: aws.ec2.SecurityGroup
    ) -> tuple[aws.lb.LoadBalancer, aws.lb.TargetGroup, list[aws.lb.Listener]]:
        name, args, child = self._name, self._args, self._child
        lb, hc = args.settings.load_balancer, args.settings.health_check
        access_logs = None
        if lb.access_logs_bucket is not None:
            access_logs = aws.lb.LoadBalancerAccessLogsArgs(
                bucket=lb.access_logs_bucket, prefix=lb.access_logs_prefix, enabled=True
            )
        alb = aws.lb.LoadBalancer(
            f"{name}-alb",
            load_balancer_type="application",
            internal=not lb.public,
            subnets=args.network.public_subnet_ids
            if lb.public
            else args.network.private_subnet_ids,
            security_groups=[alb_sg.id],
            drop_invalid_header_fields=True,
            idle_timeout=lb.idle_timeout_s,
            enable_deletion_protection=lb.deletion_protection,
            access_logs=access_logs,
            tags=self._tags,
            opts=child,
        )
        target_group = aws.lb.TargetGroup(
            f"{name}-tg",
            target_type="ip",
            port=CONTAINER_PORT,
            protocol="HTTP",
            vpc_id=args.network.vpc_id,
            deregistration_delay=hc.deregistration_delay_s,
            health_check=aws.lb.TargetGroupHealthCheckArgs(
                enabled=True,
                path=hc.path,
                protocol="HTTP",
                port="traffic-port",
                matcher=hc.matcher,
                interval=hc.interval_s,
                timeout=hc.timeout_s,
                healthy_threshold=hc.healthy_threshold,
                unhealthy_threshold=hc.unhealthy_threshold,
            ),
            tags=self._tags,
            opts=child,
        )
        forward = aws.lb.ListenerDefaultActionArgs(
            type="forward", target_group_arn=target_group.arn
        )
        listeners: list[aws.lb.Listener] = []
        if lb.certificate_arn:
            listeners.append(
                aws.lb.Listener(
                    f"{name}-https",
                    load_balancer_arn=alb.arn,
                    port=443,
                    protocol="HTTPS",
                    ssl_policy=lb.ssl_policy,
                    certificate_arn=lb.certificate_arn,
                    default_actions=[forward],
                    tags=self._tags,
                    opts=child,
                )
            )
            http_action = aws.lb.ListenerDefaultActionArgs(
                type="redirect",
                redirect=aws.lb.ListenerDefaultActionRedirectArgs(
                    port="443", protocol="HTTPS", status_code="HTTP_301"
                ),
            )
        else:
            if lb.public:
                pulumi.log.warn(
                    f"{name}: public load balancer without certificate_arn serves plain HTTP",
                    resource=self,
                )
            http_action = forward
        listeners.append(
            aws.lb.Listener(
                f"{name}-http",
                load_balancer_arn=alb.arn,
                port=80,
                protocol="HTTP",
                default_actions=[http_action],
                tags=self._tags,
                opts=child,
            )
        )
        return alb, target_group, listeners

    # -- ECS service ----------------------------------------------------------------------------
    def _service(
        self,
        task_definition: aws.ecs.TaskDefinition,
        task_sg: aws.ec2.SecurityGroup,
        target_group: aws.lb.TargetGroup,
        listeners: list[aws.lb.Listener],
    ) -> aws.ecs.Service:
        name, args, placement = self._name, self._args, self._args.placement
        ignore = []
        if args.settings.autoscaling is not None:
            ignore.append("desiredCount")  # autoscaling owns it after creation
        if args.settings.ignore_task_definition_changes:
            ignore.append("taskDefinition")  # deployments own the revision (seed 002)
        return aws.ecs.Service(
            f"{name}-service",
            cluster=args.cluster_arn,
            task_definition=task_definition.arn,
            desired_count=args.settings.desired_count,
            launch_type=placement.launch_type,
            capacity_provider_strategies=list(placement.capacity_provider_strategies) or None,
            platform_version=placement.platform_version,
            placement_constraints=list(placement.placement_constraints) or None,
            ordered_placement_strategies=list(placement.ordered_placement_strategies) or None,
            network_configuration=aws.ecs.ServiceNetworkConfigurationArgs(
                subnets=args.network.private_subnet_ids,
                security_groups=[task_sg.id],
                assign_public_ip=False,
            ),
            load_balancers=[
                aws.ecs.ServiceLoadBalancerArgs(
                    target_group_arn=target_group.arn,
                    container_name=CONTAINER_NAME,
                    container_port=CONTAINER_PORT,
                )
            ],
            deployment_circuit_breaker=aws.ecs.ServiceDeploymentCircuitBreakerArgs(
                enable=True, rollback=True
            ),
            deployment_minimum_healthy_percent=100,
            deployment_maximum_percent=200,
            health_check_grace_period_seconds=args.settings.health_check_grace_period_s,
            enable_execute_command=args.settings.enable_execute_command,
            enable_ecs_managed_tags=True,
            propagate_tags="SERVICE",
            wait_for_steady_state=False,
            tags=self._tags,
            opts=pulumi.ResourceOptions(
                parent=self, depends_on=listeners, ignore_changes=ignore or None
            ),
        )

    # -- autoscaling ----------------------------------------------------------------------------
    def _autoscaling(
        self,
        scaling: Autoscaling,
        service: aws.ecs.Service,
        alb: aws.lb.LoadBalancer,
        target_group: aws.lb.TargetGroup,
    ) -> None:
        name, args, child = self._name, self._args, self._child
        target = aws.appautoscaling.Target(
            f"{name}-scaling",
            service_namespace="ecs",
            scalable_dimension="ecs:service:DesiredCount",
            resource_id=pulumi.Output.concat("service/", args.cluster_name, "/", service.name),
            min_capacity=scaling.min_count,
            max_capacity=scaling.max_count,
            tags=self._tags,
            opts=child,
        )
        policies: list[tuple[str, float, pulumi.Input[str] | None, str]] = [
            ("cpu", scaling.cpu_target_percent, None, "ECSServiceAverageCPUUtilization")
        ]
        if scaling.requests_per_target is not None:
            label = pulumi.Output.concat(alb.arn_suffix, "/", target_group.arn_suffix)
            policies.append(
                ("requests", scaling.requests_per_target, label, "ALBRequestCountPerTarget")
            )
        for role, value, label, metric in policies:
            spec = _MetricSpec(predefined_metric_type=metric, resource_label=label)
            aws.appautoscaling.Policy(
                f"{name}-scale-{role}",
                policy_type="TargetTrackingScaling",
                service_namespace=target.service_namespace,
                scalable_dimension=target.scalable_dimension,
                resource_id=target.resource_id,
                target_tracking_scaling_policy_configuration=_TargetTracking(
                    target_value=value,
                    predefined_metric_specification=spec,
                    scale_in_cooldown=scaling.scale_in_cooldown_s,
                    scale_out_cooldown=scaling.scale_out_cooldown_s,
                ),
                opts=child,
            )


def execution_statements(app_image: str, router_image: str, log_group_arn: str) -> list[dict]:
    """Least-privilege execution role: pull from the ECR repositories in use, write router logs."""
    repos = sorted({arn for arn in map(ecr_repository_arn, (app_image, router_image)) if arn})
    statements: list[dict[str, Any]] = [
        {
            "Sid": "RouterLogs",
            "Effect": "Allow",
            "Action": ["logs:CreateLogStream", "logs:PutLogEvents"],
            "Resource": log_group_arn,
        }
    ]
    if repos:
        statements += [
            {
                "Sid": "EcrAuth",
                "Effect": "Allow",
                "Action": "ecr:GetAuthorizationToken",
                "Resource": "*",
            },
            {
                "Sid": "EcrPull",
                "Effect": "Allow",
                "Action": [
                    "ecr:BatchCheckLayerAvailability",
                    "ecr:BatchGetImage",
                    "ecr:GetDownloadUrlForLayer",
                ],
                "Resource": repos,
            },
        ]
    return statements
