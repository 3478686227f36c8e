"""GpuEc2Cluster under Pulumi mocks: assert on exactly what would be sent to AWS."""

from __future__ import annotations

import asyncio
import base64
import dataclasses
import json
from collections.abc import Callable, Iterator
from typing import Any

import pulumi
import pulumi_aws as aws
import pytest
from pulumi.runtime import rpc

from components.ecs_service import Autoscaling, Network, ServiceSettings
from components.efs_model_store import EfsModelStore, EfsModelStoreArgs
from components.gpu import cluster as gpu_module
from components.gpu.cluster import (
    DEFAULT_GPU_AMI_PARAMETER,
    GpuEc2Cluster,
    GpuEc2ClusterArgs,
    GpuInferenceServiceArgs,
)
from components.gpu.instance_types import gpu_task_size, instance_shape, schedulable_memory_mib
from components.gpu.user_data import ecs_agent_config
from components.log_router import LogRouter, LogRouterArgs
from tests import pulumi_mocks
from tests.components.helpers import container_definitions, containers
from tests.ecs_schema import assert_valid_container_definitions
from tests.pulumi_mocks import ACCOUNT, Recorded, RecordingMocks, run

SUBNETS = ["subnet-a", "subnet-b"]
LT = "aws:ec2/launchTemplate:LaunchTemplate"
ASG = "aws:autoscaling/group:Group"
CP = "aws:ecs/capacityProvider:CapacityProvider"
CCP = "aws:ecs/clusterCapacityProviders:ClusterCapacityProviders"
CLUSTER = "aws:ecs/cluster:Cluster"
ATTACH = "aws:iam/rolePolicyAttachment:RolePolicyAttachment"
SSM_CALL = "aws:ssm/getParameter:getParameter"
SETTINGS_FIELDS = {f.name for f in dataclasses.fields(ServiceSettings)}


# -- fixtures -------------------------------------------------------------------------------------
@pytest.fixture(scope="module", autouse=True)
def _launch_template_version() -> Iterator[None]:
    """The shared mocks echo inputs as outputs; give launch templates the ``latestVersion`` AWS
    computes (this module only)."""
    mocks = pulumi_mocks.MOCKS
    original_new = mocks.new_resource

    def new_resource(args: pulumi.runtime.MockResourceArgs) -> tuple[str, dict]:
        resource_id, outputs = original_new(args)
        if args.typ == LT:
            outputs.setdefault("latestVersion", 3)
        return resource_id, outputs

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(mocks, "new_resource", new_resource)
        yield


class FakeModelStore:
    """Stands in for EfsModelStore (the ModelStore protocol of components.ecs_service)."""

    def __init__(self) -> None:
        self.security_group_id = pulumi.Output.from_input("sg-efs")
        self.allowed: list[str] = []

    def allow_from(self, name: str, security_group_id: pulumi.Input[str]) -> pulumi.Resource:
        self.allowed.append(name)
        return aws.vpc.SecurityGroupIngressRule(
            f"{name}-nfs",
            security_group_id="sg-efs",
            referenced_security_group_id=security_group_id,
            ip_protocol="tcp",
            from_port=2049,
            to_port=2049,
        )

    def volume(self, name: str = "models") -> aws.ecs.TaskDefinitionVolumeArgs:
        return aws.ecs.TaskDefinitionVolumeArgs(
            name=name,
            efs_volume_configuration=aws.ecs.TaskDefinitionVolumeEfsVolumeConfigurationArgs(
                file_system_id="fs-0123",
                transit_encryption="ENABLED",
                authorization_config=aws.ecs.TaskDefinitionVolumeEfsVolumeConfigurationAuthorizationConfigArgs(
                    access_point_id="fsap-0123", iam="ENABLED"
                ),
            ),
        )

    def mount_point(
        self, container_path: str, read_only: bool = True, volume_name: str = "models"
    ) -> dict:
        return {"sourceVolume": volume_name, "containerPath": container_path, "readOnly": read_only}

    def task_role_statement(self, write: bool = False) -> pulumi.Output[dict]:
        return pulumi.Output.from_input(
            {"Effect": "Allow", "Action": ["elasticfilesystem:ClientMount"], "Resource": "fs"}
        )


class FakeLogRouter:
    """Stands in for LogRouter (the LogRouterLike protocol of components.ecs_service)."""

    container_name = "log-router"

    def __init__(self) -> None:
        self.router_log_group_name = pulumi.Output.from_input("/ecs/log-router")

    def container_definition(self) -> pulumi.Output[dict]:
        return pulumi.Output.from_input(
            {
                "name": "log-router",
                "image": f"{ACCOUNT}.dkr.ecr.us-east-1.amazonaws.com/log-router:1",
                "essential": True,
                "firelensConfiguration": {"type": "fluentbit"},
            }
        )

    def app_log_configuration(self) -> dict:
        return {"logDriver": "awsfirelens", "options": {"Name": "null"}}

    def task_role_statements(self) -> list[pulumi.Output[dict]]:
        return [
            pulumi.Output.from_input(
                {"Effect": "Allow", "Action": ["logs:PutLogEvents"], "Resource": "arn:logs"}
            )
        ]


def cluster(**overrides: Any) -> Callable[[], GpuEc2Cluster]:
    """A program building one GpuEc2Cluster with test defaults plus ``overrides``."""

    def program() -> GpuEc2Cluster:
        args = GpuEc2ClusterArgs(vpc_id="vpc-1", subnet_ids=SUBNETS, **overrides)
        return GpuEc2Cluster("infer", args)

    return program


def with_service(
    cluster_overrides: dict[str, Any] | None = None, **service_options: Any
) -> Callable[[], Any]:
    """A program building the cluster and the inference service on it."""

    def program() -> Any:
        gpu = cluster(**(cluster_overrides or {}))()
        settings = ServiceSettings(
            **{k: v for k, v in service_options.items() if k in SETTINGS_FIELDS}
        )
        args = GpuInferenceServiceArgs(
            network=Network(
                vpc_id="vpc-1", vpc_cidr_block="10.0.0.0/16", private_subnet_ids=SUBNETS
            ),
            image=f"{ACCOUNT}.dkr.ecr.us-east-1.amazonaws.com/inference:1",
            model_store=FakeModelStore(),
            log_router=FakeLogRouter(),
            settings=settings,
            **{k: v for k, v in service_options.items() if k not in SETTINGS_FIELDS},
        )
        return gpu.inference_service("infer-svc", args)

    return program


@pytest.fixture(scope="module")
def default_cluster() -> RecordingMocks:
    mocks = run(cluster())
    # Keep a snapshot: `run` clears the shared recorder for the next test.
    snapshot = RecordingMocks(resources=list(mocks.resources), calls=list(mocks.calls))
    return snapshot


@pytest.fixture(scope="module")
def gpu_service() -> RecordingMocks:
    mocks = run(with_service(gpu_count=1))
    return RecordingMocks(resources=list(mocks.resources), calls=list(mocks.calls))


def physical_name(recorded: Recorded) -> str:
    """The name AWS would see: the explicit one, else (under mocks) the logical name."""
    return recorded.inputs.get("name", recorded.name)


def user_data_lines(mocks: RecordingMocks) -> list[str]:
    encoded = mocks.one(LT).inputs["userData"]
    return base64.b64decode(encoded).decode().splitlines()


# -- launch template ------------------------------------------------------------------------------
def test_user_data_joins_cluster_and_enables_gpu(default_cluster: RecordingMocks) -> None:
    lines = user_data_lines(default_cluster)
    cluster_name = physical_name(default_cluster.one(CLUSTER))
    assert lines[0] == "#!/bin/bash"
    assert "cat >> /etc/ecs/ecs.config <<'EOF'" in lines
    body = lines[lines.index("cat >> /etc/ecs/ecs.config <<'EOF'") + 1 : lines.index("EOF")]
    assert body == [
        f"ECS_CLUSTER={cluster_name}",
        "ECS_ENABLE_GPU_SUPPORT=true",
        "ECS_ENABLE_TASK_IAM_ROLE=true",
        "ECS_AWSVPC_BLOCK_IMDS=true",
        "ECS_ENABLE_CONTAINER_METADATA=true",
        "ECS_RESERVED_MEMORY=256",
        "ECS_CONTAINER_INSTANCE_PROPAGATE_TAGS_FROM=ec2_instance",
    ]


def test_spot_adds_draining_and_a_mixed_instances_policy() -> None:
    """Spot is bought by the group's mixed instances policy, never by the launch template
    (components/gpu/spot.py; the full policy is asserted in test_gpu_spot.py)."""
    mocks = run(cluster(spot=True, spot_instance_types=["g5.xlarge"]))
    assert "ECS_ENABLE_SPOT_INSTANCE_DRAINING=true" in user_data_lines(mocks)
    assert "instanceMarketOptions" not in mocks.one(LT).inputs
    group = mocks.one(ASG).inputs
    assert group["capacityRebalance"] is True
    assert "launchTemplate" not in group and "mixedInstancesPolicy" in group


def test_on_demand_has_no_spot_settings(default_cluster: RecordingMocks) -> None:
    assert not any("SPOT" in line for line in user_data_lines(default_cluster))
    assert "instanceMarketOptions" not in default_cluster.one(LT).inputs
    assert default_cluster.one(ASG).inputs["capacityRebalance"] is False


def test_launch_template_requires_imdsv2_with_hop_limit_one(
    default_cluster: RecordingMocks,
) -> None:
    assert default_cluster.one(LT).inputs["metadataOptions"] == {
        "httpEndpoint": "enabled",
        "httpTokens": "required",
        "httpPutResponseHopLimit": 1,
        "instanceMetadataTags": "disabled",
    }


def test_root_volume_is_encrypted_gp3(default_cluster: RecordingMocks) -> None:
    (mapping,) = default_cluster.one(LT).inputs["blockDeviceMappings"]
    assert mapping["deviceName"] == "/dev/xvda"
    assert mapping["ebs"] == {
        "volumeSize": 100,
        "volumeType": "gp3",
        "encrypted": "true",
        "deleteOnTermination": "true",
    }


def test_root_volume_size_and_kms_key_are_configurable() -> None:
    mocks = run(cluster(root_volume_size_gib=250, root_volume_kms_key_id="arn:aws:kms:k"))
    ebs = mocks.one(LT).inputs["blockDeviceMappings"][0]["ebs"]
    assert (ebs["volumeSize"], ebs["kmsKeyId"], ebs["encrypted"]) == (250, "arn:aws:kms:k", "true")


def test_no_public_ip_and_only_the_instance_security_group(
    default_cluster: RecordingMocks,
) -> None:
    (nic,) = default_cluster.one(LT).inputs["networkInterfaces"]
    sg = default_cluster.one("aws:ec2/securityGroup:SecurityGroup", "infer-instance-sg")
    assert nic["associatePublicIpAddress"] == "false"
    assert nic["securityGroups"] == [f"{sg.name}-id"]
    assert sg.inputs["vpcId"] == "vpc-1"
    assert "vpcSecurityGroupIds" not in default_cluster.one(LT).inputs


def test_default_ami_comes_from_the_public_ssm_parameter(default_cluster: RecordingMocks) -> None:
    ssm_names = [args["name"] for token, args in default_cluster.calls if token == SSM_CALL]
    assert ssm_names == [DEFAULT_GPU_AMI_PARAMETER]
    assert DEFAULT_GPU_AMI_PARAMETER.startswith(
        "/aws/service/ecs/optimized-ami/amazon-linux-2023/gpu"
    )
    assert default_cluster.one(LT).inputs["imageId"] == "ami-0123456789abcdef0"
    assert default_cluster.one(LT).inputs["instanceType"] == "g6.xlarge"


def test_ami_id_is_not_hidden_as_a_secret() -> None:
    """A new AMI must show up in `pulumi preview` (it triggers an instance refresh). The AWS
    provider marks getParameter's ``value`` secret; answer it that way here too."""
    found: dict[str, bool] = {}
    pending: list[asyncio.Future[None]] = []

    def program() -> None:
        mocks = pulumi_mocks.MOCKS
        secret = {rpc._special_sig_key: rpc._special_secret_sig, "value": "ami-0secret"}
        mocks.call_handlers[SSM_CALL] = lambda args: {
            "name": args["name"],
            "value": secret,
            "insecureValue": "ami-0123456789abcdef0",
            "type": "String",
        }
        gpu = cluster()()

        async def record() -> None:
            found["secret"] = await gpu.image_id.is_secret()

        pending.append(asyncio.ensure_future(record()))

    mocks = run(program)
    assert found == {"secret": False}
    assert mocks.one(LT).inputs["imageId"] == "ami-0123456789abcdef0"


def test_explicit_ami_skips_ssm() -> None:
    mocks = run(cluster(ami_id="ami-0fedcba9876543210"))
    assert mocks.one(LT).inputs["imageId"] == "ami-0fedcba9876543210"
    assert not [token for token, _ in mocks.calls if token == SSM_CALL]


def test_ami_parameter_name_is_overridable() -> None:
    name = "/aws/service/ecs/optimized-ami/amazon-linux-2/gpu/recommended/image_id"
    mocks = run(cluster(ami_parameter_name=name))
    assert [a["name"] for t, a in mocks.calls if t == SSM_CALL] == [name]


@pytest.mark.parametrize(
    ("instance_type", "message"),
    [
        ("t3.micro", "not an NVIDIA GPU instance family"),
        ("m5.large", "not an NVIDIA GPU instance family"),
        ("g5g.xlarge", "arm64"),
        ("g4ad.xlarge", "AMD"),
        ("inf2.xlarge", "Neuron"),
        ("g6", "not an EC2 instance type"),
    ],
)
def test_non_gpu_instance_types_are_refused(instance_type: str, message: str) -> None:
    with pytest.raises(ValueError, match=message) as raised:
        run(cluster(instance_type=instance_type))
    assert repr(instance_type) in str(raised.value)


@pytest.mark.parametrize(
    "instance_type", ["g4dn.xlarge", "g5.2xlarge", "g6e.xlarge", "p4d.24xlarge"]
)
def test_gpu_instance_types_are_accepted(instance_type: str) -> None:
    mocks = run(cluster(instance_type=instance_type))
    assert mocks.one(LT).inputs["instanceType"] == instance_type


# -- IAM and network ------------------------------------------------------------------------------
def test_instance_role_has_exactly_the_two_managed_policies(
    default_cluster: RecordingMocks,
) -> None:
    role = default_cluster.one("aws:iam/role:Role")
    trust = json.loads(role.inputs["assumeRolePolicy"])
    assert trust["Statement"][0]["Principal"] == {"Service": "ec2.amazonaws.com"}
    arns = sorted(a.inputs["policyArn"] for a in default_cluster.of_type(ATTACH))
    assert arns == [
        "arn:aws:iam::aws:policy/AmazonSSMManagedInstanceCore",
        "arn:aws:iam::aws:policy/service-role/AmazonEC2ContainerServiceforEC2Role",
    ]
    # Besides them, only the GPU metrics agent's (tests/components/test_gpu_metrics.py).
    (inline,) = default_cluster.of_type("aws:iam/rolePolicy:RolePolicy")
    assert inline.name == "infer-instance-gpu-metrics"
    profile = default_cluster.one("aws:iam/instanceProfile:InstanceProfile")
    assert profile.inputs["role"] == physical_name(role)


def test_instance_security_group_has_no_ingress_and_https_egress(
    default_cluster: RecordingMocks,
) -> None:
    sg = default_cluster.one("aws:ec2/securityGroup:SecurityGroup")
    assert sg.inputs["ingress"] == []
    (egress,) = sg.inputs["egress"]
    assert (egress["protocol"], egress["fromPort"], egress["toPort"]) == ("tcp", 443, 443)
    assert egress["cidrBlocks"] == ["0.0.0.0/0"]
    assert not default_cluster.of_type("aws:vpc/securityGroupIngressRule:SecurityGroupIngressRule")


# -- Auto Scaling group ---------------------------------------------------------------------------
def test_asg_is_managed_by_ecs(default_cluster: RecordingMocks) -> None:
    asg = default_cluster.one(ASG).inputs
    assert {"key": "AmazonECSManaged", "value": "true", "propagateAtLaunch": True} in asg["tags"]
    assert asg["protectFromScaleIn"] is True
    assert asg["forceDelete"] is True
    assert (asg["minSize"], asg["maxSize"]) == (0, 4)
    assert asg["vpcZoneIdentifiers"] == SUBNETS
    assert "desiredCapacity" not in asg
    lt_id = default_cluster.one(LT).name + "-id"
    assert asg["launchTemplate"] == {"id": lt_id, "version": "3"}


def test_asg_leaves_desired_capacity_to_the_capacity_provider(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    seen: dict[str, pulumi.ResourceOptions] = {}
    original = aws.autoscaling.Group

    def spy(name: str, *args: Any, opts: pulumi.ResourceOptions | None = None, **kw: Any) -> Any:
        seen[name] = opts
        return original(name, *args, opts=opts, **kw)

    monkeypatch.setattr(gpu_module.aws.autoscaling, "Group", spy)
    run(cluster())
    assert seen["infer-asg"].ignore_changes == ["desiredCapacity"]


def test_instance_refresh_rolls_protected_instances_and_is_optional() -> None:
    mocks = run(cluster())
    refresh = mocks.one(ASG).inputs["instanceRefresh"]
    assert refresh["strategy"] == "Rolling"
    assert refresh["preferences"]["scaleInProtectedInstances"] == "Refresh"
    assert refresh["preferences"]["minHealthyPercentage"] == 100
    mocks = run(cluster(managed_draining=False))
    refresh = mocks.one(ASG).inputs["instanceRefresh"]
    assert refresh["preferences"]["scaleInProtectedInstances"] == "Wait"
    provider = mocks.one(CP).inputs["autoScalingGroupProvider"]
    assert provider["managedDraining"] == "DISABLED"
    mocks = run(cluster(instance_refresh=False))
    assert "instanceRefresh" not in mocks.one(ASG).inputs


# -- capacity provider and cluster ----------------------------------------------------------------
def test_capacity_provider_managed_scaling_and_termination_protection(
    default_cluster: RecordingMocks,
) -> None:
    provider = default_cluster.one(CP).inputs["autoScalingGroupProvider"]
    asg_arn = f"arn:aws:autoscaling:us-east-1:{ACCOUNT}:infer-asg"
    assert provider["autoScalingGroupArn"] == asg_arn
    assert provider["managedTerminationProtection"] == "ENABLED"
    assert provider["managedDraining"] == "ENABLED"
    assert provider["managedScaling"] == {
        "status": "ENABLED",
        "targetCapacity": 100,
        "minimumScalingStepSize": 1,
        "maximumScalingStepSize": 10000,
        "instanceWarmupPeriod": 300,
    }


def test_scaling_settings_are_configurable() -> None:
    mocks = run(
        cluster(
            target_capacity=80,
            minimum_scaling_step_size=2,
            maximum_scaling_step_size=5,
            instance_warmup_period=600,
            min_size=1,
            max_size=6,
        )
    )
    scaling = mocks.one(CP).inputs["autoScalingGroupProvider"]["managedScaling"]
    assert (scaling["targetCapacity"], scaling["minimumScalingStepSize"]) == (80, 2)
    assert (scaling["maximumScalingStepSize"], scaling["instanceWarmupPeriod"]) == (5, 600)
    asg = mocks.one(ASG).inputs
    assert (asg["minSize"], asg["maxSize"]) == (1, 6)


def test_cluster_default_strategy_is_the_gpu_provider(default_cluster: RecordingMocks) -> None:
    attached = default_cluster.one(CCP).inputs
    cluster_res = default_cluster.one(CLUSTER)
    provider_name = physical_name(default_cluster.one(CP))
    assert attached["clusterName"] == physical_name(cluster_res)
    # FARGATE/FARGATE_SPOT associated too (the model sync runs on Fargate Spot in this cluster),
    # but the default strategy is the GPU provider only
    assert attached["capacityProviders"] == [provider_name, "FARGATE", "FARGATE_SPOT"]
    assert attached["defaultCapacityProviderStrategies"] == [
        {"capacityProvider": provider_name, "base": 0, "weight": 1}
    ]
    assert cluster_res.inputs["settings"] == [{"name": "containerInsights", "value": "enabled"}]


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        ({"target_capacity": 0}, "target_capacity"),
        ({"target_capacity": 101}, "target_capacity"),
        ({"minimum_scaling_step_size": 0}, "minimum_scaling_step_size"),
        ({"maximum_scaling_step_size": 10001}, "maximum_scaling_step_size"),
        ({"minimum_scaling_step_size": 5, "maximum_scaling_step_size": 2}, "must be <="),
        ({"min_size": 3, "max_size": 2}, "min_size 3 must be <= max_size 2"),
        ({"max_size": 0}, "max_size"),
        ({"container_insights": "on"}, "container_insights"),
        ({"root_volume_size_gib": 8}, "root_volume_size_gib"),
        ({"egress_cidrs": ()}, "egress_cidrs"),
        ({"cluster_name": "gpu cluster"}, "cluster_name"),
    ],
)
def test_invalid_settings_fail_before_any_resource(overrides: dict[str, Any], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        run(cluster(**overrides))


def test_explicit_cluster_name_reaches_cluster_and_user_data() -> None:
    mocks = run(cluster(cluster_name="gpu-serving"))
    assert mocks.one(CLUSTER).inputs["name"] == "gpu-serving"
    assert "ECS_CLUSTER=gpu-serving" in user_data_lines(mocks)


def test_reserved_capacity_provider_prefix_is_refused() -> None:
    def program() -> None:
        GpuEc2Cluster("ecs-gpu", GpuEc2ClusterArgs(vpc_id="vpc-1", subnet_ids=SUBNETS))

    with pytest.raises(ValueError, match="reserves"):
        run(program)


# -- task sizing ----------------------------------------------------------------------------------
def test_default_task_size_takes_the_instance_minus_headroom() -> None:
    shape = instance_shape("g6.xlarge")
    assert shape is not None and (shape.vcpus, shape.memory_gib, shape.gpus) == (4, 16, 1)
    size = gpu_task_size("g6.xlarge")
    assert size.cpu == 4 * 1024 - 256
    assert size.memory == schedulable_memory_mib(shape, 256)
    assert 14000 < size.memory < 16 * 1024 - 256


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"memory": 16384}, "does not fit on g6.xlarge"),
        ({"cpu": 8192}, "exceeds g6.xlarge's 4 vCPU"),
        ({"gpu_count": 2}, "exceeds the 1 GPU"),
        ({"gpu_count": 0}, "gpu_count must be an integer >= 1"),
    ],
)
def test_task_that_cannot_fit_is_refused(kwargs: dict[str, Any], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        gpu_task_size("g6.xlarge", **kwargs)


def test_unknown_size_of_supported_family_needs_explicit_task_size() -> None:
    with pytest.raises(ValueError, match="set task cpu and memory explicitly"):
        gpu_task_size("g6.96xlarge")
    assert gpu_task_size("g6.96xlarge", cpu=4096, memory=8192).memory == 8192


def test_agent_config_rejects_a_cluster_name_that_would_break_the_file() -> None:
    with pytest.raises(ValueError, match="not a valid cluster name"):
        ecs_agent_config("bad\nECS_CLUSTER=other")


# -- the inference service on GPU capacity --------------------------------------------------------
def test_gpu_task_definition(gpu_service: RecordingMocks) -> None:
    task_def = gpu_service.one("aws:ecs/taskDefinition:TaskDefinition").inputs
    assert task_def["requiresCompatibilities"] == ["EC2"]
    assert task_def["networkMode"] == "awsvpc"
    expected = gpu_task_size("g6.xlarge")
    assert (task_def["cpu"], task_def["memory"]) == (str(expected.cpu), str(expected.memory))
    (volume,) = task_def["volumes"]
    assert volume["efsVolumeConfiguration"]["transitEncryption"] == "ENABLED"


def test_gpu_container_definition(gpu_service: RecordingMocks) -> None:
    app = containers(gpu_service)["app"]
    assert app["resourceRequirements"] == [{"type": "GPU", "value": "1"}]
    env = {e["name"]: e["value"] for e in app["environment"]}
    assert env["NVIDIA_DRIVER_CAPABILITIES"] == "all"
    assert env["EXECUTION_PROVIDER"] == "cuda"
    assert app["portMappings"][0]["containerPort"] == 8000
    assert app["mountPoints"] == [
        {"sourceVolume": "models", "containerPath": "/models", "readOnly": True}
    ]
    assert app["logConfiguration"]["logDriver"] == "awsfirelens"
    assert [c["name"] for c in container_definitions(gpu_service)] == ["app", "log-router"]


def test_gpu_count_comes_from_args() -> None:
    mocks = run(with_service({"instance_type": "g5.12xlarge", "max_size": 8}, gpu_count=4))
    assert containers(mocks)["app"]["resourceRequirements"] == [{"type": "GPU", "value": "4"}]


def test_gpu_service_uses_the_capacity_provider_and_distinct_instances(
    gpu_service: RecordingMocks,
) -> None:
    service = gpu_service.one("aws:ecs/service:Service").inputs
    provider_name = physical_name(gpu_service.one(CP))
    assert "launchType" not in service
    assert service["capacityProviderStrategies"] == [
        {"capacityProvider": provider_name, "weight": 1, "base": 0}
    ]
    assert service["placementConstraints"] == [{"type": "distinctInstance"}]
    assert service["deploymentCircuitBreaker"] == {"enable": True, "rollback": True}
    assert service["networkConfiguration"]["assignPublicIp"] is False
    assert service["networkConfiguration"]["subnets"] == SUBNETS
    cluster_arn = f"arn:aws:ecs:us-east-1:{ACCOUNT}:infer-cluster"
    assert service["cluster"] == cluster_arn


def test_gpu_service_health_check_on_health(gpu_service: RecordingMocks) -> None:
    health = gpu_service.one("aws:lb/targetGroup:TargetGroup").inputs["healthCheck"]
    assert (health["path"], health["matcher"]) == ("/health", "200")
    assert (health["interval"], health["timeout"]) == (5, 2)


def test_gpu_containers_match_the_ecs_api_schema(gpu_service: RecordingMocks) -> None:
    assert_valid_container_definitions(container_definitions(gpu_service))


def test_services_wait_for_the_provider_to_be_attached() -> None:
    """ECS refuses a strategy naming a provider the cluster does not have yet."""
    found: dict[str, set[str]] = {}
    pending: list[asyncio.Future[None]] = []

    def program() -> None:
        gpu = cluster()()
        provider = gpu.gpu_placement().capacity_provider_strategies[0].capacity_provider

        async def record() -> None:
            found["deps"] = {r._name for r in await provider.resources()}

        pending.append(asyncio.ensure_future(record()))

    run(program)
    assert "infer-capacity-providers" in found["deps"]


def test_more_tasks_than_instances_is_refused() -> None:
    with pytest.raises(ValueError, match=r"may run 3 tasks .* max_size is 2"):
        run(with_service({"max_size": 2}, desired_count=3, autoscaling=None))
    with pytest.raises(ValueError, match=r"may run 6 tasks .* max_size is 4"):
        run(with_service(desired_count=1, autoscaling=Autoscaling(min_count=1, max_count=6)))


def test_service_task_size_is_validated_against_the_instance() -> None:
    with pytest.raises(ValueError, match=r"does not fit on g6\.xlarge"):
        run(with_service(task_memory=16384))


def test_gpu_service_with_the_real_model_store_and_log_router() -> None:
    """End to end with EfsModelStore and LogRouter instead of the fakes."""

    def program() -> None:
        gpu = cluster()()
        store = EfsModelStore("models", EfsModelStoreArgs(vpc_id="vpc-1", subnet_ids=SUBNETS))
        router = LogRouter(
            "logs",
            LogRouterArgs(image=f"{ACCOUNT}.dkr.ecr.us-east-1.amazonaws.com/log-router:1"),
        )
        gpu.inference_service(
            "infer-svc",
            GpuInferenceServiceArgs(
                network=Network(
                    vpc_id="vpc-1", vpc_cidr_block="10.0.0.0/16", private_subnet_ids=SUBNETS
                ),
                image=f"{ACCOUNT}.dkr.ecr.us-east-1.amazonaws.com/inference:1",
                model_store=store,
                log_router=router,
            ),
        )

    mocks = run(program)
    assert_valid_container_definitions(container_definitions(mocks))
    by_name = containers(mocks)
    assert by_name["app"]["resourceRequirements"] == [{"type": "GPU", "value": "1"}]
    assert set(by_name) == {"app", "log-router"}
    volume = mocks.one("aws:ecs/taskDefinition:TaskDefinition").inputs["volumes"][0]
    assert volume["efsVolumeConfiguration"]["transitEncryption"] == "ENABLED"
