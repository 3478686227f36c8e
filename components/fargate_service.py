"""``FargateInferenceService``: the inference service on Fargate (CPU).

A thin layer over :class:`components.ecs_service.InferenceService`: it validates the Fargate
cpu/memory pair, creates an ECS cluster with Container Insights unless one is given, and hands the
shared service a Fargate :class:`~components.ecs_service.Placement`.
"""

from __future__ import annotations

from collections.abc import Mapping
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
from components.fargate_capacity import FargateSpotSplit, fargate_cluster_capacity_providers
from components.fargate_sizes import validate_architecture, validate_fargate_size


def fargate_placement(
    cpu: int,
    memory: int,
    architecture: str = "X86_64",
    spot: FargateSpotSplit | None = None,
    attached: pulumi.Input[str] | None = None,
) -> Placement:
    """A validated Fargate placement: task-level size, Linux on the given CPU architecture.

    ``attached`` (the id of the cluster's FARGATE/FARGATE_SPOT association, for a cluster this
    stack creates) gives a capacity provider strategy, with or without Spot: turning Spot on or
    off is then a change of strategy, which ECS applies in place with a forced deployment.
    Without it (a cluster the stack does not own), the FARGATE launch type unless ``spot`` asks
    for FARGATE_SPOT."""
    validate_fargate_size(cpu, memory)
    validate_architecture(architecture)
    split = spot if spot is not None else FargateSpotSplit()
    use_strategy = split.uses_spot or attached is not None
    return Placement(
        requires_compatibilities=("FARGATE",),
        launch_type=None if use_strategy else "FARGATE",
        capacity_provider_strategies=tuple(split.strategies(attached)) if use_strategy else (),
        task_cpu=str(cpu),
        task_memory=str(memory),
        runtime_platform=aws.ecs.TaskDefinitionRuntimePlatformArgs(
            operating_system_family="LINUX", cpu_architecture=architecture
        ),
        # Fargate has no GPU: do not let "auto" probe for CUDA.
        environment={"EXECUTION_PROVIDER": "cpu"},
        platform_version="LATEST",
        max_stop_timeout_s=120,
    )


def cluster_name_from(cluster: str) -> str:
    """Accept an ECS cluster name or ARN (``arn:...:cluster/<name>``) and return the name."""
    if cluster.startswith("arn:"):
        if ":cluster/" not in cluster:
            raise ValueError(f"cluster {cluster!r} is not an ECS cluster ARN (…:cluster/<name>)")
        return cluster.rsplit(":cluster/", 1)[1]
    if not cluster:
        raise ValueError("cluster name must not be empty")
    return cluster


@dataclass
class FargateInferenceServiceArgs:
    """Inputs of the Fargate service. Default size 2 vCPU / 4 GiB (seed 000)."""

    network: Network
    image: pulumi.Input[str]
    model_store: ModelStore
    log_router: LogRouterLike
    cpu: int = 2048
    memory: int = 4096
    architecture: str = "X86_64"  # or ARM64 (Graviton; the image must be built for it)
    cluster: str | None = None  # existing cluster name or ARN; None creates one
    container_insights: str = "enabled"
    spot: FargateSpotSplit = field(default_factory=FargateSpotSplit)
    """Tasks above ``spot.on_demand_base`` on FARGATE_SPOT by weight (fargate_capacity.py)."""
    settings: ServiceSettings = field(default_factory=ServiceSettings)
    tags: Mapping[str, str] = field(default_factory=dict)
    before_deploy: BeforeDeploy | None = None  # see InferenceServiceArgs


class FargateInferenceService(pulumi.ComponentResource):
    """The inference service on Fargate behind an ALB, with autoscaling and notifications."""

    cluster_name: pulumi.Output[str]
    cluster_arn: pulumi.Output[str]
    service_name: pulumi.Output[str]
    service_arn: pulumi.Output[str]
    url: pulumi.Output[str]
    load_balancer_dns: pulumi.Output[str]
    alarm_topic_arn: pulumi.Output[str]
    load_balancer_arn_suffix: pulumi.Output[str]
    target_group_arn_suffix: pulumi.Output[str]
    metrics_service_name: str
    deployment_alarm_names: pulumi.Output[list[str]]
    task_definition_arn: pulumi.Output[str]
    task_definition_family: pulumi.Output[str]
    task_role_arn: pulumi.Output[str]
    execution_role_arn: pulumi.Output[str]
    task_security_group_id: pulumi.Output[str]
    subnet_ids: pulumi.Output[list[str]]

    def __init__(
        self,
        name: str,
        args: FargateInferenceServiceArgs,
        opts: pulumi.ResourceOptions | None = None,
    ) -> None:
        fargate_placement(args.cpu, args.memory, args.architecture)  # validate before registering
        settings = cluster_settings(args.container_insights)
        cluster_name = cluster_name_from(args.cluster) if args.cluster is not None else None
        super().__init__("onnx-ecs:index:FargateInferenceService", name, None, opts)
        child = pulumi.ResourceOptions(parent=self)
        tags = dict(args.tags)

        if cluster_name is None:
            cluster = aws.ecs.Cluster(
                f"{name}-cluster",
                settings=settings,
                tags=tags,
                opts=child,
            )
            cluster_arn: pulumi.Input[str] = cluster.arn
            cluster_name_out: pulumi.Input[str] = cluster.name
            # FARGATE_SPOT for the model sync and a Spot-weighted service
            attached: pulumi.Input[str] | None = fargate_cluster_capacity_providers(
                name, cluster.name, child
            ).id
        elif args.cluster and args.cluster.startswith("arn:"):
            cluster_arn, cluster_name_out = args.cluster, cluster_name
            attached = None
        else:
            attached = None
            invoke = pulumi.InvokeOutputOptions(parent=self)
            identity = aws.get_caller_identity_output(opts=invoke)
            region = aws.get_region_output(opts=invoke)
            partition = aws.get_partition_output(opts=invoke)
            cluster_arn = pulumi.Output.concat(
                "arn:",
                partition.partition,
                ":ecs:",
                region.region,
                ":",
                identity.account_id,
                ":cluster/",
                cluster_name,
            )
            cluster_name_out = cluster_name
        if cluster_name is not None and args.spot.uses_spot:
            pulumi.log.warn(
                f"{name}: cluster {cluster_name!r} is not created by this stack; ECS accepts the "
                "FARGATE_SPOT strategy only if the cluster has the FARGATE and FARGATE_SPOT "
                "capacity providers (aws ecs put-cluster-capacity-providers)",
                resource=self,
            )
        placement = fargate_placement(
            args.cpu, args.memory, args.architecture, spot=args.spot, attached=attached
        )

        service = InferenceService(
            name,
            InferenceServiceArgs(
                cluster_arn=cluster_arn,
                cluster_name=cluster_name_out,
                network=args.network,
                image=args.image,
                placement=placement,
                model_store=args.model_store,
                log_router=args.log_router,
                settings=args.settings,
                tags=tags,
                before_deploy=args.before_deploy,
            ),
            opts=child,
        )

        self.cluster_name = service.cluster_name
        self.cluster_arn = service.cluster_arn
        self.service_name = service.service_name
        self.service_arn = service.service_arn
        self.url = service.url
        self.load_balancer_dns = service.load_balancer_dns
        self.alarm_topic_arn = service.alarm_topic_arn
        self.load_balancer_arn_suffix = service.load_balancer_arn_suffix
        self.metrics_service_name = service.metrics_service_name
        self.target_group_arn_suffix = service.target_group_arn_suffix
        self.deployment_alarm_names = service.deployment_alarm_names
        self.task_definition_arn = service.task_definition_arn
        self.task_definition_family = service.task_definition_family
        self.task_role_arn = service.task_role_arn
        self.execution_role_arn = service.execution_role_arn
        self.task_security_group_id = service.task_security_group_id
        self.subnet_ids = service.subnet_ids
        self.register_outputs(
            {
                "cluster_name": self.cluster_name,
                "service_name": self.service_name,
                "url": self.url,
                "alarm_topic_arn": self.alarm_topic_arn,
                "task_definition_arn": self.task_definition_arn,
            }
        )
