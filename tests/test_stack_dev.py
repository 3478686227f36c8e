"""Run ``__main__.py`` with ``Pulumi.dev.yaml`` (and variants) under mocks.

A broken stack file, a config key the program does not know or a wiring mistake between the
components fails here, without a cloud.
"""

from __future__ import annotations

import json
import runpy
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pulumi
import pytest
import yaml

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


@pytest.fixture(scope="module", autouse=True)
def _mock_fixes() -> Iterator[None]:
    """awsx components, opaque under mocks, get the outputs their real implementation computes;
    aws.ec2.getVpc answers a CIDR."""
    mocks = pulumi_mocks.MOCKS
    original_new = mocks.new_resource
    original_call = mocks.call

    def new_resource(args: pulumi.runtime.MockResourceArgs) -> tuple[str, dict]:
        resource_id, outputs = original_new(args)
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
    task = mocks.one("aws:ecs/taskDefinition:TaskDefinition")
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
    task = mocks.one("aws:ecs/taskDefinition:TaskDefinition").inputs
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
    ],
)
def test_bad_config_fails_before_any_resource(overrides: dict[str, Any], message: str) -> None:
    with pytest.raises(ValueError) as err:
        run_stack(DEV, overrides)
    assert message in str(err.value)
    assert pulumi_mocks.MOCKS.resources == []


# -- config documentation ----------------------------------------------------------------------
def test_every_config_key_is_documented_with_its_default() -> None:
    docs = (ROOT / "docs" / "infrastructure.md").read_text()
    for key, description, default in config_rows():
        row = f"| `{key}` | {description} | {default} |"
        assert row in docs, f"docs/infrastructure.md lacks the row: {row}"


def test_defaults_without_any_config() -> None:
    cfg = StackConfig()
    cfg.validate()
    assert (cfg.cpu, cfg.memory, cfg.desired_count) == (2048, 4096, 3)  # seed 000
    assert cfg.nat_gateways == "OnePerAz"
    assert cfg.public_load_balancer is False


def test_project_file_runs_python_in_the_repo_venv() -> None:
    project = yaml.safe_load((ROOT / "Pulumi.yaml").read_text())
    assert project["runtime"]["name"] == "python"
    assert project["runtime"]["options"]["virtualenv"] == ".venv"
    assert PROJECT == "onnx-ecs-serving"  # the project the mocks (and config keys) use
    assert (ROOT / "requirements.txt").read_text().split() == ["-e", ".[infra]"]
