"""EFS file system that holds the model repository, mounted read-only by the inference tasks.

Models live on EFS (seed 000) so that a new task loads them from a nearby file system instead of
downloading from S3, and a model update does not need a new image. Safe by default:

- encrypted at rest (AWS-managed key, or ``kms_key_id``) and in transit (the volume it hands out
  sets transit encryption, and a file system policy denies any non-TLS access);
- reachable only over NFS (2049) from security groups named with :meth:`EfsModelStore.allow_from`
  (its security group has no other ingress and no egress);
- mounted through one access point rooted at ``/models`` that forces the POSIX identity of the
  service (uid/gid 10001), with IAM authorization: a task can mount only when its role holds the
  statement from :meth:`EfsModelStore.task_role_statement` (ClientWrite only when asked for);
- automatic backups (AWS Backup) on; a lifecycle to Infrequent Access optional (models are read
  at every task start, so IA read charges can outweigh the storage saving).
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import pulumi
import pulumi_aws as aws

from components.iam import policy_json

NFS_PORT = 2049
IA_TRANSITIONS = (
    "AFTER_1_DAY", "AFTER_7_DAYS", "AFTER_14_DAYS", "AFTER_30_DAYS", "AFTER_60_DAYS",
    "AFTER_90_DAYS", "AFTER_180_DAYS", "AFTER_270_DAYS", "AFTER_365_DAYS",
)  # fmt: skip
THROUGHPUT_MODES = ("elastic", "bursting", "provisioned")
_RULE_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]*$")
_PERMISSIONS = re.compile(r"^0?[0-7]{3}$")
_MAX_ID = 4294967295  # EFS access points take 32-bit POSIX ids


@dataclass
class EfsModelStoreArgs:
    """Inputs of :class:`EfsModelStore`."""

    vpc_id: pulumi.Input[str]
    # Private subnets, one mount target each (EFS allows one mount target per AZ).
    subnet_ids: pulumi.Input[Sequence[pulumi.Input[str]]]
    # Needed when subnet_ids is an Output (e.g. awsx Vpc.private_subnet_ids): how many there are,
    # because resources cannot be created inside .apply().
    subnet_count: int | None = None
    posix_uid: int = 10001
    posix_gid: int = 10001
    root_path: str = "/models"
    root_permissions: str = "0755"  # owner (the service user) writes, others read
    backup: bool = True
    kms_key_id: pulumi.Input[str] | None = None  # None: the AWS-managed EFS key
    transition_to_ia: str | None = None  # e.g. "AFTER_30_DAYS"; None keeps everything Standard
    throughput_mode: str = "elastic"  # pay per read: suits bursts of model loads at task start
    provisioned_throughput_mibps: float | None = None  # only with throughput_mode="provisioned"
    # Security groups admitted over NFS from the start, by a short name used in resource names.
    allowed_security_groups: Mapping[str, pulumi.Input[str]] = field(default_factory=dict)
    tags: Mapping[str, str] = field(default_factory=dict)


class EfsModelStore(pulumi.ComponentResource):
    """The model repository on EFS. See the module docstring and docs/log-routing.md."""

    file_system_id: pulumi.Output[str]
    file_system_arn: pulumi.Output[str]
    access_point_id: pulumi.Output[str]
    access_point_arn: pulumi.Output[str]
    security_group_id: pulumi.Output[str]

    def __init__(
        self, name: str, args: EfsModelStoreArgs, opts: pulumi.ResourceOptions | None = None
    ) -> None:
        subnets = _validate(args)
        super().__init__("onnx-ecs:index:EfsModelStore", name, None, opts)
        self._name = name
        self._rule_names: set[str] = set()
        self._tags = dict(args.tags)
        child = pulumi.ResourceOptions(parent=self)
        tags = {"Name": name, **args.tags}

        lifecycle: list[aws.efs.FileSystemLifecyclePolicyArgs] = []
        if args.transition_to_ia is not None:
            lifecycle = [
                aws.efs.FileSystemLifecyclePolicyArgs(transition_to_ia=args.transition_to_ia),
                # A model read again (a new task starting) comes back to Standard.
                aws.efs.FileSystemLifecyclePolicyArgs(
                    transition_to_primary_storage_class="AFTER_1_ACCESS"
                ),
            ]
        fs = aws.efs.FileSystem(
            f"{name}-fs",
            encrypted=True,
            kms_key_id=args.kms_key_id,
            performance_mode="generalPurpose",
            throughput_mode=args.throughput_mode,
            provisioned_throughput_in_mibps=args.provisioned_throughput_mibps,
            lifecycle_policies=lifecycle or None,
            tags=tags,
            opts=child,
        )
        aws.efs.BackupPolicy(
            f"{name}-backup",
            file_system_id=fs.id,
            backup_policy=aws.efs.BackupPolicyBackupPolicyArgs(
                status="ENABLED" if args.backup else "DISABLED"
            ),
            opts=child,
        )
        # Without a file system policy any client that reaches a mount target may mount. This
        # one denies every request not made over TLS; it grants nothing, so a client must be an
        # IAM principal whose own policy allows it (the task role statement below).
        tls_only = fs.arn.apply(
            lambda arn: {
                "Sid": "DenyInsecureTransport",
                "Effect": "Deny",
                "Principal": {"AWS": "*"},
                "Action": "*",
                "Resource": arn,
                "Condition": {"Bool": {"aws:SecureTransport": "false"}},
            }
        )
        aws.efs.FileSystemPolicy(
            f"{name}-policy", file_system_id=fs.id, policy=policy_json([tls_only]), opts=child
        )

        sg = aws.ec2.SecurityGroup(
            f"{name}-sg",
            vpc_id=args.vpc_id,
            description="EFS model store: NFS only from the security groups allowed explicitly",
            # An NFS server initiates nothing; replies to admitted clients need no egress rule.
            egress=[],
            tags=tags,
            opts=child,
        )
        self.security_group_id = sg.id

        mount_targets = []
        for index, subnet_id in enumerate(subnets):
            mount_targets.append(
                aws.efs.MountTarget(
                    f"{name}-mt-{index}",
                    file_system_id=fs.id,
                    subnet_id=subnet_id,
                    security_groups=[sg.id],
                    opts=child,
                )
            )

        ap = aws.efs.AccessPoint(
            f"{name}-ap",
            file_system_id=fs.id,
            posix_user=aws.efs.AccessPointPosixUserArgs(uid=args.posix_uid, gid=args.posix_gid),
            root_directory=aws.efs.AccessPointRootDirectoryArgs(
                path=args.root_path,
                creation_info=aws.efs.AccessPointRootDirectoryCreationInfoArgs(
                    owner_uid=args.posix_uid,
                    owner_gid=args.posix_gid,
                    permissions=args.root_permissions,
                ),
            ),
            tags=tags,
            # Tasks cannot mount before a mount target exists in their AZ.
            opts=pulumi.ResourceOptions.merge(
                child, pulumi.ResourceOptions(depends_on=mount_targets)
            ),
        )

        self.file_system_id = fs.id
        self.file_system_arn = fs.arn
        self.access_point_id = ap.id
        self.access_point_arn = ap.arn
        for rule_name, group_id in args.allowed_security_groups.items():
            self.allow_from(rule_name, group_id)
        self.register_outputs(
            {
                "file_system_id": self.file_system_id,
                "file_system_arn": self.file_system_arn,
                "access_point_id": self.access_point_id,
                "access_point_arn": self.access_point_arn,
                "security_group_id": self.security_group_id,
            }
        )

    def allow_from(self, name: str, security_group_id: pulumi.Input[str]) -> pulumi.Resource:
        """Admit NFS from one security group (the only way in). ``name`` keys the rule's
        resource name ``<store>-nfs-from-<name>``, so keep it stable."""
        if not isinstance(name, str) or not _RULE_NAME.match(name):
            raise ValueError(
                f"allow_from name {name!r}: use letters, digits, '.', '_' and '-' (it becomes "
                "part of a resource name)"
            )
        if name in self._rule_names:
            raise ValueError(f"allow_from name {name!r} is already used on {self._name!r}")
        self._rule_names.add(name)
        return aws.vpc.SecurityGroupIngressRule(
            f"{self._name}-nfs-from-{name}",
            security_group_id=self.security_group_id,
            referenced_security_group_id=security_group_id,
            ip_protocol="tcp",
            from_port=NFS_PORT,
            to_port=NFS_PORT,
            description=f"NFS from {name}",
            tags=self._tags,
            opts=pulumi.ResourceOptions(parent=self),
        )

    def volume(self, name: str = "models") -> aws.ecs.TaskDefinitionVolumeArgs:
        """The task-definition volume: through the access point, TLS, task-role IAM auth."""
        efs = aws.ecs.TaskDefinitionVolumeEfsVolumeConfigurationArgs(
            file_system_id=self.file_system_id,
            transit_encryption="ENABLED",
            authorization_config=(
                aws.ecs.TaskDefinitionVolumeEfsVolumeConfigurationAuthorizationConfigArgs(
                    access_point_id=self.access_point_id, iam="ENABLED"
                )
            ),
        )
        return aws.ecs.TaskDefinitionVolumeArgs(name=name, efs_volume_configuration=efs)

    def mount_point(
        self, container_path: str, read_only: bool = True, volume_name: str = "models"
    ) -> dict:
        """Container-definition ``mountPoints`` entry (read-only unless asked otherwise)."""
        if not container_path.startswith("/") or container_path.rstrip("/") == "":
            raise ValueError(f"container_path={container_path!r}: an absolute path other than '/'")
        return {"sourceVolume": volume_name, "containerPath": container_path, "readOnly": read_only}

    def task_role_statement(self, write: bool = False) -> pulumi.Output[dict]:
        """IAM statement for a task role: mount (and write, when asked) through this store's
        access point only."""
        actions = ["elasticfilesystem:ClientMount"]
        if write:
            actions.append("elasticfilesystem:ClientWrite")

        def render(v: list[Any]) -> dict:
            fs_arn, ap_arn = v
            return {
                "Sid": "ModelStoreWrite" if write else "ModelStoreRead",
                "Effect": "Allow",
                "Action": actions,
                "Resource": fs_arn,
                "Condition": {"StringEquals": {"elasticfilesystem:AccessPointArn": ap_arn}},
            }

        return pulumi.Output.all(self.file_system_arn, self.access_point_arn).apply(render)


def _validate(args: EfsModelStoreArgs) -> list[pulumi.Input[str]]:
    """Check the arguments before any resource exists; return one subnet input per mount target.

    A plain list is used as is; an Output list is split into ``subnet_count`` items, and a
    mismatch is reported when the list resolves (at deploy/preview time).
    """
    for field_name in ("posix_uid", "posix_gid"):
        value = getattr(args, field_name)
        if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value <= _MAX_ID:
            raise ValueError(f"{field_name}={value!r}: a POSIX id from 0 to {_MAX_ID}")
    if args.posix_uid == 0 or args.posix_gid == 0:
        raise ValueError(
            "posix_uid/posix_gid 0 would give every task root on the model store; the service "
            "runs as 10001"
        )
    path = args.root_path
    if not path.startswith("/") or path == "/" or path.endswith("/") or "//" in path:
        raise ValueError(
            f"root_path={path!r}: an absolute directory below '/', like '/models' (the access "
            "point creates it)"
        )
    if not _PERMISSIONS.match(args.root_permissions):
        raise ValueError(f"root_permissions={args.root_permissions!r}: octal like '0755'")
    if args.transition_to_ia is not None and args.transition_to_ia not in IA_TRANSITIONS:
        raise ValueError(
            f"transition_to_ia={args.transition_to_ia!r}; accepted: {', '.join(IA_TRANSITIONS)}"
        )
    if args.throughput_mode not in THROUGHPUT_MODES:
        raise ValueError(
            f"throughput_mode={args.throughput_mode!r}; accepted: {', '.join(THROUGHPUT_MODES)}"
        )
    provisioned = args.provisioned_throughput_mibps
    if (args.throughput_mode == "provisioned") != (provisioned is not None):
        raise ValueError(
            "provisioned_throughput_mibps is required with throughput_mode='provisioned' and "
            f"only then (got throughput_mode={args.throughput_mode!r}, "
            f"provisioned_throughput_mibps={provisioned!r})"
        )
    if provisioned is not None and provisioned < 1:
        raise ValueError(f"provisioned_throughput_mibps={provisioned!r}: at least 1")
    for rule_name in args.allowed_security_groups:
        if not _RULE_NAME.match(rule_name):
            raise ValueError(f"allowed_security_groups key {rule_name!r}: letters, digits, ._-")

    count = args.subnet_count
    if count is not None and (isinstance(count, bool) or not isinstance(count, int) or count < 1):
        raise ValueError(f"subnet_count={count!r}: at least 1")
    subnets = args.subnet_ids
    if isinstance(subnets, (list, tuple)):
        if not subnets:
            raise ValueError("subnet_ids is empty: give the private subnets, one per AZ")
        if count is not None and count != len(subnets):
            raise ValueError(f"subnet_count={count} but subnet_ids has {len(subnets)} entries")
        return list(subnets)
    if count is None:
        raise ValueError(
            "subnet_ids is an Output: set subnet_count to the number of private subnets (one "
            "mount target is created per subnet, and resources cannot be created in .apply())"
        )
    resolved = pulumi.Output.from_input(subnets).apply(lambda ids: _check_count(list(ids), count))
    return [resolved.apply(lambda ids, i=i: ids[i]) for i in range(count)]


def _check_count(ids: list[str], count: int) -> list[str]:
    if len(ids) != count:
        raise ValueError(f"subnet_count={count} but subnet_ids resolved to {len(ids)}: {ids}")
    return ids
