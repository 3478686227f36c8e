"""EfsModelStore under Pulumi mocks: assertions on the inputs AWS would receive."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

import pulumi
import pulumi_aws as aws
import pytest

from components.efs_model_store import EfsModelStore, EfsModelStoreArgs
from tests import pulumi_mocks
from tests.pulumi_mocks import RecordingMocks, run

FS = "aws:efs/fileSystem:FileSystem"
MT = "aws:efs/mountTarget:MountTarget"
AP = "aws:efs/accessPoint:AccessPoint"
SG = "aws:ec2/securityGroup:SecurityGroup"
INGRESS = "aws:vpc/securityGroupIngressRule:SecurityGroupIngressRule"
FS_ID = "models-fs-id"  # the mocks answer "<name>-id" as a resource id
SG_ID = "models-sg-id"
SUBNETS = ["subnet-priv-a", "subnet-priv-b", "subnet-priv-c"]


def build(
    resolved: dict[str, Any] | None = None,
    extra: Callable[[EfsModelStore], None] | None = None,
    **overrides: Any,
) -> RecordingMocks:
    """Run an EfsModelStore; ``resolved`` receives its statements once they resolve."""

    def program() -> None:
        args = EfsModelStoreArgs(**{"vpc_id": "vpc-0abc", "subnet_ids": SUBNETS, **overrides})
        store = EfsModelStore("models", args)
        if resolved is not None:
            store.task_role_statement().apply(lambda s: resolved.__setitem__("read", s))
            store.task_role_statement(write=True).apply(lambda s: resolved.__setitem__("write", s))
            pulumi.Output.all(store.file_system_arn, store.access_point_arn).apply(
                lambda v: resolved.__setitem__("arns", v)
            )
        if extra is not None:
            extra(store)

    return run(program)


def test_it_is_one_component_with_its_token() -> None:
    mocks = build()
    assert [r.name for r in mocks.of_type("onnx-ecs:index:EfsModelStore")] == ["models"]


def test_file_system_is_encrypted_backed_up_and_elastic() -> None:
    mocks = build()
    fs = mocks.one(FS, "models-fs").inputs
    assert fs["encrypted"] is True
    assert "kmsKeyId" not in fs
    assert fs["throughputMode"] == "elastic"
    assert "lifecyclePolicies" not in fs  # IA is opt-in: models are read at every task start
    backup = mocks.one("aws:efs/backupPolicy:BackupPolicy", "models-backup").inputs
    assert backup["backupPolicy"] == {"status": "ENABLED"}
    assert backup["fileSystemId"] == FS_ID


def test_customer_key_backup_off_and_ia_lifecycle_when_asked() -> None:
    key = "arn:aws:kms:us-east-1:123456789012:key/1111"
    mocks = build(kms_key_id=key, backup=False, transition_to_ia="AFTER_30_DAYS")
    fs = mocks.one(FS).inputs
    assert fs["kmsKeyId"] == key
    assert fs["lifecyclePolicies"] == [
        {"transitionToIa": "AFTER_30_DAYS"},
        {"transitionToPrimaryStorageClass": "AFTER_1_ACCESS"},
    ]
    assert mocks.one("aws:efs/backupPolicy:BackupPolicy").inputs["backupPolicy"] == {
        "status": "DISABLED"
    }


def test_file_system_policy_denies_access_without_tls() -> None:
    policy = json.loads(mocks_policy(build()))
    (statement,) = policy["Statement"]
    assert statement["Effect"] == "Deny"
    assert statement["Condition"] == {"Bool": {"aws:SecureTransport": "false"}}
    assert statement["Resource"].endswith("models-fs")


def mocks_policy(mocks: RecordingMocks) -> str:
    return mocks.one("aws:efs/fileSystemPolicy:FileSystemPolicy").inputs["policy"]


def test_one_mount_target_per_private_subnet_behind_the_store_group() -> None:
    mocks = build()
    targets = sorted(mocks.of_type(MT), key=lambda r: r.name)
    assert [t.inputs["subnetId"] for t in targets] == SUBNETS
    assert mocks.one(SG, "models-sg").inputs["vpcId"] == "vpc-0abc"
    for target in targets:
        assert target.inputs["fileSystemId"] == FS_ID
        assert target.inputs["securityGroups"] == [SG_ID]


def test_subnets_given_as_an_output_need_and_use_subnet_count() -> None:
    mocks = build(subnet_ids=pulumi.Output.from_input(SUBNETS[:2]), subnet_count=2)
    assert sorted(t.inputs["subnetId"] for t in mocks.of_type(MT)) == SUBNETS[:2]
    with pytest.raises(ValueError, match="subnet_count"):
        build(subnet_ids=pulumi.Output.from_input(SUBNETS))


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        ({"subnet_ids": []}, "subnet_ids is empty"),
        ({"subnet_count": 2}, "subnet_count=2 but subnet_ids has 3"),
        ({"subnet_count": 0}, "subnet_count=0"),
    ],
)
def test_subnet_arguments_are_checked(overrides: dict[str, Any], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        build(**overrides)


def test_access_point_is_rooted_at_models_as_the_service_user() -> None:
    ap = build().one(AP, "models-ap").inputs
    assert ap["fileSystemId"] == FS_ID
    assert ap["posixUser"] == {"uid": 10001, "gid": 10001}
    assert ap["rootDirectory"] == {
        "path": "/models",
        "creationInfo": {"ownerUid": 10001, "ownerGid": 10001, "permissions": "0755"},
    }


def test_security_group_admits_nfs_only_from_groups_it_is_told_about() -> None:
    def allow(store: EfsModelStore) -> None:
        store.allow_from("inference-tasks", "sg-tasks")

    mocks = build(extra=allow, allowed_security_groups={"sync-job": "sg-sync"})
    sg = mocks.one(SG, "models-sg").inputs
    assert sg["egress"] == []  # no way out, to the world or anywhere
    assert "ingress" not in sg  # every way in is one rule below
    rules = {r.name: r.inputs for r in mocks.of_type(INGRESS)}
    assert set(rules) == {"models-nfs-from-inference-tasks", "models-nfs-from-sync-job"}
    assert {r["referencedSecurityGroupId"] for r in rules.values()} == {"sg-tasks", "sg-sync"}
    for rule in rules.values():
        assert (rule["ipProtocol"], rule["fromPort"], rule["toPort"]) == ("tcp", 2049, 2049)
        assert rule["securityGroupId"] == SG_ID
        assert "cidrIpv4" not in rule and "cidrIpv6" not in rule
    assert not mocks.of_type("aws:vpc/securityGroupEgressRule:SecurityGroupEgressRule")


def test_allow_from_refuses_duplicate_or_unusable_names() -> None:
    def twice(store: EfsModelStore) -> None:
        store.allow_from("tasks", "sg-1")
        store.allow_from("tasks", "sg-2")

    with pytest.raises(ValueError, match="already used"):
        build(extra=twice)
    with pytest.raises(ValueError, match="resource name"):
        build(extra=lambda store: store.allow_from("my tasks", "sg-1"))


def test_volume_uses_the_access_point_with_tls_and_iam() -> None:
    def taskdef(store: EfsModelStore) -> None:
        aws.ecs.TaskDefinition(
            "td",
            family="td",
            container_definitions="[]",
            volumes=[store.volume()],
        )

    mocks = build(extra=taskdef)
    (volume,) = mocks.one("aws:ecs/taskDefinition:TaskDefinition").inputs["volumes"]
    assert volume == {
        "name": "models",
        "efsVolumeConfiguration": {
            "fileSystemId": FS_ID,
            "transitEncryption": "ENABLED",
            "authorizationConfig": {"accessPointId": "models-ap-id", "iam": "ENABLED"},
        },
    }


def test_mount_point_is_read_only_by_default() -> None:
    seen: dict[str, Any] = {}

    def mounts(store: EfsModelStore) -> None:
        seen["ro"] = store.mount_point("/models")
        seen["rw"] = store.mount_point("/models", read_only=False, volume_name="m")
        with pytest.raises(ValueError, match="absolute"):
            store.mount_point("models")

    build(extra=mounts)
    assert seen["ro"] == {"sourceVolume": "models", "containerPath": "/models", "readOnly": True}
    assert seen["rw"] == {"sourceVolume": "m", "containerPath": "/models", "readOnly": False}


def test_task_role_statement_mounts_through_the_access_point_and_writes_only_if_asked() -> None:
    resolved: dict[str, Any] = {}
    build(resolved)
    fs_arn, ap_arn = resolved["arns"]
    condition = {"StringEquals": {"elasticfilesystem:AccessPointArn": ap_arn}}
    assert resolved["read"]["Action"] == ["elasticfilesystem:ClientMount"]
    assert resolved["write"]["Action"] == [
        "elasticfilesystem:ClientMount",
        "elasticfilesystem:ClientWrite",
    ]
    for statement in (resolved["read"], resolved["write"]):
        assert statement["Effect"] == "Allow"
        assert statement["Resource"] == fs_arn
        assert statement["Condition"] == condition
    assert "ClientRootAccess" not in json.dumps(resolved)


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        ({"posix_uid": -1}, "posix_uid=-1"),
        ({"posix_uid": 2**32}, "posix_uid=4294967296"),
        ({"posix_uid": True}, "posix_uid=True"),
        ({"posix_gid": "10001"}, "posix_gid='10001'"),
        ({"posix_uid": 0}, "root"),
        ({"root_path": "models"}, "root_path='models'"),
        ({"root_path": "/"}, "root_path='/'"),
        ({"root_path": "/models/"}, "root_path='/models/'"),
        ({"root_permissions": "999"}, "root_permissions='999'"),
        ({"transition_to_ia": "AFTER_2_DAYS"}, "AFTER_30_DAYS"),
        ({"throughput_mode": "turbo"}, "elastic, bursting, provisioned"),
        ({"throughput_mode": "provisioned"}, "provisioned_throughput_mibps"),
        ({"provisioned_throughput_mibps": 64.0}, "provisioned_throughput_mibps"),
        ({"allowed_security_groups": {"a b": "sg-1"}}, "'a b'"),
    ],
)
def test_invalid_arguments_fail_before_any_resource(
    overrides: dict[str, Any], message: str
) -> None:
    with pytest.raises(ValueError, match=message.replace("(", r"\(")) as error:
        build(**overrides)
    assert error.value is not None
    assert not pulumi_mocks.MOCKS.resources  # nothing was registered
