"""Pulumi program: read the stack config, compose the components, export what operators need.

Everything configurable is in ``components/stack_config.py`` (documented in
docs/infrastructure.md); everything built is in ``components/``.
"""

from __future__ import annotations

import json

import pulumi
import pulumi_aws as aws
import pulumi_awsx as awsx

from components.demo_model_source import DemoModelSource, DemoModelSourceArgs
from components.ecs_service import InferenceService, Network
from components.efs_model_store import EfsModelStore, EfsModelStoreArgs
from components.fargate_service import FargateInferenceService, FargateInferenceServiceArgs
from components.gpu.cluster import GpuEc2Cluster, GpuInferenceServiceArgs
from components.images import ImageSpec, image_uri, service_image_spec
from components.log_router import LogRouter, LogRouterArgs
from components.model_publish import ModelPublish, ModelPublishArgs
from components.model_sync_job import CONTAINER_NAME as SYNC_CONTAINER
from components.model_sync_job import ModelSyncJob, ModelSyncJobArgs
from components.monitoring import ServiceMonitoring, ServiceMonitoringArgs
from components.quota_guard import check_fargate_quotas, check_gpu_quotas
from components.smoke_probe import SmokeProbe, SmokeProbeArgs
from components.stack_config import StackConfig


def network(cfg: StackConfig, name: str, tags: dict[str, str]) -> tuple[Network, list]:
    """The given VPC, or a new one: private subnets (tasks, EFS, ALB) behind NAT, public subnets
    for NAT gateways and an optional public ALB. Also the resources a task's egress waits for."""
    if cfg.vpc_id:
        cidr = cfg.vpc_cidr_block or aws.ec2.get_vpc_output(id=cfg.vpc_id).cidr_block
        return Network(
            vpc_id=cfg.vpc_id,
            vpc_cidr_block=cidr,
            private_subnet_ids=cfg.private_subnet_ids,
            public_subnet_ids=cfg.public_subnet_ids or None,
        ), []
    cidr = cfg.new_vpc_cidr
    private_mask, public_mask = cfg.new_vpc_subnet_masks()
    vpc = awsx.ec2.Vpc(
        f"{name}-vpc",
        cidr_block=cidr,
        number_of_availability_zones=cfg.availability_zones,
        nat_gateways=awsx.ec2.NatGatewayConfigurationArgs(strategy=cfg.nat_gateways),
        subnet_strategy=awsx.ec2.SubnetAllocationStrategy.AUTO,
        subnet_specs=[
            awsx.ec2.SubnetSpecArgs(type=awsx.ec2.SubnetType.PRIVATE, cidr_mask=private_mask),
            awsx.ec2.SubnetSpecArgs(type=awsx.ec2.SubnetType.PUBLIC, cidr_mask=public_mask),
        ],
        enable_dns_hostnames=True,  # EFS mount targets are reached by DNS name
        enable_dns_support=True,
        tags=tags,
    )
    return Network(
        vpc_id=vpc.vpc_id,
        vpc_cidr_block=cidr,
        private_subnet_ids=vpc.private_subnet_ids,
        public_subnet_ids=vpc.public_subnet_ids,
    ), [vpc]  # NAT routes: the publish task reaches S3 and ECR through them


cfg = StackConfig.from_config()
stack = pulumi.get_stack()
name = f"onnx-{stack}"
tags = {"project": pulumi.get_project(), "stack": stack, **cfg.tags}
# Before anything is created: can the stack scale out within the account's Fargate vCPU quotas?
check_fargate_quotas(cfg.fargate_demands(name), skip=cfg.quota_guard_skip)
# ... and the GPU group within the EC2 G and VT On-Demand and Spot vCPU quotas?
check_gpu_quotas(cfg.gpu_demands(name), skip=cfg.quota_guard_skip)

net, net_resources = network(cfg, name, tags)
# Fargate runs the lean CPU image; GPU instances the one with the CUDA/cuDNN wheels.
ort_variant = "cuda" if cfg.capacity == "gpu" else "cpu"
service_image = image_uri(
    name,
    service_image_spec("service", ort_variant, cfg.service_image),
    platform=cfg.image_platform,
    tags=tags,
)
# The model sync and the smoke probe run on Fargate: in a GPU stack they get the CPU image too,
# not the CUDA wheels.
fargate_image = service_image
if ort_variant != "cpu":
    fargate_image = image_uri(
        name,
        service_image_spec("model-sync", "cpu", cfg.service_image),
        platform=cfg.image_platform,
        tags=tags,
    )
router_image = image_uri(
    name,
    ImageSpec(
        "log-router",
        dockerfile="log_router/Dockerfile",
        context="log_router",
        prebuilt=cfg.log_router_image,
    ),
    platform=cfg.image_platform,
    tags=tags,
)
models = EfsModelStore(
    f"{name}-models",
    EfsModelStoreArgs(
        vpc_id=net.vpc_id,
        subnet_ids=net.private_subnet_ids,
        # awsx's subnet ids are an Output: say how many mount targets to create
        subnet_count=len(cfg.private_subnet_ids) if cfg.vpc_id else cfg.availability_zones,
        backup=cfg.efs_backup,
        tags=tags,
    ),
)
logs = LogRouter(
    f"{name}-logs",
    LogRouterArgs(
        image=router_image,
        router_log_retention_days=cfg.router_log_retention_days,
        error_log_retention_days=cfg.error_log_retention_days,
        archive_transition_days=cfg.archive_transition_days,
        archive_expiration_days=cfg.archive_expiration_days,
        metrics_log_retention_days=cfg.metrics_log_retention_days,
        tags=tags,
    ),
)
# Models before the first deployment: a stack without modelSyncSource gets its own bucket with
# the demo model; either way the sync task runs once during `pulumi up` and the service waits.
demo_source: DemoModelSource | None = None
if cfg.model_sync_source is None:
    demo_source = DemoModelSource(
        f"{name}-model-source",
        DemoModelSourceArgs(
            account=aws.get_caller_identity().account_id, region=aws.get_region().region, tags=tags
        ),
    )
sync_settings = cfg.model_sync_settings(demo_source.url if demo_source else None)
assert sync_settings is not None
jobs: dict[str, ModelSyncJob] = {}


def publish_models(cluster_arn: pulumi.Output[str]) -> list[pulumi.Resource]:
    """The model sync job and its deploy-time run; called by the service before it deploys."""
    # Its own alert topic (same e-mail): the service's topic policy admits only the service's
    # event rules, and its KMS key is not an output.
    sync = ModelSyncJob(
        f"{name}-model-sync",
        ModelSyncJobArgs(
            cluster_arn=cluster_arn,
            vpc_id=net.vpc_id,
            subnet_ids=net.private_subnet_ids,
            image=fargate_image,
            model_store=models,
            log_router=logs,
            settings=sync_settings,
            alarm_email=cfg.notification_email,
            tags=tags,
        ),
    )
    jobs["sync"] = sync
    waits_for: list[pulumi.Resource] = [models, sync, *net_resources]
    if demo_source is not None:
        waits_for.append(demo_source)
    publish = ModelPublish(
        f"{name}-model-publish",
        ModelPublishArgs(
            cluster=cluster_arn,
            task_definition=sync.task_definition_arn,
            subnets=net.private_subnet_ids,
            security_groups=[sync.security_group_id],
            container=SYNC_CONTAINER,
            region=aws.get_region_output().region,
            image=fargate_image,
            source=sync_settings.source,
            source_version=demo_source.sha256 if demo_source else "",
            timeout_seconds=cfg.model_publish_timeout,
        ),
        opts=pulumi.ResourceOptions(depends_on=waits_for),
    )
    pulumi.export("modelPublishTaskArn", publish.task_arn)
    return [publish]


service: FargateInferenceService | InferenceService
if cfg.capacity == "gpu":
    gpu = GpuEc2Cluster(
        f"{name}-gpu", cfg.gpu_cluster_args(net.vpc_id, net.private_subnet_ids, tags)
    )
    service = gpu.inference_service(
        name,
        GpuInferenceServiceArgs(
            network=net,
            image=service_image,
            model_store=models,
            log_router=logs,
            gpu_count=cfg.gpu_count,
            settings=cfg.service_settings(),
            tags=tags,
            before_deploy=publish_models,
        ),
    )
    # Not "capacityProviderName": `ops run-task --stack-outputs` would then send every one-off
    # task (the Fargate model sync too) to the GPU instances.
    pulumi.export("gpuCapacityProviderName", gpu.capacity_provider_name)
    pulumi.export("gpuAutoScalingGroupName", gpu.auto_scaling_group_name)
else:
    service = FargateInferenceService(
        name,
        FargateInferenceServiceArgs(
            network=net,
            image=service_image,
            model_store=models,
            log_router=logs,
            cpu=cfg.cpu,
            memory=cfg.memory,
            architecture=cfg.cpu_architecture,
            cluster=cfg.cluster,
            container_insights=cfg.container_insights,
            spot=cfg.fargate_spot(),
            settings=cfg.service_settings(),
            tags=tags,
            before_deploy=publish_models,
        ),
    )

# Dashboard and alarms on the service's own metrics (EMF through the log router) and, on GPU
# stacks, the GPU instances' (CloudWatch agent).
monitoring = ServiceMonitoring(
    f"{name}-monitoring",
    ServiceMonitoringArgs(
        service_name=service.metrics_service_name,
        cluster_name=service.cluster_name,
        ecs_service_name=service.service_name,
        load_balancer_arn_suffix=service.load_balancer_arn_suffix,
        target_group_arn_suffix=service.target_group_arn_suffix,
        alarm_topic_arn=service.alarm_topic_arn,
        gpu_auto_scaling_group_name=gpu.auto_scaling_group_name if cfg.capacity == "gpu" else None,
        concurrency_target=cfg.effective_concurrency_per_task if cfg.autoscaling else None,
        thresholds=cfg.alarm_thresholds(),
        tags=tags,
        # An existing cluster (cfg.cluster) is assumed to have it (docs/observability.md).
        container_insights=cfg.cluster is not None or cfg.container_insights != "disabled",
    ),
)
pulumi.export("dashboardName", monitoring.dashboard_name)
if (off_hours := cfg.off_hours()) is not None:  # read by `ops smoke` when it finds no task
    pulumi.export("offHours", off_hours.describe())
pulumi.export("metricsLogGroupName", logs.metrics_log_group_name)

# What `python -m ops smoke` runs inside the VPC (the load balancer is internal).
smoke = SmokeProbe(
    f"{name}-smoke",
    SmokeProbeArgs(
        vpc_id=net.vpc_id,
        vpc_cidr_block=net.vpc_cidr_block,
        image=fargate_image,
        url=service.url,
        listener_ports=cfg.service_settings().load_balancer.listener_ports,
        public_load_balancer=cfg.public_load_balancer,
        model_store=models,
        architecture=cfg.cpu_architecture,
        tags=tags,
    ),
)
pulumi.export("smokeTaskDefinitionArn", smoke.task_definition_arn)
pulumi.export("smokeSecurityGroupId", smoke.security_group_id)
pulumi.export("smokeLogGroupName", smoke.log_group_name)
sync = jobs["sync"]
pulumi.export("modelSyncSource", sync_settings.source)
pulumi.export("modelSyncTaskDefinitionArn", sync.task_definition_arn)
pulumi.export("modelSyncStateMachineArn", sync.state_machine_arn)
pulumi.export("modelSyncScheduleArn", sync.schedule_arn)
pulumi.export("modelSyncSecurityGroupId", sync.security_group_id)
pulumi.export("modelSyncAlarmTopicArn", sync.alarm_topic_arn)
pulumi.export("modelSyncImage", fargate_image)
if demo_source is not None:
    pulumi.export("modelBucketName", demo_source.bucket_name)
pulumi.export("deploymentAlarmNames", service.deployment_alarm_names)

pulumi.export("url", service.url)
pulumi.export("loadBalancerDns", service.load_balancer_dns)
pulumi.export("clusterName", service.cluster_name)
pulumi.export("clusterArn", service.cluster_arn)
pulumi.export("serviceName", service.service_name)
pulumi.export("taskDefinitionArn", service.task_definition_arn)
pulumi.export("taskDefinitionFamily", service.task_definition_family)
pulumi.export("taskRoleArn", service.task_role_arn)
pulumi.export("executionRoleArn", service.execution_role_arn)
pulumi.export("taskSecurityGroupId", service.task_security_group_id)
pulumi.export("vpcId", net.vpc_id)
pulumi.export("privateSubnetIds", net.private_subnet_ids)
pulumi.export("fileSystemId", models.file_system_id)
pulumi.export("accessPointId", models.access_point_id)
pulumi.export("errorLogGroupName", logs.error_log_group_name)
pulumi.export("routerLogGroupName", logs.router_log_group_name)
pulumi.export("logArchiveBucketName", logs.archive_bucket_name)
pulumi.export("alarmTopicArn", service.alarm_topic_arn)
pulumi.export("serviceImage", service_image)
# For one-off tasks: aws ecs run-task --network-configuration "$(pulumi stack output ...)"
pulumi.export(
    "runTaskNetworkConfiguration",
    pulumi.Output.all(net.private_subnet_ids, service.task_security_group_id).apply(
        lambda v: json.dumps(
            {
                "awsvpcConfiguration": {
                    "subnets": list(v[0]),
                    "securityGroups": [v[1]],
                    "assignPublicIp": "DISABLED",
                }
            }
        )
    ),
)
