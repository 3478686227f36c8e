"""Run ``__main__.py`` with ``Pulumi.prod.yaml`` under mocks: GPU capacity, several tasks in three
AZs, the nightly model sync and e-mail alerts, wired as the stack file says."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
import yaml

from components.stack_config import unknown_keys
from tests.ecs_schema import assert_valid_container_definitions
from tests.pulumi_mocks import ACCOUNT, RecordingMocks
from tests.test_stack_dev import NAME, PROJECT, _mock_fixes, run_stack  # noqa: F401

ROOT = Path(__file__).resolve().parents[1]
PROD_TEXT = (ROOT / "Pulumi.prod.yaml").read_text()
PROD = yaml.safe_load(PROD_TEXT)["config"]
TASK_DEF = "aws:ecs/taskDefinition:TaskDefinition"
QUOTA_TOKEN = "aws:servicequotas/getServiceQuota:getServiceQuota"
SYNC = f"{NAME}-model-sync"
GPU = f"{NAME}-gpu"


def key(name: str) -> Any:
    return PROD[f"{PROJECT}:{name}"]


@pytest.fixture(scope="module")
def prod(_mock_fixes: None) -> tuple[RecordingMocks, dict[str, Any]]:  # noqa: F811
    """The prod stack, run once; a copy of what it recorded, for the read-only tests."""
    mocks, exports = run_stack(PROD)
    return RecordingMocks(resources=list(mocks.resources), calls=list(mocks.calls)), exports


def containers(mocks: RecordingMocks, task: str) -> dict[str, dict[str, Any]]:
    inputs = mocks.one(TASK_DEF, task).inputs
    return {c["name"]: c for c in json.loads(inputs["containerDefinitions"])}


# -- the stack file -------------------------------------------------------------------------
def test_prod_stack_file_uses_only_known_keys_and_marks_its_placeholders() -> None:
    assert unknown_keys(PROD, PROJECT) == []
    assert key("capacity") == "gpu"
    assert key("tags") == {"environment": "prod"}
    for placeholder in (key("modelSyncSource"), key("notificationEmail")):
        line = next(line for line in PROD_TEXT.splitlines() if placeholder in line)
        assert "PLACEHOLDER" in line, line
    assert key("gpuMaxSize") >= 2 * key("maxCount")  # distinctInstance: rollouts at full speed


# -- GPU capacity and the service on it ----------------------------------------------------
def test_gpu_capacity_launch_template_group_and_provider(
    prod: tuple[RecordingMocks, dict[str, Any]],
) -> None:
    mocks, _ = prod
    template = mocks.one("aws:ec2/launchTemplate:LaunchTemplate").inputs
    assert template["instanceType"] == key("gpuInstanceType")
    assert template["metadataOptions"]["httpTokens"] == "required"
    group = mocks.one("aws:autoscaling/group:Group", f"{GPU}-asg").inputs
    assert (group["minSize"], group["maxSize"]) == (key("gpuMinSize"), key("gpuMaxSize"))
    assert group["vpcZoneIdentifiers"] == ["subnet-p1", "subnet-p2", "subnet-p3"]
    provider = mocks.one("aws:ecs/capacityProvider:CapacityProvider").inputs
    scaling = provider["autoScalingGroupProvider"]["managedScaling"]
    assert (scaling["status"], scaling["targetCapacity"]) == ("ENABLED", 100)
    attached = mocks.one("aws:ecs/clusterCapacityProviders:ClusterCapacityProviders").inputs
    # the GPU provider for the service, FARGATE_SPOT for the model sync
    assert attached["capacityProviders"] == [
        f"{GPU}-capacity-provider",
        "FARGATE",
        "FARGATE_SPOT",
    ]
    assert [s["capacityProvider"] for s in attached["defaultCapacityProviderStrategies"]] == [
        f"{GPU}-capacity-provider"
    ]
    # one cluster: the GPU one (no Fargate service cluster besides it)
    assert [c.name for c in mocks.of_type("aws:ecs/cluster:Cluster")] == [f"{GPU}-cluster"]


def test_service_runs_several_gpu_tasks_on_the_capacity_provider(
    prod: tuple[RecordingMocks, dict[str, Any]],
) -> None:
    mocks, _ = prod
    service = mocks.one("aws:ecs/service:Service").inputs
    assert "launchType" not in service
    assert service["capacityProviderStrategies"] == [
        {"capacityProvider": f"{GPU}-capacity-provider", "weight": 1, "base": 0}
    ]
    assert service["placementConstraints"] == [{"type": "distinctInstance"}]
    assert service["cluster"] == f"arn:aws:ecs:us-east-1:{ACCOUNT}:cluster/{GPU}-cluster"
    assert service["desiredCount"] == key("desiredCount") == 3
    assert service["deploymentCircuitBreaker"] == {"enable": True, "rollback": True}
    target = mocks.one("aws:appautoscaling/target:Target").inputs
    assert (target["minCapacity"], target["maxCapacity"]) == (key("minCount"), key("maxCount"))
    task = mocks.one(TASK_DEF, f"{NAME}-taskdef").inputs
    assert task["requiresCompatibilities"] == ["EC2"]
    assert task["tags"]["environment"] == "prod"
    app = containers(mocks, f"{NAME}-taskdef")["app"]
    assert app["resourceRequirements"] == [{"type": "GPU", "value": str(key("gpuCount"))}]
    env = {e["name"]: e["value"] for e in app["environment"]}
    assert (env["NVIDIA_DRIVER_CAPABILITIES"], env["EXECUTION_PROVIDER"]) == ("all", "cuda")
    assert {"sourceVolume": "models", "containerPath": "/models", "readOnly": True} in app[
        "mountPoints"
    ]
    assert_valid_container_definitions(list(containers(mocks, f"{NAME}-taskdef").values()))


def test_three_zones_and_a_protected_internal_load_balancer(
    prod: tuple[RecordingMocks, dict[str, Any]],
) -> None:
    mocks, _ = prod
    vpc = mocks.one("awsx:ec2:Vpc").inputs
    assert vpc["numberOfAvailabilityZones"] == key("availabilityZones") == 3
    assert vpc["natGateways"] == {"strategy": "OnePerAz"}
    assert len(mocks.of_type("aws:efs/mountTarget:MountTarget")) == 3
    alb = mocks.one("aws:lb/loadBalancer:LoadBalancer").inputs
    assert (alb["internal"], alb["enableDeletionProtection"]) == (True, True)
    assert mocks.one("aws:efs/backupPolicy:BackupPolicy").inputs["backupPolicy"]["status"] == (
        "ENABLED"
    )


# -- the nightly model sync ----------------------------------------------------------------
def test_sync_task_definition_publishes_into_the_store_read_write(
    prod: tuple[RecordingMocks, dict[str, Any]],
) -> None:
    mocks, exports = prod
    task = mocks.one(TASK_DEF, f"{SYNC}-taskdef").inputs
    assert task["requiresCompatibilities"] == ["FARGATE"]
    assert (task["cpu"], task["memory"]) == ("1024", "4096")
    assert task["runtimePlatform"]["cpuArchitecture"] == "X86_64"
    defs = containers(mocks, f"{SYNC}-taskdef")
    sync = defs["model-sync"]
    assert sync["entryPoint"] == ["python", "-m", "service.sync"]
    assert sync["command"] == []
    # the service image's CPU variant: the sync runs on Fargate, not on the GPU instances
    assert sync["image"].endswith(f"/{NAME}-model-sync-image@sha256:0")
    assert sync["image"] == exports["modelSyncImage"]
    env = {e["name"]: e["value"] for e in sync["environment"]}
    assert env["SYNC_SOURCE"] == key("modelSyncSource")
    assert (env["MODEL_DIR"], env["SYNC_KEEP"]) == ("/models", "3")
    assert {"sourceVolume": "models", "containerPath": "/models", "readOnly": False} in sync[
        "mountPoints"
    ]
    assert_valid_container_definitions(list(defs.values()))
    # the same file system and access point as the service, admitted over NFS from the job
    volumes = {v["name"]: v for v in task["volumes"]}
    service_volumes = {
        v["name"]: v for v in mocks.one(TASK_DEF, f"{NAME}-taskdef").inputs["volumes"]
    }
    assert volumes["models"] == service_volumes["models"]
    mocks.one(
        "aws:vpc/securityGroupIngressRule:SecurityGroupIngressRule",
        f"{NAME}-models-nfs-from-{SYNC}",
    )


def test_sync_role_reads_only_the_configured_prefix(
    prod: tuple[RecordingMocks, dict[str, Any]],
) -> None:
    mocks, _ = prod
    policy = mocks.one("aws:iam/rolePolicy:RolePolicy", f"{SYNC}-task-policy").inputs["policy"]
    by_sid = {s.get("Sid"): s for s in json.loads(policy)["Statement"]}
    bucket, prefix = key("modelSyncSource").removeprefix("s3://").split("/", 1)
    assert by_sid["ListModelSource"]["Resource"] == f"arn:aws:s3:::{bucket}"
    assert by_sid["ListModelSource"]["Condition"] == {"StringLike": {"s3:prefix": [f"{prefix}/*"]}}
    assert by_sid["ReadModelSource"]["Resource"] == f"arn:aws:s3:::{bucket}/{prefix}/*"
    assert "elasticfilesystem:ClientWrite" in by_sid["ModelStoreWrite"]["Action"]


def test_sync_runs_nightly_on_fargate_in_the_gpu_cluster(
    prod: tuple[RecordingMocks, dict[str, Any]],
) -> None:
    mocks, exports = prod
    schedule = mocks.one("aws:scheduler/schedule:Schedule").inputs
    assert schedule["scheduleExpression"] == "cron(0 3 * * ? *)"
    assert schedule["scheduleExpressionTimezone"] == "UTC"
    machine = mocks.one("aws:sfn/stateMachine:StateMachine")
    definition = json.loads(machine.inputs["definition"])
    (run_task,) = [
        s
        for s in definition["States"].values()
        if s.get("Resource") == "arn:aws:states:::ecs:runTask.sync"
    ]
    params = run_task["Parameters"]
    assert params["Cluster"] == exports["clusterArn"]
    # Fargate Spot (not the GPU capacity provider); retried on a Spot interruption
    assert "LaunchType" not in params
    assert params["CapacityProviderStrategy"] == [{"CapacityProvider": "FARGATE_SPOT", "Weight": 1}]
    assert any(
        r["MaxAttempts"] >= 1
        and ("States.ALL" in r["ErrorEquals"] or "States.TaskFailed" in r["ErrorEquals"])
        for r in run_task["Retry"]
    )
    assert params["TaskDefinition"] == exports["modelSyncTaskDefinitionArn"]
    awsvpc = params["NetworkConfiguration"]["AwsvpcConfiguration"]
    assert awsvpc["Subnets"] == exports["privateSubnetIds"]
    assert awsvpc["SecurityGroups"] == [exports["modelSyncSecurityGroupId"]]


def test_alerts_go_to_the_configured_address(
    prod: tuple[RecordingMocks, dict[str, Any]],
) -> None:
    mocks, exports = prod
    subscriptions = {
        s.name: s.inputs for s in mocks.of_type("aws:sns/topicSubscription:TopicSubscription")
    }
    # service notifications (deployments, task exits) and the sync job's failure alerts
    assert set(subscriptions) == {f"{NAME}-notify-email", f"{SYNC}-run-alerts-email"}
    for subscription in subscriptions.values():
        assert subscription["protocol"] == "email"
        assert subscription["endpoint"] == key("notificationEmail")
    assert exports["alarmTopicArn"] != exports["modelSyncAlarmTopicArn"]


def test_prod_exports(prod: tuple[RecordingMocks, dict[str, Any]]) -> None:
    _, exports = prod
    assert exports["clusterName"] == f"{GPU}-cluster"
    assert exports["serviceName"] == f"{NAME}-service"
    assert exports["gpuCapacityProviderName"] == f"{GPU}-capacity-provider"
    # ops run-task reads capacityProvider(Name) for every task; the sync task is Fargate-only
    assert "capacityProviderName" not in exports and "capacityProvider" not in exports
    assert exports["modelSyncTaskDefinitionArn"].endswith(f"task-definition/{SYNC}-taskdef:1")
    assert exports["modelSyncStateMachineArn"]
    assert exports["privateSubnetIds"] == ["subnet-p1", "subnet-p2", "subnet-p3"]
    for name in (
        "url",
        "loadBalancerDns",
        "clusterArn",
        "taskDefinitionArn",
        "taskRoleArn",
        "executionRoleArn",
        "taskSecurityGroupId",
        "fileSystemId",
        "errorLogGroupName",
        "alarmTopicArn",
        "runTaskNetworkConfiguration",
        "gpuAutoScalingGroupName",
        "modelSyncScheduleArn",
    ):
        assert exports[name], name


# -- the quota guard on a GPU stack -----------------------------------------------------------
def test_quota_guard_reads_the_sync_spot_quota_and_both_gpu_quotas(
    prod: tuple[RecordingMocks, dict[str, Any]],
) -> None:
    """The sync job on Fargate Spot; the GPU group against EC2 "Running On-Demand G and VT
    instances" (L-DB2E81BA) and "All G and VT Spot Instance Requests" (L-3819A6DF), service
    code ec2 (Service Quotas console, Amazon EC2)."""
    mocks, _ = prod
    reads = [
        (args["serviceCode"], args["quotaCode"])
        for token, args in mocks.calls
        if token == QUOTA_TOKEN
    ]
    assert reads == [("fargate", "L-36FBB829"), ("ec2", "L-DB2E81BA"), ("ec2", "L-3819A6DF")]


def test_gpu_stack_without_a_source_syncs_the_demo_bucket_unscheduled() -> None:
    config = {k: v for k, v in PROD.items() if not k.endswith(":modelSyncSource")}
    mocks, exports = run_stack(config)
    # the demo bucket's sync task is on Fargate Spot: its vCPU is checked against that quota,
    # the GPU group against the EC2 G and VT quotas
    reads = [args["quotaCode"] for token, args in mocks.calls if token == QUOTA_TOKEN]
    assert reads == ["L-36FBB829", "L-DB2E81BA", "L-3819A6DF"]
    assert exports["modelSyncSource"] == exports["modelSyncSource"].lower()
    assert exports["modelSyncSource"].startswith(f"s3://{NAME}-model-source-models-{ACCOUNT}-")
    schedule = mocks.one("aws:scheduler/schedule:Schedule").inputs
    assert schedule["state"] == "DISABLED"
