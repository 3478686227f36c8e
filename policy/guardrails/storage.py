"""Encryption and retention of data at rest and in transit: EFS, ECS volumes, logs, SNS."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from .model import EMPTY, as_list, is_unknown

EFS_FILE_SYSTEM = "aws:efs/fileSystem:FileSystem"
TASK_DEFINITION = "aws:ecs/taskDefinition:TaskDefinition"
LOG_GROUP = "aws:cloudwatch/logGroup:LogGroup"
SNS_TOPIC = "aws:sns/topic:Topic"


def efs_encrypted(
    resource_type: str, props: Mapping[str, Any], config: Mapping[str, Any] = EMPTY
) -> list[str]:
    """EFS holds the model files; encryption at rest cannot be turned on after creation."""
    if resource_type != EFS_FILE_SYSTEM:
        return []
    encrypted = props.get("encrypted")
    if is_unknown(encrypted) or encrypted is True:
        return []
    return [
        f"encrypted is {encrypted!r}. Set encrypted=True on aws.efs.FileSystem (optionally "
        "kms_key_id=<CMK ARN>). It can only be set at creation: the file system will be replaced."
    ]


def ecs_efs_transit_encryption(
    resource_type: str, props: Mapping[str, Any], config: Mapping[str, Any] = EMPTY
) -> list[str]:
    """NFS traffic between the task and EFS is plain text unless transit encryption is on."""
    if resource_type != TASK_DEFINITION:
        return []
    volumes = props.get("volumes")
    if is_unknown(volumes):
        return []
    messages = []
    for volume in as_list(volumes):
        if not isinstance(volume, Mapping):
            continue
        efs = volume.get("efsVolumeConfiguration")
        if efs is None or is_unknown(efs) or not isinstance(efs, Mapping):
            continue
        transit = efs.get("transitEncryption")
        if is_unknown(transit) or transit == "ENABLED":
            continue
        messages.append(
            f"volume {volume.get('name')!r}: efsVolumeConfiguration.transitEncryption is "
            f"{transit!r}. Set transit_encryption='ENABLED' (EfsModelStore.volume() does), "
            "with authorization_config iam='ENABLED' and an access point."
        )
    return messages


def log_group_retention(
    resource_type: str, props: Mapping[str, Any], config: Mapping[str, Any] = EMPTY
) -> list[str]:
    """A log group without retention keeps (and bills) every line forever."""
    if resource_type != LOG_GROUP:
        return []
    days = props.get("retentionInDays")
    if is_unknown(days):
        return []
    if isinstance(days, int | float) and not isinstance(days, bool) and days > 0:
        return []
    return [
        f"retentionInDays is {days!r}. Set retention_in_days on aws.cloudwatch.LogGroup to one "
        "of the values CloudWatch accepts (1, 3, 5, 7, 14, 30, 60, 90, 120, 150, 180, 365, ...)."
    ]


def sns_topic_encrypted(
    resource_type: str, props: Mapping[str, Any], config: Mapping[str, Any] = EMPTY
) -> list[str]:
    """Alarm and failure notifications can carry task details; encrypt them at rest."""
    if resource_type != SNS_TOPIC:
        return []
    key = props.get("kmsMasterKeyId")
    if is_unknown(key) or (isinstance(key, str) and key):
        return []
    return [
        "kmsMasterKeyId is not set. Set kms_master_key_id to a customer managed KMS key whose "
        "key policy lets events.amazonaws.com call kms:GenerateDataKey* and kms:Decrypt "
        "(EventBridge cannot publish to a topic encrypted with the AWS managed alias/aws/sns)."
    ]
