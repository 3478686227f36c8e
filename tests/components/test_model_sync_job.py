"""ModelSyncJob under Pulumi mocks: the publisher's task definition, IAM scoping, network and
schedule, and the S3 URL / settings checks that fail a preview before anything is created."""

from __future__ import annotations

import json
from typing import Any

import pytest

from components.efs_model_store import EfsModelStore, EfsModelStoreArgs
from components.log_router import LogRouter, LogRouterArgs
from components.model_sync_job import (
    CONTAINER_NAME,
    ModelSyncJob,
    ModelSyncJobArgs,
    ModelSyncSettings,
    S3Location,
    parse_s3_url,
)
from tests import pulumi_mocks
from tests.components.helpers import ROLE_POLICY, by_sid, containers, policy_statements
from tests.ecs_schema import assert_valid_container_definitions
from tests.pulumi_mocks import ACCOUNT, RecordingMocks, run

CLUSTER_ARN = f"arn:aws:ecs:us-east-1:{ACCOUNT}:cluster/inference"
IMAGE = f"{ACCOUNT}.dkr.ecr.us-east-1.amazonaws.com/onnx:4f2a9c1"
ROUTER = f"{ACCOUNT}.dkr.ecr.us-east-1.amazonaws.com/router:4f2a9c1"
KMS_KEY = f"arn:aws:kms:us-east-1:{ACCOUNT}:key/1234abcd-12ab-34cd-56ef-1234567890ab"
TASK_DEF = "aws:ecs/taskDefinition:TaskDefinition"
RUN_TASK_SYNC = "arn:aws:states:::ecs:runTask.sync"


def build(settings: ModelSyncSettings, **kwargs: Any) -> RecordingMocks:
    """Run a ModelSyncJob with a real model store and log router under mocks."""

    def program() -> None:
        models = EfsModelStore(
            "models", EfsModelStoreArgs(vpc_id="vpc-1", subnet_ids=["subnet-a", "subnet-b"])
        )
        logs = LogRouter("logs", LogRouterArgs(image=ROUTER))
        ModelSyncJob(
            "sync",
            ModelSyncJobArgs(
                cluster_arn=CLUSTER_ARN,
                vpc_id="vpc-1",
                subnet_ids=["subnet-a", "subnet-b"],
                image=IMAGE,
                model_store=models,
                log_router=logs,
                settings=settings,
                **kwargs,
            ),
        )

    return run(program)


@pytest.fixture(scope="module")
def job() -> RecordingMocks:
    """The job as the prod stack uses it, recorded once for the read-only tests below."""
    mocks = build(ModelSyncSettings(source="s3://my-models/prod/"), alarm_email="ops@example.com")
    return RecordingMocks(resources=list(mocks.resources), calls=list(mocks.calls))


def task_statements(mocks: RecordingMocks) -> dict[str, dict[str, Any]]:
    found = policy_statements(mocks, ROLE_POLICY, "sync-task-policy")
    return {s.get("Sid", str(i)): s for i, s in enumerate(found)}


def run_task_state(mocks: RecordingMocks) -> dict[str, Any]:
    definition = json.loads(mocks.one("aws:sfn/stateMachine:StateMachine").inputs["definition"])
    (state,) = [s for s in definition["States"].values() if s.get("Resource") == RUN_TASK_SYNC]
    return state


# -- the S3 source URL ----------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("url", "bucket", "prefix"),
    [
        ("s3://my-models/prod", "my-models", "prod"),
        ("s3://my-models/prod/", "my-models", "prod"),
        ("s3://my.models-2/team/onnx/v1", "my.models-2", "team/onnx/v1"),
        ("s3://my-models", "my-models", ""),
        ("s3://my-models/", "my-models", ""),
    ],
)
def test_parse_s3_url(url: str, bucket: str, prefix: str) -> None:
    assert parse_s3_url(url) == S3Location(bucket, prefix)


@pytest.mark.parametrize(
    ("url", "message"),
    [
        ("my-models/prod", "is not an S3 URL"),
        ("https://my-models.s3.amazonaws.com/prod", "is not an S3 URL"),
        ("s3:/my-models/prod", "is not an S3 URL"),
        ("s3://", "bucket '' is not a valid S3 bucket name"),
        ("s3://My_Models/prod", "bucket 'My_Models' is not a valid"),
        ("s3://ab/prod", "bucket 'ab' is not a valid"),
        ("s3://my..models/prod", "bucket 'my..models'"),
        ("s3://192.168.1.1/prod", "bucket '192.168.1.1'"),
        ("s3://my-models/pro*", "unsupported path segment"),
        ("s3://my-models/a//b", "unsupported path segment"),
        ("s3://my-models/../other", "unsupported path segment"),
        ("s3://my-models/prod?versionId=1", "unsupported path segment"),
        ("s3://my-models/my models", "unsupported path segment"),
    ],
)
def test_bad_s3_urls_are_refused_with_the_expected_form(url: str, message: str) -> None:
    with pytest.raises(ValueError) as err:
        parse_s3_url(url)
    assert message in str(err.value)
    assert "expected s3://<bucket>/<prefix>" in str(err.value)


def test_bad_source_fails_before_any_resource() -> None:
    with pytest.raises(ValueError, match="'s3:/my-models/prod' is not an S3 URL"):
        build(ModelSyncSettings(source="s3:/my-models/prod"))
    # the store and the router (built first) exist; nothing of the job does
    created = [r.name for r in pulumi_mocks.MOCKS.resources]
    assert "models" in created
    assert [n for n in created if n.startswith("sync")] == []


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"keep": -1}, "model sync keep -1"),
        ({"capacity": "EC2"}, "the publisher is a Fargate task"),
        ({"cpu": 1024, "memory": 1024}, "valid memory values for cpu 1024"),
        ({"architecture": "arm"}, "cpu architecture 'arm'"),
        ({"schedule_expression": "cron(0 3 * * *)"}, "cron"),
        ({"schedule_timezone": "Mars/Olympus"}, "Mars/Olympus"),
        ({"source_kms_key_arn": "alias/models"}, "give the key ARN"),
    ],
)
def test_bad_settings_are_refused(changes: dict[str, Any], message: str) -> None:
    settings = ModelSyncSettings(source="s3://my-models/prod", **changes)
    with pytest.raises(ValueError) as err:
        settings.validate()
    assert message in str(err.value)


# -- the task definition ------------------------------------------------------------------------
def test_publisher_runs_service_sync_from_the_service_image(job: RecordingMocks) -> None:
    task = job.one(TASK_DEF, "sync-taskdef").inputs
    assert task["requiresCompatibilities"] == ["FARGATE"]
    assert (task["networkMode"], task["cpu"], task["memory"]) == ("awsvpc", "1024", "4096")
    assert task["family"] == "sync"
    defs = containers(job, "sync-taskdef")
    assert set(defs) == {CONTAINER_NAME, "log-router"}
    sync = defs[CONTAINER_NAME]
    assert sync["image"] == IMAGE
    assert sync["entryPoint"] == ["python", "-m", "service.sync"]
    assert sync["command"] == []
    assert sync["user"] == "10001:10001"
    assert sync["essential"] is True
    env = {e["name"]: e["value"] for e in sync["environment"]}
    assert env == {
        "SYNC_SOURCE": "s3://my-models/prod",
        "MODEL_DIR": "/models",
        "SYNC_KEEP": "3",
        "SYNC_LOG_FORMAT": "json",
    }
    assert sync["logConfiguration"]["logDriver"] == "awsfirelens"
    assert sync["dependsOn"] == [{"containerName": "log-router", "condition": "START"}]
    assert_valid_container_definitions(list(defs.values()))


def test_model_store_is_mounted_read_write_through_the_access_point(job: RecordingMocks) -> None:
    sync = containers(job, "sync-taskdef")[CONTAINER_NAME]
    assert {"sourceVolume": "models", "containerPath": "/models", "readOnly": False} in sync[
        "mountPoints"
    ]
    # the root file system stays read-only; /tmp is task-local scratch
    assert sync["readonlyRootFilesystem"] is True
    assert {"sourceVolume": "tmp", "containerPath": "/tmp", "readOnly": False} in sync[
        "mountPoints"
    ]
    volumes = {v["name"]: v for v in job.one(TASK_DEF, "sync-taskdef").inputs["volumes"]}
    efs = volumes["models"]["efsVolumeConfiguration"]
    assert efs["transitEncryption"] == "ENABLED"
    assert efs["authorizationConfig"] == {"accessPointId": "models-ap-id", "iam": "ENABLED"}
    write = task_statements(job)["ModelStoreWrite"]
    assert write["Action"] == ["elasticfilesystem:ClientMount", "elasticfilesystem:ClientWrite"]
    assert write["Condition"]["StringEquals"]["elasticfilesystem:AccessPointArn"].endswith(
        "models-ap"
    )


# -- IAM ----------------------------------------------------------------------------------------
def test_task_role_reads_only_the_source_prefix(job: RecordingMocks) -> None:
    statements = task_statements(job)
    assert statements["ListModelSource"] == {
        "Sid": "ListModelSource",
        "Effect": "Allow",
        "Action": "s3:ListBucket",
        "Resource": "arn:aws:s3:::my-models",
        "Condition": {"StringLike": {"s3:prefix": ["prod/*"]}},
    }
    assert statements["ReadModelSource"] == {
        "Sid": "ReadModelSource",
        "Effect": "Allow",
        "Action": "s3:GetObject",
        "Resource": "arn:aws:s3:::my-models/prod/*",
    }
    actions = [a for s in statements.values() for a in _list(s["Action"])]
    assert not [a for a in actions if a.startswith("s3:") and a not in _S3_ALLOWED]
    assert not [a for a in actions if a.startswith("kms:")]  # no key given
    assert not [a for a in actions if a.startswith("ssmmessages:")]  # no ECS Exec in a batch job
    resources = [r for s in statements.values() for r in _list(s["Resource"])]
    assert "*" not in resources


_S3_ALLOWED = {"s3:ListBucket", "s3:GetObject", "s3:PutObject"}  # PutObject: the log archive


def _list(value: Any) -> list[str]:
    return value if isinstance(value, list) else [value]


def test_whole_bucket_source_and_sse_kms_key() -> None:
    mocks = build(ModelSyncSettings(source="s3://my-models", source_kms_key_arn=KMS_KEY))
    statements = task_statements(mocks)
    assert "Condition" not in statements["ListModelSource"]
    assert statements["ReadModelSource"]["Resource"] == "arn:aws:s3:::my-models/*"
    assert statements["DecryptModelSource"] == {
        "Sid": "DecryptModelSource",
        "Effect": "Allow",
        "Action": "kms:Decrypt",
        "Resource": KMS_KEY,
        "Condition": {"StringEquals": {"kms:ViaService": "s3.us-east-1.amazonaws.com"}},
    }


def test_roles_trust_only_ecs_tasks_of_this_account_and_pull_only_the_images(
    job: RecordingMocks,
) -> None:
    for role in ("sync-task-role", "sync-execution-role"):
        trust = json.loads(job.one("aws:iam/role:Role", role).inputs["assumeRolePolicy"])
        (statement,) = trust["Statement"]
        assert statement["Principal"] == {"Service": "ecs-tasks.amazonaws.com"}
        assert statement["Condition"]["StringEquals"] == {"aws:SourceAccount": ACCOUNT}
    execution = by_sid(policy_statements(job, ROLE_POLICY, "sync-execution-policy"))
    assert execution["EcrPull"]["Resource"] == [
        f"arn:aws:ecr:us-east-1:{ACCOUNT}:repository/onnx",
        f"arn:aws:ecr:us-east-1:{ACCOUNT}:repository/router",
    ]
    assert execution["RouterLogs"]["Resource"].endswith("/log-router:*")


# -- network --------------------------------------------------------------------------------------
def test_security_group_has_no_ingress_and_is_admitted_by_the_store(job: RecordingMocks) -> None:
    group = job.one("aws:ec2/securityGroup:SecurityGroup", "sync-sg")
    assert not group.inputs.get("ingress")
    sg_id = "sync-sg-id"
    ingress = [
        r.inputs
        for r in job.of_type("aws:vpc/securityGroupIngressRule:SecurityGroupIngressRule")
        if r.inputs.get("referencedSecurityGroupId") == sg_id
    ]
    assert [(r["fromPort"], r["toPort"]) for r in ingress] == [(2049, 2049)]
    assert job.one(
        "aws:vpc/securityGroupIngressRule:SecurityGroupIngressRule", "models-nfs-from-sync"
    )
    egress = {
        r.name: r.inputs
        for r in job.of_type("aws:vpc/securityGroupEgressRule:SecurityGroupEgressRule")
        if r.inputs["securityGroupId"] == sg_id
    }
    assert set(egress) == {"sync-out-https", "sync-out-nfs"}
    assert (egress["sync-out-https"]["fromPort"], egress["sync-out-https"]["cidrIpv4"]) == (
        443,
        "0.0.0.0/0",
    )
    assert egress["sync-out-nfs"]["fromPort"] == 2049
    assert "cidrIpv4" not in egress["sync-out-nfs"]  # only to the store's security group


# -- schedule, retries, alerts ------------------------------------------------------------------
def test_scheduled_run_in_private_subnets_with_alerts(job: RecordingMocks) -> None:
    schedule = job.one("aws:scheduler/schedule:Schedule").inputs
    assert schedule["scheduleExpression"] == "cron(0 3 * * ? *)"
    assert schedule["scheduleExpressionTimezone"] == "UTC"
    assert schedule["state"] == "ENABLED"
    params = run_task_state(job)["Parameters"]
    assert params["Cluster"] == CLUSTER_ARN
    assert params["TaskDefinition"].endswith(":task-definition/sync-taskdef:1")
    # Fargate Spot by default, through a capacity provider strategy (RunTask takes either a
    # launch type or a strategy, never both: ECS API Reference, RunTask, capacityProviderStrategy)
    assert "LaunchType" not in params
    assert params["CapacityProviderStrategy"] == [{"CapacityProvider": "FARGATE_SPOT", "Weight": 1}]
    awsvpc = params["NetworkConfiguration"]["AwsvpcConfiguration"]
    assert awsvpc["Subnets"] == ["subnet-a", "subnet-b"]
    assert awsvpc["SecurityGroups"] == ["sync-sg-id"]
    assert awsvpc["AssignPublicIp"] == "DISABLED"
    assert "Overrides" not in params  # the task definition's entry point and env are the job
    (subscription,) = job.of_type("aws:sns/topicSubscription:TopicSubscription")
    assert (subscription.inputs["protocol"], subscription.inputs["endpoint"]) == (
        "email",
        "ops@example.com",
    )
    assert job.one("aws:sns/topic:Topic").inputs["kmsMasterKeyId"]


def test_given_topic_is_used_instead_of_a_new_one() -> None:
    topic = f"arn:aws:sns:us-east-1:{ACCOUNT}:alerts"
    mocks = build(
        ModelSyncSettings(source="s3://my-models/prod", schedule_timezone="Asia/Tokyo"),
        alarm_topic_arn=topic,
    )
    assert mocks.of_type("aws:sns/topic:Topic") == []
    assert mocks.of_type("aws:sns/topicSubscription:TopicSubscription") == []
    assert mocks.one("aws:scheduler/schedule:Schedule").inputs["scheduleExpressionTimezone"] == (
        "Asia/Tokyo"
    )
    assert topic in mocks.one("aws:sfn/stateMachine:StateMachine").inputs["definition"]


def test_component_type_token_and_child_names(job: RecordingMocks) -> None:
    assert job.one("onnx-ecs:index:ModelSyncJob").name == "sync"
    assert job.one("onnx-ecs:index:ScheduledRunTask").name == "sync-run"
