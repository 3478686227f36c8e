"""The cost-allocation-tags rule (policy/guardrails/tags.py).

Cost Explorer splits a bill by user-defined cost allocation tags only on resources that carry
them (AWS Billing User Guide, "Using user-defined cost allocation tags",
https://docs.aws.amazon.com/awsaccountbilling/latest/aboutv2/custom-tags.html). EC2 Auto Scaling
tags reach the instances only with PropagateAtLaunch (EC2 Auto Scaling User Guide, "Tag Auto
Scaling groups and instances").
"""

from __future__ import annotations

from typing import Any

import pytest

from policy.guardrails.evaluate import evaluate, load_stack_config
from policy.guardrails.model import UNKNOWN, Enforcement, StackResource
from policy.guardrails.tags import (
    AUTOSCALING_GROUP,
    NOT_COST_ALLOCATED_TYPES,
    TAGGABLE_TYPES,
    cost_allocation_tags,
)
from tests.test_stack_dev import DEV, _mock_fixes, run_stack  # noqa: F401
from tests.test_stack_prod import PROD
from tests.test_stack_tags import takes_tags

REQUIRED = {"requiredTags": ["project", "stack", "environment"]}
GOOD = {"project": "p", "stack": "s", "environment": "dev"}


def test_missing_and_empty_tags_are_reported_with_the_fix() -> None:
    (message,) = cost_allocation_tags(
        "aws:cloudwatch/logGroup:LogGroup", {"tags": {"project": "p", "stack": ""}}, REQUIRED
    )
    assert "['stack', 'environment']" in message and "Cost Explorer" in message
    assert cost_allocation_tags("aws:cloudwatch/logGroup:LogGroup", {}, REQUIRED)


def test_complete_unknown_and_untaggable_pass() -> None:
    assert cost_allocation_tags("aws:s3/bucket:Bucket", {"tags": GOOD}, REQUIRED) == []
    assert cost_allocation_tags("aws:s3/bucket:Bucket", {"tags": UNKNOWN}, REQUIRED) == []
    assert cost_allocation_tags("aws:iam/rolePolicy:RolePolicy", {}, REQUIRED) == []


def test_group_tags_count_only_when_propagated_to_instances() -> None:
    def group(propagate: bool) -> dict[str, Any]:
        return {
            "tags": [
                {"key": k, "value": v, "propagateAtLaunch": propagate} for k, v in GOOD.items()
            ]
        }

    assert cost_allocation_tags(AUTOSCALING_GROUP, group(True), REQUIRED) == []
    assert cost_allocation_tags(AUTOSCALING_GROUP, group(False), REQUIRED)


def test_nothing_is_required_without_config() -> None:
    assert cost_allocation_tags("aws:s3/bucket:Bucket", {}, {}) == []


@pytest.mark.parametrize("stack", ["dev", "prod"])
def test_stack_configs_require_project_stack_and_environment(stack: str) -> None:
    config = load_stack_config(stack)
    assert config["cost-allocation-tags"] == REQUIRED
    untagged = StackResource("aws:sns/topic:Topic", "t", {"tags": {"project": "p"}})
    (violation,) = [v for v in evaluate([untagged], config) if v.policy == "cost-allocation-tags"]
    assert violation.enforcement is Enforcement.MANDATORY


def test_the_type_list_covers_every_taggable_type_the_stacks_create() -> None:
    """The pack cannot import pulumi_aws; this keeps its explicit list honest."""
    assert all(takes_tags(t) for t in TAGGABLE_TYPES)
    seen: set[str] = set()
    for config, overrides in (
        (DEV, {"modelSyncSource": "s3://my-models/x"}),
        (PROD, {}),
        (DEV, {"capacity": "gpu", "offHoursStart": "07:00", "offHoursStop": "19:00"}),
    ):
        mocks, _ = run_stack(config, overrides)
        seen |= {r.type_ for r in mocks.resources if takes_tags(r.type_)}
    assert seen - TAGGABLE_TYPES - NOT_COST_ALLOCATED_TYPES == set()


def test_s3_objects_are_not_required_to_carry_the_stack_tags() -> None:
    """S3 allocates cost per bucket ("Using cost allocation S3 bucket tags",
    https://docs.aws.amazon.com/AmazonS3/latest/userguide/CostAllocTagging.html), and an object
    takes at most 10 tags ("Categorizing your objects using tags",
    https://docs.aws.amazon.com/AmazonS3/latest/userguide/object-tagging.html): requiring the
    stack's tags on objects would make a stack with more than 10 tags fail its upload."""
    obj = "aws:s3/bucketObjectv2:BucketObjectv2"
    assert takes_tags(obj) and obj in NOT_COST_ALLOCATED_TYPES
    assert cost_allocation_tags(obj, {}, REQUIRED) == []
