"""The harness on a real Pulumi program under the mocks: references between resources resolve
by value (``bucket=b.id``), as they do after deployment."""

from __future__ import annotations

import json

import pulumi_aws as aws

from policy.guardrails.model import Enforcement
from tests.policy.harness import check_recorded, check_stack, mandatory
from tests.pulumi_mocks import run

TAG = {"onnx-ecs:role": "public-alb"}
FLAGS = {
    "block_public_acls": True,
    "block_public_policy": True,
    "ignore_public_acls": True,
    "restrict_public_buckets": True,
}


def public_alb(tags: dict[str, str]) -> None:
    group = aws.ec2.SecurityGroup("alb-sg", vpc_id="vpc-1", tags=tags)
    for port in (80, 443):
        aws.vpc.SecurityGroupIngressRule(
            f"alb-in-{port}",
            security_group_id=group.id,
            ip_protocol="tcp",
            from_port=port,
            to_port=port,
            cidr_ipv4="0.0.0.0/0",
        )
    aws.lb.LoadBalancer("alb", internal=False, security_groups=[group.id], subnets=["a", "b"])


def archive(with_block: bool) -> None:
    bucket = aws.s3.Bucket("archive")
    if with_block:
        aws.s3.BucketPublicAccessBlock("archive-pab", bucket=bucket.id, **FLAGS)
    aws.s3.BucketServerSideEncryptionConfiguration(
        "archive-sse",
        bucket=bucket.id,
        rules=[
            {"apply_server_side_encryption_by_default": {"sse_algorithm": "AES256"}},
        ],
    )


def test_compliant_program_has_no_mandatory_violation() -> None:
    mocks = run(lambda: (public_alb(TAG), archive(with_block=True)))
    violations = check_recorded(
        mocks.resources, {"lb-internal": {"allowPublicLoadBalancers": True}}
    )
    assert mandatory(violations) == [], "\n".join(map(str, violations))


def test_untagged_public_group_and_unblocked_bucket_are_found() -> None:
    mocks = run(lambda: (public_alb({}), archive(with_block=False)))
    found = {(v.policy, v.resource_name) for v in mandatory(check_recorded(mocks.resources))}
    assert found == {
        ("no-world-ingress", "alb-in-80"),
        ("no-world-ingress", "alb-in-443"),
        ("lb-internal", "alb"),
        ("s3-public-access-blocked", "archive"),
    }


def test_iam_documents_from_json_dumps_are_checked() -> None:
    admin = json.dumps({"Statement": [{"Effect": "Allow", "Action": "*", "Resource": "*"}]})
    mocks = run(lambda: aws.iam.Policy("admin", policy=admin))
    (violation,) = check_recorded(mocks.resources)
    assert (violation.policy, violation.enforcement) == ("iam-no-wildcards", Enforcement.MANDATORY)


def test_check_stack_uses_the_stack_config_file() -> None:
    tags = {"project": "p", "stack": "s", "environment": "dev"}  # cost-allocation-tags
    mocks = run(lambda: aws.lb.LoadBalancer("alb", internal=True, subnets=["a"], tags=tags))
    assert {v.policy for v in check_stack(mocks.resources, "dev")} == set()
    assert {v.policy for v in check_stack(mocks.resources, "prod")} == {"lb-deletion-protection"}
