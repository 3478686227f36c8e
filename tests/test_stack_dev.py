"""Run ``__main__.py`` with ``Pulumi.dev.yaml`` (and variants) under mocks.

A broken stack file, a config key the program does not know or a wiring mistake between the
components fails here, without a cloud.
"""

from __future__ import annotations

import json
import runpy
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pulumi
import pytest
import yaml

from components.gpu.cluster import GpuEc2ClusterArgs
from components.stack_config import StackConfig, config_rows, unknown_keys
from tests import pulumi_mocks
from tests.ecs_schema import assert_valid_container_definitions
from tests.pulumi_mocks import ACCOUNT, RecordingMocks, run

ROOT = Path(__file__).resolve().parents[1]
PROJECT = yaml.safe_load((ROOT / "Pulumi.yaml").read_text())["name"]
DEV = yaml.safe_load((ROOT / "Pulumi.dev.yaml").read_text())["config"]
NAME = "onnx-test"  # onnx-<stack>; the mocks' stack is "test"
VPC_CIDR = "10.42.0.0/16"
AWSX_OUTPUTS: dict[str, dict[str, Any]] = {
    "awsx:ec2:Vpc": {
        "vpcId": "vpc-new",
    },
    "awsx:ecr:Repository": {"url": f"{ACCOUNT}.dkr.ecr.us-east-1.amazonaws.com/repo"},
}


REAL_ARNS = {
    "aws:iam/role:Role": f"arn:aws:iam::{ACCOUNT}:role/{{name}}",
    "aws:ecs/cluster:Cluster": f"arn:aws:ecs:us-east-1:{ACCOUNT}:cluster/{{name}}",
}


@pytest.fixture(scope="module", autouse=True)
def _mock_fixes() -> Iterator[None]:
    """awsx components, opaque under mocks, get the outputs their real implementation computes;
    aws.ec2.getVpc answers a CIDR; roles and clusters get ARNs of AWS's shape, launch templates
    a version."""
    mocks = pulumi_mocks.MOCKS
    original_new = mocks.new_resource
    original_call = mocks.call

    def new_resource(args: pulumi.runtime.MockResourceArgs) -> tuple[str, dict]:
        resource_id, outputs = original_new(args)
        if args.typ in REAL_ARNS:  # ScheduledRunTask checks ARN shapes when they resolve
            outputs["arn"] = REAL_ARNS[args.typ].format(name=outputs.get("name") or args.name)
        if args.typ == "aws:ec2/launchTemplate:LaunchTemplate":
            outputs.setdefault("latestVersion", 1)
        if not args.typ.startswith("awsx:"):
            return resource_id, outputs
        # awsx outputs are typed resources (NatGateway, LifecyclePolicy, ...): echoed inputs
        # would not deserialize, so answer only the outputs the program reads.
        if args.typ == "awsx:ecr:Image":
            image = f"{ACCOUNT}.dkr.ecr.us-east-1.amazonaws.com/{args.name}@sha256:0"
            return resource_id, {"imageUri": image}
        outputs = dict(AWSX_OUTPUTS.get(args.typ, {}))
        if args.typ == "awsx:ec2:Vpc":  # one private and one public subnet per AZ
            zones = range(1, int(args.inputs.get("numberOfAvailabilityZones", 2)) + 1)
            outputs["privateSubnetIds"] = [f"subnet-p{i}" for i in zones]
            outputs["publicSubnetIds"] = [f"subnet-u{i}" for i in zones]
        return resource_id, outputs

    def call(args: pulumi.runtime.MockCallArgs) -> Any:
        if args.token == "aws:ec2/getVpc:getVpc":
            mocks.calls.append((args.token, dict(args.args)))
            return {"id": args.args["id"], "cidrBlock": VPC_CIDR, "arn": "arn:vpc"}
        return original_call(args)

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(mocks, "new_resource", new_resource)
        patch.setattr(mocks, "call", call)
        yield


def as_pulumi_config(config: dict[str, Any]) -> dict[str, str]:
    """Stack-file values as the engine hands them to programs: strings, objects as JSON."""
    return {k: v if isinstance(v, str) else json.dumps(v) for k, v in config.items()}


def run_stack(
    config: dict[str, Any], overrides: dict[str, Any] | None = None
) -> tuple[RecordingMocks, dict[str, Any]]:
    """Run __main__.py with ``config`` (+ ``<project>:key`` overrides); return mocks, exports."""
    merged = dict(config)
    merged.update({f"{PROJECT}:{k}": v for k, v in (overrides or {}).items()})
    pulumi.runtime.set_all_config(as_pulumi_config(merged))
    exports: dict[str, Any] = {}

    def export(name: str, value: Any) -> None:
        pulumi.Output.from_input(value).apply(lambda v: exports.__setitem__(name, v))

    def program() -> None:
        with pytest.MonkeyPatch.context() as patch:
            patch.setattr(pulumi, "export", export)
            runpy.run_path(str(ROOT / "__main__.py"), run_name="__main__")

    try:
        return run(program), exports
    finally:
        pulumi.runtime.set_all_config({})


def containers(mocks: RecordingMocks) -> dict[str, dict]:
    task = mocks.one("aws:ecs/taskDefinition:TaskDefinition", f"{NAME}-taskdef")
    return {c["name"]: c for c in json.loads(task.inputs["containerDefinitions"])}


# -- the dev stack as committed ------------------------------------------------------------
def test_dev_stack_file_uses_only_known_keys() -> None:
    assert unknown_keys(DEV, PROJECT) == []
    assert any(k.startswith(f"{PROJECT}:") for k in DEV)


def test_dev_stack_creates_vpc_with_one_nat_gateway() -> None:
    mocks, _ = run_stack(DEV)
    vpc = mocks.one("awsx:ec2:Vpc").inputs
    assert vpc["natGateways"] == {"strategy": "Single"}
    assert vpc["numberOfAvailabilityZones"] == 2
    assert vpc["cidrBlock"] == "10.0.0.0/16"
    assert sorted((s["type"], s["cidrMask"]) for s in vpc["subnetSpecs"]) == [
        ("Private", 20),
        ("Public", 24),
    ]
    assert vpc["enableDnsHostnames"] is True
    # tasks, EFS and the internal ALB live in the new VPC's private subnets
    svc = mocks.one("aws:ecs/service:Service").inputs
    assert svc["networkConfiguration"]["subnets"] == ["subnet-p1", "subnet-p2"]
    mounts = mocks.of_type("aws:efs/mountTarget:MountTarget")
    assert sorted(m.inputs["subnetId"] for m in mounts) == ["subnet-p1", "subnet-p2"]
    alb = mocks.one("aws:lb/loadBalancer:LoadBalancer").inputs
    assert alb["internal"] is True
    assert alb["subnets"] == ["subnet-p1", "subnet-p2"]


def test_dev_stack_builds_and_pushes_both_images_to_scanned_immutable_ecr() -> None:
    mocks, _ = run_stack(DEV)
    repos = mocks.of_type("awsx:ecr:Repository")
    assert sorted(r.name for r in repos) == [f"{NAME}-log-router-repo", f"{NAME}-service-repo"]
    for repo in repos:
        assert repo.inputs["imageScanningConfiguration"] == {"scanOnPush": True}
        assert repo.inputs["imageTagMutability"] == "IMMUTABLE"
        rules = repo.inputs["lifecyclePolicy"]["rules"]
        assert {r["tagStatus"] for r in rules} == {"untagged", "any"}
    images = {i.name: i.inputs for i in mocks.of_type("awsx:ecr:Image")}
    service = images[f"{NAME}-service-image"]
    assert (service["dockerfile"], service["context"]) == ("service/Dockerfile", ".")
    router = images[f"{NAME}-log-router-image"]
    assert (router["dockerfile"], router["context"]) == ("log_router/Dockerfile", "log_router")
    assert (ROOT / router["dockerfile"]).is_file()
    assert {i["platform"] for i in images.values()} == {"linux/amd64"}
    defs = containers(mocks)
    assert defs["app"]["image"].endswith(f"/{NAME}-service-image@sha256:0")
    assert defs["log-router"]["image"].endswith(f"/{NAME}-log-router-image@sha256:0")


def test_dev_stack_applies_its_config() -> None:
    mocks, _ = run_stack(DEV)
    svc = mocks.one("aws:ecs/service:Service").inputs
    assert svc["desiredCount"] == DEV[f"{PROJECT}:desiredCount"]
    target = mocks.one("aws:appautoscaling/target:Target").inputs
    assert (target["minCapacity"], target["maxCapacity"]) == (
        DEV[f"{PROJECT}:minCount"],
        DEV[f"{PROJECT}:maxCount"],
    )
    env = {e["name"]: e["value"] for e in containers(mocks)["app"]["environment"]}
    assert env["LOG_LEVEL"] == DEV[f"{PROJECT}:logLevel"]
    backup = mocks.one("aws:efs/backupPolicy:BackupPolicy").inputs
    assert backup["backupPolicy"]["status"] == "DISABLED"
    retention = {
        g.name: g.inputs["retentionInDays"]
        for g in mocks.of_type("aws:cloudwatch/logGroup:LogGroup")
    }
    assert retention[f"{NAME}-logs-router-logs"] == DEV[f"{PROJECT}:routerLogRetentionDays"]
    task = mocks.one("aws:ecs/taskDefinition:TaskDefinition", f"{NAME}-taskdef").inputs
    assert task["tags"]["environment"] == "dev"
    assert task["tags"]["stack"] == "test"
    assert (task["cpu"], task["memory"]) == ("2048", "4096")
    assert mocks.one("aws:ecs/cluster:Cluster").inputs["settings"] == [
        {"name": "containerInsights", "value": "enabled"}
    ]
    assert_valid_container_definitions(list(containers(mocks).values()))


def test_dev_stack_exports_what_operators_and_one_off_tasks_need() -> None:
    mocks, exports = run_stack(DEV)
    assert exports["url"] == f"http://{NAME}-alb.elb.amazonaws.com"
    assert exports["clusterName"] == f"{NAME}-cluster"
    assert exports["serviceName"] == f"{NAME}-service"
    assert exports["fileSystemId"] == mocks.one("aws:efs/fileSystem:FileSystem").name + "-id"
    assert exports["errorLogGroupName"] == f"/ecs/{PROJECT}/test/{NAME}-logs/errors"
    assert exports["routerLogGroupName"] == f"/ecs/{PROJECT}/test/{NAME}-logs/log-router"
    assert exports["alarmTopicArn"].endswith(f":{NAME}-notify-topic")
    assert exports["taskDefinitionArn"].endswith(f"task-definition/{NAME}-taskdef:1")
    assert exports["privateSubnetIds"] == ["subnet-p1", "subnet-p2"]
    assert exports["taskSecurityGroupId"] == f"{NAME}-task-sg-id"
    assert json.loads(exports["runTaskNetworkConfiguration"]) == {
        "awsvpcConfiguration": {
            "subnets": ["subnet-p1", "subnet-p2"],
            "securityGroups": [f"{NAME}-task-sg-id"],
            "assignPublicIp": "DISABLED",
        }
    }
    for key in (
        "clusterArn",
        "taskRoleArn",
        "executionRoleArn",
        "vpcId",
        "accessPointId",
        "logArchiveBucketName",
        "taskDefinitionFamily",
        "serviceImage",
        "loadBalancerDns",
    ):
        assert exports[key], key


# -- variants a user reaches with a few keys --------------------------------------------------
def test_prebuilt_images_build_nothing() -> None:
    service = f"{ACCOUNT}.dkr.ecr.us-east-1.amazonaws.com/onnx:4f2a9c1"
    router = f"{ACCOUNT}.dkr.ecr.us-east-1.amazonaws.com/router:4f2a9c1"
    mocks, exports = run_stack(DEV, {"serviceImage": service, "logRouterImage": router})
    assert mocks.of_type("awsx:ecr:Repository") == []
    assert mocks.of_type("awsx:ecr:Image") == []
    defs = containers(mocks)
    assert (defs["app"]["image"], defs["log-router"]["image"]) == (service, router)
    assert exports["serviceImage"] == service


def test_existing_vpc_creates_no_vpc_and_admits_its_cidr() -> None:
    mocks, _ = run_stack(
        DEV,
        {"vpcId": "vpc-existing", "privateSubnetIds": ["subnet-a", "subnet-b", "subnet-c"]},
    )
    assert mocks.of_type("awsx:ec2:Vpc") == []
    assert ("aws:ec2/getVpc:getVpc", {"id": "vpc-existing"}) in [
        (t, {"id": a.get("id")}) for t, a in mocks.calls
    ]
    assert len(mocks.of_type("aws:efs/mountTarget:MountTarget")) == 3
    alb_in = [
        r.inputs
        for r in mocks.of_type("aws:vpc/securityGroupIngressRule:SecurityGroupIngressRule")
        if r.name.startswith(f"{NAME}-alb-in-")
    ]
    assert [r["cidrIpv4"] for r in alb_in] == [VPC_CIDR]
    assert mocks.one("aws:lb/targetGroup:TargetGroup").inputs["vpcId"] == "vpc-existing"


def test_three_zones_get_three_mount_targets_and_subnets() -> None:
    mocks, exports = run_stack(DEV, {"availabilityZones": 3})
    assert mocks.one("awsx:ec2:Vpc").inputs["numberOfAvailabilityZones"] == 3
    assert len(mocks.of_type("aws:efs/mountTarget:MountTarget")) == 3
    assert exports["privateSubnetIds"] == ["subnet-p1", "subnet-p2", "subnet-p3"]


def test_smaller_new_vpc_gets_smaller_subnets() -> None:
    mocks, _ = run_stack(DEV, {"vpcCidrBlock": "10.1.0.0/20"})
    vpc = mocks.one("awsx:ec2:Vpc").inputs
    assert vpc["cidrBlock"] == "10.1.0.0/20"
    assert sorted(s["cidrMask"] for s in vpc["subnetSpecs"]) == [24, 28]
    alb_in = mocks.one(
        "aws:vpc/securityGroupIngressRule:SecurityGroupIngressRule", f"{NAME}-alb-in-80"
    )
    assert alb_in.inputs["cidrIpv4"] == "10.1.0.0/20"


def test_scaling_on_cpu_only_and_fixed_count() -> None:
    mocks, _ = run_stack(DEV, {"requestsPerTarget": 0})
    policies = [p.name for p in mocks.of_type("aws:appautoscaling/policy:Policy")]
    assert policies == [f"{NAME}-scale-cpu"]
    mocks, _ = run_stack(DEV, {"autoscaling": False, "desiredCount": 4})
    assert mocks.of_type("aws:appautoscaling/target:Target") == []
    assert mocks.one("aws:ecs/service:Service").inputs["desiredCount"] == 4


def test_load_balancer_idle_timeout_and_deletion_protection() -> None:
    mocks, _ = run_stack(DEV, {"idleTimeoutSeconds": 300, "loadBalancerDeletionProtection": True})
    alb = mocks.one("aws:lb/loadBalancer:LoadBalancer").inputs
    assert (alb["idleTimeout"], alb["enableDeletionProtection"]) == (300, True)


def test_public_https_stack() -> None:
    cert = f"arn:aws:acm:us-east-1:{ACCOUNT}:certificate/abc"
    mocks, exports = run_stack(DEV, {"publicLoadBalancer": True, "certificateArn": cert})
    alb = mocks.one("aws:lb/loadBalancer:LoadBalancer").inputs
    assert alb["internal"] is False
    assert alb["subnets"] == ["subnet-u1", "subnet-u2"]
    assert exports["url"].startswith("https://")
    assert mocks.one("aws:lb/listener:Listener", f"{NAME}-https").inputs["certificateArn"] == cert


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        ({"cpu": 1024, "memory": 1024}, "valid memory values for cpu 1024: 2048, 3072"),
        ({"vpcId": "vpc-1"}, "needs privateSubnetIds in at least two AZs"),
        ({"privateSubnetIds": ["subnet-a", "subnet-b"]}, "only used together with vpcId"),
        (
            {"vpcId": "vpc-1", "privateSubnetIds": ["a", "b"], "publicLoadBalancer": True},
            "publicSubnetIds",
        ),
        ({"natGateways": "Two"}, "natGateways 'Two'"),
        ({"availabilityZones": 1}, "availabilityZones 1"),
        ({"cpuArchitecture": "arm"}, "cpu architecture 'arm'"),
        ({"stopTimeoutSeconds": 20}, "longer than the graceful shutdown"),
        ({"desiredCount": 5}, "desired count 5 is outside"),
        ({"tags": ["a"]}, "config tags: expected a dict"),
        ({"vpcCidrBlock": "10.0.0.0/24"}, "use a /16 to /20 range"),
        ({"vpcCidrBlock": "10.0.0.0/33"}, "vpcCidrBlock '10.0.0.0/33'"),
        ({"capacity": "tpu"}, "capacity 'tpu': use one of ('fargate', 'gpu')"),
        ({"capacity": "gpu", "cluster": "shared"}, "works only with capacity fargate"),
        ({"capacity": "gpu", "cpuArchitecture": "ARM64"}, "GPU instances are x86_64"),
        ({"capacity": "gpu", "gpuInstanceType": "t3.micro"}, "instance_type 't3.micro'"),
        ({"capacity": "gpu", "gpuCount": 2}, "gpu_count 2 exceeds the 1 GPU(s) of g6.xlarge"),
        ({"capacity": "gpu", "gpuMaxSize": 1}, "raise gpuMaxSize to at least 2"),
        ({"capacity": "gpu", "gpuMinSize": 5}, "min_size 5 must be <= max_size 4"),
        ({"capacity": "gpu", "gpuTargetCapacity": 0}, "target_capacity must be an integer"),
        ({"modelSyncSource": "models/prod"}, "'models/prod' is not an S3 URL"),
        ({"modelSyncSource": "s3://b/prod"}, "bucket 'b' is not a valid S3 bucket name"),
        ({"modelSyncSource": "s3://my-models/p", "modelSyncKeep": -1}, "model sync keep -1"),
        ({"modelSyncSource": "s3://my-models/p", "modelSyncMemory": 512}, "cpu 1024: 2048"),
        ({"modelSyncSource": "s3://my-models/p", "modelSyncTimezone": "Nowhere"}, "Nowhere"),
        ({"modelSyncSource": "s3://my-models/p", "modelSyncSchedule": "daily"}, "'daily'"),
    ],
)
def test_bad_config_fails_before_any_resource(overrides: dict[str, Any], message: str) -> None:
    with pytest.raises(ValueError) as err:
        run_stack(DEV, overrides)
    assert message in str(err.value)
    assert pulumi_mocks.MOCKS.resources == []


# -- the Fargate vCPU quota guard ------------------------------------------------------------
QUOTA_TOKEN = "aws:servicequotas/getServiceQuota:getServiceQuota"


@contextmanager
def fargate_quota(vcpu: float) -> Iterator[None]:
    """Answer the Service Quotas invoke with ``vcpu`` (the mocks' default is roomy)."""
    mocks = pulumi_mocks.MOCKS
    original = mocks.call

    def call(args: pulumi.runtime.MockCallArgs) -> Any:
        answer = original(args)
        if args.token != QUOTA_TOKEN:
            return answer
        result, deps = answer
        return {**result, "value": vcpu}, deps

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(mocks, "call", call)
        yield


def test_quota_guard_reads_the_on_demand_and_spot_quotas_for_service_and_sync() -> None:
    """dev: service tasks above minCount partly on FARGATE_SPOT, the sync on FARGATE_SPOT; the
    two are separate quotas (L-3032A538 On-Demand, L-36FBB829 Spot)."""
    mocks, _ = run_stack(DEV, {"modelSyncSource": "s3://my-models/dev"})
    reads = [args for token, args in mocks.calls if token == QUOTA_TOKEN]
    assert [(a["serviceCode"], a["quotaCode"]) for a in reads] == [
        ("fargate", "L-3032A538"),
        ("fargate", "L-36FBB829"),
    ]


def test_small_quota_fails_the_dev_stack_before_any_resource() -> None:
    # On-Demand only: maxCount 2 x 200 % during a deployment = 4 tasks x 2 vCPU + the sync
    # job's 1 vCPU = 9 vCPU > 8
    on_demand = {
        "modelSyncSource": "s3://my-models/dev",
        "modelSyncCapacity": "FARGATE",
        "fargateSpotWeight": 0,
    }
    with fargate_quota(8), pytest.raises(ValueError) as err:
        run_stack(DEV, on_demand)
    message = str(err.value)
    assert "Fargate vCPU quota check failed" in message
    assert f"{NAME} service (x200% during deployments): 4 x 2 vCPU = 8" in message
    assert f"{NAME} model sync: 1 x 1 vCPU = 1" in message
    assert "--quota-code L-3032A538 --desired-value 12" in message
    assert pulumi_mocks.MOCKS.resources == []
    with fargate_quota(9):  # exactly enough: passes (with a warning)
        mocks, _ = run_stack(DEV, on_demand)
    assert mocks.of_type("aws:ecs/service:Service")


def test_quota_guard_skip_reads_no_quota() -> None:
    with fargate_quota(0):
        mocks, _ = run_stack(DEV, {"quotaGuardSkip": True})
    assert not [c for c in mocks.calls if c[0] == QUOTA_TOKEN]
    assert mocks.of_type("aws:ecs/service:Service")


def test_fargate_demands() -> None:
    """Service: max tasks x maximumPercent 200 (a rolling deployment runs old and new tasks
    side by side: ECS Developer Guide, "Deploy Amazon ECS services by replacing tasks",
    maximumPercent); with Spot, each quota gets its worst case."""
    cfg = StackConfig(max_count=6, cpu=4096, memory=8192, model_sync_source="s3://my-models/x")
    label = "s service (x200% during deployments)"
    assert [(d.name, d.capacity, d.max_tasks, d.vcpu) for d in cfg.fargate_demands("s")] == [
        (label, "FARGATE", 12, 4.0),
        ("s model sync", "FARGATE_SPOT", 1, 1.0),
    ]
    # every stack has a model sync job (the demo bucket's, without modelSyncSource)
    fixed = StackConfig(autoscaling=False, desired_count=4)
    assert [(d.max_tasks, d.vcpu) for d in fixed.fargate_demands("s")] == [(8, 2.0), (1, 1.0)]
    spot = StackConfig(min_count=2, max_count=6, fargate_spot_weight=3)
    # 12 tasks during a rollout: base 2 On-Demand, 10 above split 1:3 -> <= 3 On-Demand, <= 8 Spot
    assert [(d.capacity, d.max_tasks) for d in spot.fargate_demands("s")][:2] == [
        ("FARGATE", 5),
        ("FARGATE_SPOT", 8),
    ]
    gpu = StackConfig(capacity="gpu")
    # GPU instances count against EC2 quotas; the Fargate sync task does not
    assert [d.name for d in gpu.fargate_demands("s")] == ["s model sync"]


# -- capacity gpu and the model sync on the dev stack ----------------------------------------
def test_dev_stack_with_a_model_sync_on_fargate() -> None:
    mocks, exports = run_stack(
        DEV,
        {
            "modelSyncSource": "s3://my-models/dev",
            "modelSyncSchedule": "rate(6 hours)",
            "modelSyncTimezone": "Asia/Tokyo",
            "modelSyncKeep": 5,
            "modelSyncCpu": 2048,
            "modelSyncMemory": 8192,
        },
    )
    sync = mocks.one("aws:ecs/taskDefinition:TaskDefinition", f"{NAME}-model-sync-taskdef")
    assert (sync.inputs["cpu"], sync.inputs["memory"]) == ("2048", "8192")
    container = json.loads(sync.inputs["containerDefinitions"])[0]
    env = {e["name"]: e["value"] for e in container["environment"]}
    assert (env["SYNC_SOURCE"], env["SYNC_KEEP"]) == ("s3://my-models/dev", "5")
    schedule = mocks.one("aws:scheduler/schedule:Schedule").inputs
    assert (schedule["scheduleExpression"], schedule["scheduleExpressionTimezone"]) == (
        "rate(6 hours)",
        "Asia/Tokyo",
    )
    definition = mocks.one("aws:sfn/stateMachine:StateMachine").inputs["definition"]
    assert exports["clusterArn"] == f"arn:aws:ecs:us-east-1:{ACCOUNT}:cluster/{NAME}-cluster"
    assert exports["clusterArn"] in definition
    # no e-mail configured in dev: topics without subscriptions
    assert mocks.of_type("aws:sns/topicSubscription:TopicSubscription") == []
    for key in ("modelSyncTaskDefinitionArn", "modelSyncStateMachineArn", "modelSyncAlarmTopicArn"):
        assert exports[key], key


def test_dev_stack_on_gpu_capacity() -> None:
    mocks, exports = run_stack(DEV, {"capacity": "gpu", "gpuInstanceType": "g5.2xlarge"})
    assert mocks.one("aws:ec2/launchTemplate:LaunchTemplate").inputs["instanceType"] == (
        "g5.2xlarge"
    )
    service = mocks.one("aws:ecs/service:Service").inputs
    assert "launchType" not in service
    assert service["capacityProviderStrategies"][0]["capacityProvider"] == (
        f"{NAME}-gpu-capacity-provider"
    )
    assert exports["clusterName"] == f"{NAME}-gpu-cluster"
    images = {i.inputs["platform"] for i in mocks.of_type("awsx:ecr:Image")}
    assert images == {"linux/amd64"}


def test_keys_the_chosen_capacity_does_not_use_are_warned_about() -> None:
    fargate = StackConfig()
    assert fargate.ignored_key_warnings(["gpuCount", "gpuMaxSize", "desiredCount"]) == [
        "gpuCount, gpuMaxSize ignored: capacity is fargate (set capacity: gpu to run on GPU "
        "instances)"
    ]
    gpu = StackConfig(capacity="gpu")
    (warning,) = gpu.ignored_key_warnings(["cpu", "memory", "gpuCount"])
    assert warning.startswith("cpu, memory ignored: Fargate task sizes")
    (warning,) = fargate.ignored_key_warnings(["modelSyncKeep", "modelSyncSchedule"])
    assert "modelSyncSchedule ignored: modelSyncSource is not set" in warning
    assert "demo bucket" in warning
    synced = StackConfig(model_sync_source="s3://my-models/x")
    assert synced.ignored_key_warnings(["modelSyncSource", "modelSyncKeep"]) == []


def test_ignored_keys_reach_the_preview_as_warnings(monkeypatch: pytest.MonkeyPatch) -> None:
    warnings: list[str] = []
    monkeypatch.setattr(pulumi.log, "warn", lambda msg, *a, **k: warnings.append(msg))
    run_stack(DEV, {"gpuCount": 1})
    assert [w for w in warnings if "gpuCount ignored" in w]


# -- config documentation ----------------------------------------------------------------------
def test_every_config_key_is_documented_with_its_default() -> None:
    docs = (ROOT / "README.md").read_text()
    for key, description, default in config_rows():
        row = f"| `{key}` | {description} | {default} |"
        assert row in docs, f"README.md lacks the row: {row}"


def test_defaults_without_any_config() -> None:
    cfg = StackConfig()
    cfg.validate()
    assert (cfg.cpu, cfg.memory, cfg.desired_count) == (2048, 4096, 3)  # seed 000
    assert cfg.nat_gateways == "OnePerAz"
    assert cfg.public_load_balancer is False
    assert cfg.capacity == "fargate"
    assert cfg.model_sync_settings() is None
    assert cfg.quota_guard_skip is False


def test_gpu_keys_map_onto_the_gpu_cluster_with_its_defaults() -> None:
    defaults = StackConfig(capacity="gpu").gpu_cluster_args("vpc-1", ["subnet-a"])
    reference = GpuEc2ClusterArgs(vpc_id="vpc-1", subnet_ids=["subnet-a"])
    assert defaults == reference
    cfg = StackConfig(
        capacity="gpu",
        gpu_instance_type="g6e.2xlarge",
        gpu_min_size=1,
        gpu_max_size=8,
        gpu_spot=True,
        gpu_ami_id="ami-0abc",
        gpu_root_volume_gib=200,
        gpu_target_capacity=80,
        container_insights="enhanced",
    )
    args = cfg.gpu_cluster_args("vpc-1", ["subnet-a"], {"team": "ml"})
    assert (args.instance_type, args.min_size, args.max_size, args.spot) == (
        "g6e.2xlarge",
        1,
        8,
        True,
    )
    assert (args.ami_id, args.root_volume_size_gib, args.target_capacity) == ("ami-0abc", 200, 80)
    assert (args.container_insights, args.tags) == ("enhanced", {"team": "ml"})
    assert args.on_demand_base_capacity == 2  # with Spot: the service's minCount is On-Demand


def test_model_sync_keys_map_onto_the_job_settings() -> None:
    cfg = StackConfig(
        model_sync_source="s3://my-models/prod",
        model_sync_kms_key_arn="arn:aws:kms:us-east-1:123456789012:key/k",
        cpu_architecture="ARM64",
    )
    sync = cfg.model_sync_settings()
    assert sync is not None
    assert (sync.source, sync.schedule_expression, sync.schedule_timezone) == (
        "s3://my-models/prod",
        "cron(0 3 * * ? *)",
        "UTC",
    )
    assert (sync.keep, sync.cpu, sync.memory, sync.capacity) == (3, 1024, 4096, "FARGATE_SPOT")
    assert sync.architecture == "ARM64"  # the service image's architecture
    assert sync.source_kms_key_arn == "arn:aws:kms:us-east-1:123456789012:key/k"


def test_project_file_runs_python_in_the_repo_venv() -> None:
    project = yaml.safe_load((ROOT / "Pulumi.yaml").read_text())
    assert project["runtime"]["name"] == "python"
    assert project["runtime"]["options"]["virtualenv"] == ".venv"
    assert PROJECT == "onnx-ecs-serving"  # the project the mocks (and config keys) use
    # only the Pulumi program's packages, not the service runtime (tests/test_requirements.py)
    requirements = (ROOT / "requirements.txt").read_text()
    assert "pulumi-aws" in requirements and "-e" not in requirements.split()


def test_public_load_balancer_is_tagged_for_the_policy_pack() -> None:
    from tests.policy.harness import check_recorded, mandatory

    mocks, _ = run_stack(DEV, {"publicLoadBalancer": True})
    alb_sg = next(
        r
        for r in mocks.of_type("aws:ec2/securityGroup:SecurityGroup")
        if r.name.endswith("-alb-sg")
    )
    assert alb_sg.inputs["tags"]["onnx-ecs:role"] == "public-alb"
    task_sg = next(
        r
        for r in mocks.of_type("aws:ec2/securityGroup:SecurityGroup")
        if r.name.endswith("-task-sg")
    )
    assert "onnx-ecs:role" not in task_sg.inputs.get("tags", {})
    allowed = {"lb-internal": {"allowPublicLoadBalancers": True}}
    assert mandatory(check_recorded(mocks.resources, allowed)) == []
    assert mandatory(check_recorded(mocks.resources)), "a public ALB must need the stack's consent"
