"""Cost allocation: taggable resources carry the tags Cost Explorer splits the bill by.

AWS Billing splits costs by user-defined cost allocation tags only on resources that carry them
(and once the keys are activated in the Billing console); untagged usage lands in "No tag". The
program tags every resource with ``project``, ``stack`` and the stack file's ``tags`` (prod and
dev add ``environment``). The pack's environment has no ``pulumi_aws`` to ask which types take
tags, so the list is explicit; tests/policy/test_cost_allocation_tags.py checks it covers every
taggable type the stacks create.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from .model import EMPTY, is_unknown

AUTOSCALING_GROUP = "aws:autoscaling/group:Group"
# None required unless the pack's config names them (policy/config/<stack>.json does, for the
# project's stacks): a generic pack cannot know another program's tag keys.
DEFAULT_REQUIRED_TAGS: tuple[str, ...] = ()

TAGGABLE_TYPES: frozenset[str] = frozenset(
    {
        "aws:appautoscaling/target:Target",
        AUTOSCALING_GROUP,
        "aws:backup/plan:Plan",
        "aws:backup/vault:Vault",
        "aws:cloudwatch/eventRule:EventRule",
        "aws:cloudwatch/logGroup:LogGroup",
        "aws:cloudwatch/metricAlarm:MetricAlarm",
        "aws:ec2/eip:Eip",
        "aws:ec2/instance:Instance",
        "aws:ec2/launchTemplate:LaunchTemplate",
        "aws:ec2/natGateway:NatGateway",
        "aws:ec2/securityGroup:SecurityGroup",
        "aws:ec2/subnet:Subnet",
        "aws:ec2/vpc:Vpc",
        "aws:ecr/repository:Repository",
        "aws:ecs/capacityProvider:CapacityProvider",
        "aws:ecs/cluster:Cluster",
        "aws:ecs/service:Service",
        "aws:ecs/taskDefinition:TaskDefinition",
        "aws:efs/accessPoint:AccessPoint",
        "aws:efs/fileSystem:FileSystem",
        "aws:iam/instanceProfile:InstanceProfile",
        "aws:iam/role:Role",
        "aws:kms/key:Key",
        "aws:lambda/function:Function",
        "aws:lb/listener:Listener",
        "aws:lb/loadBalancer:LoadBalancer",
        "aws:lb/targetGroup:TargetGroup",
        "aws:s3/bucket:Bucket",
        "aws:s3/bucketV2:BucketV2",
        "aws:sfn/stateMachine:StateMachine",
        "aws:sns/topic:Topic",
        "aws:sqs/queue:Queue",
        "aws:vpc/securityGroupEgressRule:SecurityGroupEgressRule",
        "aws:vpc/securityGroupIngressRule:SecurityGroupIngressRule",
    }
)

# Types that take tags but are not where the cost is allocated: S3 bills storage and requests per
# bucket (the bucket carries the tags), and an object takes at most 10 tags, fewer than a stack
# may carry (Amazon S3 User Guide, "Categorizing your objects using tags").
NOT_COST_ALLOCATED_TYPES: frozenset[str] = frozenset({"aws:s3/bucketObjectv2:BucketObjectv2"})


def _tags(resource_type: str, tags: Any) -> dict[str, Any] | None:
    """The tags as a dict; None when unknown (preview). Auto Scaling groups take a list of
    {key, value, propagateAtLaunch}: only propagated tags reach the instances that cost."""
    if is_unknown(tags):
        return None
    if resource_type == AUTOSCALING_GROUP:
        found: dict[str, Any] = {}
        for tag in tags or []:
            if is_unknown(tag) or not isinstance(tag, Mapping):
                return None
            if tag.get("propagateAtLaunch") is True:
                found[str(tag.get("key"))] = tag.get("value")
        return found
    return dict(tags) if isinstance(tags, Mapping) else {}


def cost_allocation_tags(
    resource_type: str, props: Mapping[str, Any], config: Mapping[str, Any] = EMPTY
) -> list[str]:
    """Every required tag key is present with a non-empty value."""
    if resource_type not in TAGGABLE_TYPES:
        return []
    tags = _tags(resource_type, props.get("tags"))
    if tags is None:
        return []
    required = list(config.get("requiredTags", DEFAULT_REQUIRED_TAGS))
    if not required:
        return []
    missing = [
        key for key in required if key not in tags or (not is_unknown(tags[key]) and not tags[key])
    ]
    if not missing:
        return []
    how = (
        "tags=[{key, value, propagate_at_launch=True}]"
        if resource_type == AUTOSCALING_GROUP
        else "tags={...}"
    )
    return [
        f"missing cost allocation tag(s) {missing} (required: {required}). Pass the stack's "
        f"tags ({how}: project, stack and the stack file's tags) so Cost Explorer can split "
        "the bill; untagged usage shows as 'No tag'."
    ]
