"""Cost allocation: every taggable resource of the dev and prod stacks carries the stack's tags.

Cost Explorer splits a bill by user-defined cost allocation tags only on resources that carry
them (AWS Billing User Guide, "Using user-defined cost allocation tags",
https://docs.aws.amazon.com/awsaccountbilling/latest/aboutv2/custom-tags.html: tags must be
applied to resources and activated in the Billing console; untagged usage shows as "No tag").
So: run both stacks under mocks, find every recorded resource whose Pulumi type takes ``tags``,
and require ``project``, ``stack`` and ``environment``. The GPU instances and their volumes are
tagged at launch (launch template tag specifications and the group's propagated tags).
"""

from __future__ import annotations

import functools
import importlib
import inspect
from typing import Any

import pytest

from policy.guardrails.tags import NOT_COST_ALLOCATED_TYPES
from tests.pulumi_mocks import RecordingMocks
from tests.test_stack_dev import DEV, PROJECT, _mock_fixes, run_stack  # noqa: F401
from tests.test_stack_prod import PROD

STACK_TAG_KEYS = ("project", "stack", "environment")
ASG = "aws:autoscaling/group:Group"
LT = "aws:ec2/launchTemplate:LaunchTemplate"


@functools.cache
def takes_tags(type_: str) -> bool:
    """Whether the pulumi_aws resource class for ``type_`` has a ``tags`` argument."""
    if not type_.startswith("aws:"):
        return False  # components, awsx (the VPC is given the tags), dynamic providers
    _, module, name = type_.split(":")
    package_name = module.split("/")[0]
    package_name = "lambda_" if package_name == "lambda" else package_name  # a Python keyword
    package = importlib.import_module(f"pulumi_aws.{package_name}")
    cls = getattr(package, name, None)
    if cls is None:
        return False
    return "tags" in inspect.signature(cls._internal_init).parameters


def tag_dict(resource_type: str, tags: Any) -> dict[str, str]:
    if resource_type == ASG:  # a list of {key, value, propagateAtLaunch}
        return {t["key"]: t["value"] for t in tags or [] if t.get("propagateAtLaunch")}
    return dict(tags or {})


def untagged(mocks: RecordingMocks, expected: dict[str, str]) -> list[str]:
    missing = []
    for resource in mocks.resources:
        if not takes_tags(resource.type_) or resource.type_ in NOT_COST_ALLOCATED_TYPES:
            continue
        tags = tag_dict(resource.type_, resource.inputs.get("tags"))
        lacking = [k for k, v in expected.items() if tags.get(k) != v]
        if lacking:
            missing.append(f"{resource.type_} {resource.name} lacks {lacking}")
    return missing


@pytest.mark.parametrize(("config", "environment"), [(DEV, "dev"), (PROD, "prod")])
def test_every_taggable_resource_carries_the_stack_tags(
    config: dict[str, Any],
    environment: str,
    _mock_fixes: None,  # noqa: F811
) -> None:
    overrides = {"modelSyncSource": "s3://my-models/x"} if environment == "dev" else {}
    mocks, _ = run_stack(config, overrides)
    expected = {"project": PROJECT, "stack": "test", "environment": environment}
    checked = [r for r in mocks.resources if takes_tags(r.type_)]
    # the scan really sees the stack, including the types that used to go untagged
    assert {
        "aws:cloudwatch/logGroup:LogGroup",
        "aws:s3/bucket:Bucket",
        "aws:vpc/securityGroupIngressRule:SecurityGroupIngressRule",
        "aws:vpc/securityGroupEgressRule:SecurityGroupEgressRule",
        "aws:ecs/service:Service",
        "aws:lb/loadBalancer:LoadBalancer",
        "aws:efs/fileSystem:FileSystem",
        "aws:sfn/stateMachine:StateMachine",
    } <= {r.type_ for r in checked}
    assert untagged(mocks, expected) == []
    if environment == "prod":  # instances and volumes are tagged when the group launches them
        specs = mocks.one(LT).inputs["tagSpecifications"]
        assert {s["resourceType"] for s in specs} == {"instance", "volume"}
        for spec in specs:
            assert all(spec["tags"].get(k) == v for k, v in expected.items())


def test_grpc_routing_of_a_stack_with_a_certificate_carries_the_stack_tags(
    _mock_fixes: None,  # noqa: F811
) -> None:
    """With ``certificateArn`` the stack adds the gRPC target group, its listener rule and the
    gRPC port's security group rules (components/ecs_service/grpc_routing.py): tagged too."""
    cert = "arn:aws:acm:us-east-1:123456789012:certificate/c"
    mocks, _ = run_stack(PROD, {"certificateArn": cert})
    grpc = {r.type_ for r in mocks.resources if "grpc" in r.name and takes_tags(r.type_)}
    assert grpc == {
        "aws:lb/targetGroup:TargetGroup",
        "aws:lb/listenerRule:ListenerRule",
        "aws:vpc/securityGroupIngressRule:SecurityGroupIngressRule",
        "aws:vpc/securityGroupEgressRule:SecurityGroupEgressRule",
    }
    expected = {"project": PROJECT, "stack": "test", "environment": "prod"}
    assert untagged(mocks, expected) == []


def test_the_scan_knows_taggable_from_untaggable_types() -> None:
    assert takes_tags("aws:cloudwatch/logGroup:LogGroup")
    assert takes_tags("aws:vpc/securityGroupIngressRule:SecurityGroupIngressRule")
    assert not takes_tags("aws:iam/rolePolicy:RolePolicy")
    assert not takes_tags("aws:ecs/clusterCapacityProviders:ClusterCapacityProviders")


def test_a_stack_with_many_tags_uploads_the_demo_model_untagged(
    _mock_fixes: None,  # noqa: F811
) -> None:
    """An S3 object takes at most 10 tags (Amazon S3 User Guide, "Categorizing your objects
    using tags"); the stack's own tags (project, stack and the stack file's) may be more. The
    bucket carries them, which is where S3 allocates cost."""
    many = {f"team-tag-{i}": "x" for i in range(10)}
    mocks, _ = run_stack(DEV, {"tags": many})
    (demo,) = mocks.of_type("aws:s3/bucketObjectv2:BucketObjectv2")
    assert not demo.inputs.get("tags")
    bucket = next(r for r in mocks.of_type("aws:s3/bucket:Bucket") if "model-source" in r.name)
    assert len(bucket.inputs["tags"]) == 12 and bucket.inputs["tags"]["team-tag-9"] == "x"
