"""GpuEc2Cluster: an ECS cluster whose capacity is an Auto Scaling group of GPU instances.

Fargate has no GPUs, so GPU inference runs on EC2 container instances that ECS scales for us:
launch template (ECS GPU-optimized AMI, IMDSv2, user data joining the cluster) -> Auto Scaling
group tagged ``AmazonECSManaged`` -> capacity provider with managed scaling, managed termination
protection and managed draining -> the cluster's default capacity provider strategy. The
inference service then runs on it through the shared implementation in
``components/ecs_service/`` (see :meth:`GpuEc2Cluster.gpu_placement`).
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

import pulumi
import pulumi_aws as aws

from components.ecs_service import (
    BeforeDeploy,
    InferenceService,
    InferenceServiceArgs,
    LogRouterLike,
    ModelStore,
    Network,
    Placement,
    ServiceSettings,
    cluster_settings,
)
from components.fargate_capacity import FARGATE_PROVIDERS
from components.gpu.cloudwatch_agent import agent_script, instance_role_statements
from components.gpu.instance_types import GpuTaskSize, gpu_task_size, parse_gpu_instance_type
from components.gpu.spot import (
    DEFAULT_SPOT_ALLOCATION_STRATEGY,
    GpuMarket,
    mixed_instances_policy,
    smallest_instance_type,
)
from components.gpu.user_data import user_data_base64
from components.iam import assume_role_policy
from components.off_hours import OffHours, group_off_hours

DEFAULT_GPU_AMI_PARAMETER = (
    "/aws/service/ecs/optimized-ami/amazon-linux-2023/gpu/recommended/image_id"
)
# The only two policies the container instance role carries: register with ECS / pull images,
# and be reachable through Session Manager (no SSH keys, no ingress).
INSTANCE_MANAGED_POLICIES = (
    "service-role/AmazonEC2ContainerServiceforEC2Role",
    "AmazonSSMManagedInstanceCore",
)
_RESERVED_NAME_PREFIXES = ("aws", "ecs", "fargate")
_CLUSTER_NAME_RE = re.compile(r"^[A-Za-z0-9_-]{1,255}$")


@dataclass
class GpuEc2ClusterArgs:
    """Inputs of :class:`GpuEc2Cluster`. Defaults are safe and cheap-at-rest (min_size 0)."""

    vpc_id: pulumi.Input[str]
    subnet_ids: pulumi.Input[Sequence[pulumi.Input[str]]]
    """Private subnets for the instances (and, by default, the tasks); no public IPs."""
    instance_type: str = "g6.xlarge"
    """An NVIDIA GPU type the ECS GPU AMI supports (g4dn, g5, g6, g6e, gr6, p3, p4d, p5...)."""
    ami_id: pulumi.Input[str] | None = None
    """Pin an AMI; when None the AMI is read from ``ami_parameter_name`` at each deployment."""
    ami_parameter_name: str = DEFAULT_GPU_AMI_PARAMETER
    min_size: int = 0
    max_size: int = 4
    """Leave room for deployments: with distinctInstance a rollout needs 2x the task count."""
    root_volume_size_gib: int = 100
    """CUDA images are large; the root volume holds the Docker images."""
    root_volume_kms_key_id: pulumi.Input[str] | None = None
    root_device_name: str = "/dev/xvda"
    spot: bool = False
    """Spot above an On-Demand base (components/gpu/spot.py); needs spot_instance_types."""
    spot_instance_types: Sequence[str] = ()
    """More types with the same GPU count for Spot (e.g. g5.xlarge, g6e.xlarge)."""
    on_demand_base_capacity: int | None = None
    """Instances always On-Demand; None means min_size (the service's floor)."""
    on_demand_percentage_above_base: int = 0
    spot_allocation_strategy: str = DEFAULT_SPOT_ALLOCATION_STRATEGY
    off_hours: OffHours | None = None
    """Lower the group's minimum to 0 outside working hours (components/off_hours.py)."""
    target_capacity: int = 100
    minimum_scaling_step_size: int = 1
    maximum_scaling_step_size: int = 10000
    instance_warmup_period: int = 300
    """Seconds before a new instance's metrics count (GPU AMI boot + image pull)."""
    managed_draining: bool = True
    instance_refresh: bool = True
    """Roll instances when the launch template changes (e.g. a new AMI)."""
    instance_refresh_min_healthy_percentage: int = 100
    instance_refresh_max_healthy_percentage: int = 200
    container_insights: str = "enabled"
    egress_cidrs: Sequence[str] = ("0.0.0.0/0",)
    """HTTPS egress for ECR, ECS, SSM, S3 and CloudWatch (via NAT or VPC endpoints)."""
    reserved_memory_mib: int = 256
    gpu_metrics: bool = True
    """CloudWatch agent nvidia_gpu on each instance (components/gpu/cloudwatch_agent.py)."""
    cluster_name: str | None = None
    tags: Mapping[str, str] = field(default_factory=dict)

    @property
    def market(self) -> GpuMarket:
        """On-Demand only, or the mixed instances policy's On-Demand base and Spot above it."""
        base = (
            self.min_size if self.on_demand_base_capacity is None else self.on_demand_base_capacity
        )
        return GpuMarket(
            spot=self.spot,
            instance_types=tuple(self.spot_instance_types),
            on_demand_base_capacity=base,
            on_demand_percentage_above_base=self.on_demand_percentage_above_base,
            spot_allocation_strategy=self.spot_allocation_strategy,
        )

    @property
    def sizing_instance_type(self) -> str:
        """The type tasks are sized for: the smallest of those the group may launch."""
        return smallest_instance_type(self.market.all_instance_types(self.instance_type))


@dataclass
class GpuInferenceServiceArgs:
    """The inference service on a :class:`GpuEc2Cluster` (compare FargateInferenceServiceArgs).

    ``task_cpu``/``task_memory`` default to the whole instance less agent headroom: with
    ``distinctInstance`` each task has an instance to itself.
    """

    network: Network
    image: pulumi.Input[str]
    model_store: ModelStore
    log_router: LogRouterLike
    gpu_count: int = 1
    task_cpu: int | None = None
    task_memory: int | None = None
    settings: ServiceSettings = field(default_factory=ServiceSettings)
    tags: Mapping[str, str] = field(default_factory=dict)
    before_deploy: BeforeDeploy | None = None  # see InferenceServiceArgs


def _check_int(name: str, value: object, low: int, high: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
        raise ValueError(f"{name} must be an integer in {low}..{high}, got {value!r}")
    return value


def validate_args(name: str, args: GpuEc2ClusterArgs) -> None:
    """Fail at preview time on values AWS would refuse (or accept and then never place on)."""
    parse_gpu_instance_type(args.instance_type)
    if name.lower().startswith(_RESERVED_NAME_PREFIXES):
        raise ValueError(
            f"name {name!r} would give a capacity provider name starting with "
            f"{'/'.join(_RESERVED_NAME_PREFIXES)}, which ECS reserves; choose another name"
        )
    _check_int("min_size", args.min_size, 0, 10000)
    _check_int("max_size", args.max_size, 1, 10000)
    if args.min_size > args.max_size:
        raise ValueError(f"min_size {args.min_size} must be <= max_size {args.max_size}")
    _check_int("target_capacity", args.target_capacity, 1, 100)
    _check_int("minimum_scaling_step_size", args.minimum_scaling_step_size, 1, 10000)
    _check_int("maximum_scaling_step_size", args.maximum_scaling_step_size, 1, 10000)
    if args.minimum_scaling_step_size > args.maximum_scaling_step_size:
        raise ValueError(
            f"minimum_scaling_step_size {args.minimum_scaling_step_size} must be <= "
            f"maximum_scaling_step_size {args.maximum_scaling_step_size}"
        )
    _check_int("instance_warmup_period", args.instance_warmup_period, 0, 10000)
    _check_int("root_volume_size_gib", args.root_volume_size_gib, 30, 16384)
    _check_int("reserved_memory_mib", args.reserved_memory_mib, 0, 65536)
    _check_int(
        "instance_refresh_min_healthy_percentage",
        args.instance_refresh_min_healthy_percentage,
        0,
        100,
    )
    _check_int(
        "instance_refresh_max_healthy_percentage",
        args.instance_refresh_max_healthy_percentage,
        100,
        200,
    )
    cluster_settings(args.container_insights)  # raises on an unknown value
    if args.cluster_name is not None and not _CLUSTER_NAME_RE.match(args.cluster_name):
        raise ValueError(
            f"cluster_name {args.cluster_name!r}: use 1-255 letters, digits, '-' or '_'"
        )
    if not args.egress_cidrs:
        raise ValueError("egress_cidrs must name at least one CIDR for HTTPS to AWS endpoints")
    args.market.validate(args.instance_type, args.max_size)
    if args.spot and not args.managed_draining:
        raise ValueError(
            "spot=True needs managed_draining=True: capacity rebalancing terminates at-risk Spot "
            "instances through the Auto Scaling group, and ECS gets no Spot notice for those "
            "(ECS_ENABLE_SPOT_INSTANCE_DRAINING does not fire); only managed draining moves "
            "their tasks first"
        )
    if args.off_hours is not None:
        args.off_hours.validate()


class GpuEc2Cluster(pulumi.ComponentResource):
    """ECS cluster + GPU launch template + Auto Scaling group + capacity provider."""

    cluster_name: pulumi.Output[str]
    cluster_arn: pulumi.Output[str]
    capacity_provider_name: pulumi.Output[str]
    auto_scaling_group_name: pulumi.Output[str]
    auto_scaling_group_arn: pulumi.Output[str]
    launch_template_id: pulumi.Output[str]
    instance_role_arn: pulumi.Output[str]
    instance_security_group_id: pulumi.Output[str]
    image_id: pulumi.Output[str]

    def __init__(
        self, name: str, args: GpuEc2ClusterArgs, opts: pulumi.ResourceOptions | None = None
    ) -> None:
        validate_args(name, args)
        super().__init__("onnx-ecs:index:GpuEc2Cluster", name, None, opts)
        self.args = args
        child = pulumi.ResourceOptions(parent=self)
        tags = dict(args.tags)
        for warning in args.market.warnings(args.instance_type):
            pulumi.log.warn(f"{name}: {warning}", resource=self)

        self.cluster = aws.ecs.Cluster(
            f"{name}-cluster",
            name=args.cluster_name,
            settings=cluster_settings(args.container_insights),
            tags=tags,
            opts=child,
        )

        role = self._instance_role(name, tags, child)
        profile = aws.iam.InstanceProfile(
            f"{name}-instance-profile", role=role.name, tags=tags, opts=child
        )
        security_group = self._instance_security_group(name, args, tags, child)

        image_id: pulumi.Output[str] = (
            pulumi.Output.from_input(args.ami_id)
            if args.ami_id is not None
            else self._ami_from_ssm(args.ami_parameter_name)
        )
        user_data = self.cluster.name.apply(
            lambda cluster: user_data_base64(
                cluster,
                spot=args.spot,
                reserved_memory_mib=args.reserved_memory_mib,
                extra=agent_script() if args.gpu_metrics else "",
            )
        )
        self.launch_template = aws.ec2.LaunchTemplate(
            f"{name}-launch-template",
            description="ECS GPU container instances (ECS GPU-optimized AMI, IMDSv2)",
            image_id=image_id,
            instance_type=args.instance_type,
            iam_instance_profile=aws.ec2.LaunchTemplateIamInstanceProfileArgs(arn=profile.arn),
            user_data=user_data,
            update_default_version=True,
            # IMDSv2 only; hop limit 1 keeps the instance role away from containers (the ECS
            # agent uses host networking; tasks get task-role credentials from the agent).
            metadata_options=aws.ec2.LaunchTemplateMetadataOptionsArgs(
                http_endpoint="enabled",
                http_tokens="required",
                http_put_response_hop_limit=1,
                instance_metadata_tags="disabled",
            ),
            network_interfaces=[
                aws.ec2.LaunchTemplateNetworkInterfaceArgs(
                    device_index=0,
                    associate_public_ip_address="false",
                    delete_on_termination="true",
                    security_groups=[security_group.id],
                )
            ],
            block_device_mappings=[
                aws.ec2.LaunchTemplateBlockDeviceMappingArgs(
                    device_name=args.root_device_name,
                    ebs=aws.ec2.LaunchTemplateBlockDeviceMappingEbsArgs(
                        volume_size=args.root_volume_size_gib,
                        volume_type="gp3",
                        encrypted="true",
                        kms_key_id=args.root_volume_kms_key_id,
                        delete_on_termination="true",
                    ),
                )
            ],
            # No instance_market_options: Spot is bought by the group's mixed instances
            # policy, and EC2 Auto Scaling refuses a launch template that requests Spot there.
            monitoring=aws.ec2.LaunchTemplateMonitoringArgs(enabled=True),
            tag_specifications=[
                aws.ec2.LaunchTemplateTagSpecificationArgs(
                    resource_type=kind, tags={**tags, "Name": f"{name}-gpu"}
                )
                for kind in ("instance", "volume")
            ],
            tags=tags,
            opts=child,
        )

        self.auto_scaling_group = self._auto_scaling_group(name, args, tags, child)
        if args.off_hours is not None:
            group_off_hours(
                name, args.off_hours, self.auto_scaling_group.name, args.min_size, child
            )

        self.capacity_provider = aws.ecs.CapacityProvider(
            f"{name}-capacity-provider",
            auto_scaling_group_provider=aws.ecs.CapacityProviderAutoScalingGroupProviderArgs(
                auto_scaling_group_arn=self.auto_scaling_group.arn,
                # ECS scales in only instances without tasks (needs protect_from_scale_in).
                managed_termination_protection="ENABLED",
                managed_draining="ENABLED" if args.managed_draining else "DISABLED",
                managed_scaling=aws.ecs.CapacityProviderAutoScalingGroupProviderManagedScalingArgs(
                    status="ENABLED",
                    target_capacity=args.target_capacity,
                    minimum_scaling_step_size=args.minimum_scaling_step_size,
                    maximum_scaling_step_size=args.maximum_scaling_step_size,
                    instance_warmup_period=args.instance_warmup_period,
                ),
            ),
            tags=tags,
            opts=child,
        )
        self.cluster_capacity_providers = aws.ecs.ClusterCapacityProviders(
            f"{name}-capacity-providers",
            cluster_name=self.cluster.name,
            # FARGATE/FARGATE_SPOT too: the model sync runs on Fargate (Spot) in this cluster.
            capacity_providers=[self.capacity_provider.name, *FARGATE_PROVIDERS],
            default_capacity_provider_strategies=[
                aws.ecs.ClusterCapacityProvidersDefaultCapacityProviderStrategyArgs(
                    capacity_provider=self.capacity_provider.name, base=0, weight=1
                )
            ],
            opts=child,
        )

        self.cluster_name = self.cluster.name
        self.cluster_arn = self.cluster.arn
        self.capacity_provider_name = self.capacity_provider.name
        self.auto_scaling_group_name = self.auto_scaling_group.name
        self.auto_scaling_group_arn = self.auto_scaling_group.arn
        self.launch_template_id = self.launch_template.id
        self.instance_role_arn = role.arn
        self.instance_security_group_id = security_group.id
        self.image_id = image_id
        self.register_outputs(
            {
                "cluster_name": self.cluster_name,
                "cluster_arn": self.cluster_arn,
                "capacity_provider_name": self.capacity_provider_name,
                "auto_scaling_group_name": self.auto_scaling_group_name,
                "launch_template_id": self.launch_template_id,
                "instance_role_arn": self.instance_role_arn,
                "instance_security_group_id": self.instance_security_group_id,
            }
        )

    # -- children -----------------------------------------------------------------------------
    def _ami_from_ssm(self, parameter_name: str) -> pulumi.Output[str]:
        """The AMI id in a (public) SSM parameter, read at each deployment. The provider marks
        the invoke result secret; an AMI id is public, and a secret would hide AMI changes (and
        the instance refresh they trigger) from `pulumi preview`."""
        result = aws.ssm.get_parameter_output(
            name=parameter_name, opts=pulumi.InvokeOutputOptions(parent=self)
        )
        return pulumi.Output.unsecret(result.insecure_value)

    def _instance_role(
        self, name: str, tags: dict[str, str], child: pulumi.ResourceOptions
    ) -> aws.iam.Role:
        """Container-instance role: exactly the ECS instance and SSM core managed policies."""
        role = aws.iam.Role(
            f"{name}-instance-role",
            description="ECS GPU container instances: register with ECS, pull images, SSM",
            assume_role_policy=assume_role_policy("ec2.amazonaws.com"),
            tags=tags,
            opts=child,
        )
        partition = aws.get_partition_output(opts=pulumi.InvokeOutputOptions(parent=self)).partition
        for policy in INSTANCE_MANAGED_POLICIES:
            short = "ecs" if "ContainerService" in policy else "ssm"
            aws.iam.RolePolicyAttachment(
                f"{name}-instance-{short}-policy",
                role=role.name,
                policy_arn=partition.apply(
                    lambda p, policy=policy: f"arn:{p}:iam::aws:policy/{policy}"
                ),
                opts=child,
            )
        if self.args.gpu_metrics:
            aws.iam.RolePolicy(
                f"{name}-instance-gpu-metrics",
                role=role.id,
                policy=json.dumps(
                    {"Version": "2012-10-17", "Statement": instance_role_statements()}
                ),
                opts=child,
            )
        return role

    def _instance_security_group(
        self,
        name: str,
        args: GpuEc2ClusterArgs,
        tags: dict[str, str],
        child: pulumi.ResourceOptions,
    ) -> aws.ec2.SecurityGroup:
        """No ingress at all: awsvpc tasks have their own ENIs and security groups, and
        operators use Session Manager. Egress is HTTPS only (ECR, ECS, SSM, S3, logs)."""
        return aws.ec2.SecurityGroup(
            f"{name}-instance-sg",
            description="ECS GPU container instances: no ingress, HTTPS egress to AWS APIs",
            vpc_id=args.vpc_id,
            ingress=[],
            egress=[
                aws.ec2.SecurityGroupEgressArgs(
                    description="HTTPS to ECR, ECS, SSM, S3 and CloudWatch endpoints",
                    protocol="tcp",
                    from_port=443,
                    to_port=443,
                    cidr_blocks=list(args.egress_cidrs),
                )
            ],
            tags={**tags, "Name": f"{name}-instances"},
            opts=child,
        )

    def _auto_scaling_group(
        self,
        name: str,
        args: GpuEc2ClusterArgs,
        tags: dict[str, str],
        child: pulumi.ResourceOptions,
    ) -> aws.autoscaling.Group:
        """The ASG that the capacity provider scales; ECS owns its desired capacity."""
        refresh = None
        if args.instance_refresh:
            refresh = aws.autoscaling.GroupInstanceRefreshArgs(
                strategy="Rolling",
                preferences=aws.autoscaling.GroupInstanceRefreshPreferencesArgs(
                    min_healthy_percentage=args.instance_refresh_min_healthy_percentage,
                    max_healthy_percentage=args.instance_refresh_max_healthy_percentage,
                    instance_warmup=str(args.instance_warmup_period),
                    # Instances running tasks are scale-in protected. With managed draining
                    # ECS moves their tasks first, so replace them; without it, wait for ECS
                    # to unprotect them rather than kill tasks.
                    scale_in_protected_instances="Refresh" if args.managed_draining else "Wait",
                ),
            )
        template = aws.autoscaling.GroupLaunchTemplateArgs(
            id=self.launch_template.id, version=self.launch_template.latest_version.apply(str)
        )
        asg_tags = [
            aws.autoscaling.GroupTagArgs(
                key="AmazonECSManaged", value="true", propagate_at_launch=True
            ),
            *(
                aws.autoscaling.GroupTagArgs(key=key, value=value, propagate_at_launch=True)
                for key, value in tags.items()
            ),
        ]
        return aws.autoscaling.Group(
            f"{name}-asg",
            vpc_zone_identifiers=args.subnet_ids,
            min_size=args.min_size,
            max_size=args.max_size,
            launch_template=None if args.spot else template,
            mixed_instances_policy=(
                mixed_instances_policy(
                    args.market, args.instance_type, template.id, template.version
                )
                if args.spot
                else None
            ),
            # Required by managed termination protection: ECS unprotects idle instances.
            protect_from_scale_in=True,
            health_check_type="EC2",
            health_check_grace_period=0,
            capacity_rebalance=args.spot,
            default_instance_warmup=args.instance_warmup_period,
            instance_refresh=refresh,
            # Scale-in protected instances never terminate on their own: without force_delete
            # `pulumi destroy` would wait on them forever.
            force_delete=True,
            tags=asg_tags,
            opts=pulumi.ResourceOptions.merge(
                child,
                pulumi.ResourceOptions(
                    # ECS owns the desired capacity; with off-hours the schedule owns minSize
                    ignore_changes=["desiredCapacity"]
                    + (["minSize"] if args.off_hours is not None else [])
                ),
            ),
        )

    # -- running services on it ---------------------------------------------------------------
    def task_size(
        self, gpu_count: int = 1, cpu: int | None = None, memory: int | None = None
    ) -> GpuTaskSize:
        """Task-level cpu/memory/GPUs validated against this cluster's instance type."""
        return gpu_task_size(
            self.args.sizing_instance_type,
            gpu_count=gpu_count,
            cpu=cpu,
            memory=memory,
            reserved_memory_mib=self.args.reserved_memory_mib,
        )

    def gpu_placement(
        self, gpu_count: int = 1, cpu: int | None = None, memory: int | None = None
    ) -> Placement:
        """How the shared inference service runs here: EC2 compatibility, this cluster's
        capacity provider (not a launch type), ``gpu_count`` GPUs for the app container, CUDA
        environment and one task per instance (``distinctInstance``: a GPU is not shared, and a
        rollout gets fresh instances from the capacity provider)."""
        size = self.task_size(gpu_count=gpu_count, cpu=cpu, memory=memory)
        # Reading the provider name through ClusterCapacityProviders makes every service that
        # uses it wait until the provider is attached to the cluster (ECS refuses it before).
        provider = pulumi.Output.all(
            self.capacity_provider.name, self.cluster_capacity_providers.id
        ).apply(lambda values: values[0])
        return Placement(
            requires_compatibilities=("EC2",),
            capacity_provider_strategies=(
                aws.ecs.ServiceCapacityProviderStrategyArgs(
                    capacity_provider=provider, weight=1, base=0
                ),
            ),
            task_cpu=str(size.cpu),
            task_memory=str(size.memory),
            resource_requirements=({"type": "GPU", "value": str(size.gpu_count)},),
            environment={"NVIDIA_DRIVER_CAPABILITIES": "all", "EXECUTION_PROVIDER": "cuda"},
            placement_constraints=(
                aws.ecs.ServicePlacementConstraintArgs(type="distinctInstance"),
            ),
        )

    def inference_service(
        self,
        name: str,
        args: GpuInferenceServiceArgs,
        opts: pulumi.ResourceOptions | None = None,
    ) -> InferenceService:
        """Run the inference service on this cluster through ``components.ecs_service`` (the
        same container, load balancer, autoscaling and notifications as on Fargate). Task
        sizes and counts that could never be placed here are refused before anything is built.
        """
        placement = self.gpu_placement(
            gpu_count=args.gpu_count, cpu=args.task_cpu, memory=args.task_memory
        )
        self._check_fits(name, args.settings)
        service_args = InferenceServiceArgs(
            cluster_arn=self.cluster_arn,
            cluster_name=self.cluster_name,
            network=args.network,
            image=args.image,
            placement=placement,
            model_store=args.model_store,
            log_router=args.log_router,
            settings=args.settings,
            tags={**self.args.tags, **args.tags},
            before_deploy=args.before_deploy,
        )
        return InferenceService(
            name,
            service_args,
            opts=pulumi.ResourceOptions.merge(pulumi.ResourceOptions(parent=self), opts),
        )

    def _check_fits(self, name: str, settings: ServiceSettings) -> None:
        """With one task per instance, the task count is bounded by the group's max_size."""
        scaling = settings.autoscaling
        most = max(scaling.max_count if scaling else 0, settings.desired_count)
        if most > self.args.max_size:
            raise ValueError(
                f"service {name!r} may run {most} tasks but distinctInstance places one per "
                f"instance and max_size is {self.args.max_size}; raise max_size to at least "
                f"{most} (2x for rollouts without waiting)"
            )
        if 2 * most > self.args.max_size:
            pulumi.log.warn(
                f"{name}: max_size {self.args.max_size} < 2 x {most} tasks; deployments at full "
                "scale replace tasks a few at a time instead of all at once",
                resource=self,
            )
