"""Stack-level rules: world ingress (a rule's group is another resource) and S3 buckets paired
with their public access block / encryption resources, matched by value (after deployment, and
under mocks) and by property dependency (during preview, when ids are unknown)."""

from __future__ import annotations

from typing import Any

import pytest

from policy.guardrails import network, s3
from policy.guardrails.model import UNKNOWN, StackResource

SG = "aws:ec2/securityGroup:SecurityGroup"
SG_RULE = "aws:ec2/securityGroupRule:SecurityGroupRule"
VPC_IN = "aws:vpc/securityGroupIngressRule:SecurityGroupIngressRule"
LB = "aws:lb/loadBalancer:LoadBalancer"
SERVICE = "aws:ecs/service:Service"
BUCKET = "aws:s3/bucket:Bucket"
PAB = "aws:s3/bucketPublicAccessBlock:BucketPublicAccessBlock"
SSE = "aws:s3/bucketServerSideEncryptionConfiguration:BucketServerSideEncryptionConfiguration"
PUBLIC_TAG = {network.PUBLIC_ALB_TAG_KEY: network.PUBLIC_ALB_TAG_VALUE}


def res(type_: str, name: str, ident: str | None = None, deps: Any = None, **props: Any):
    return StackResource(
        type_=type_,
        name=name,
        props=props,
        urn=f"urn:{name}",
        identities=frozenset({ident} if ident else ()),
        dependencies=deps or {},
    )


def alb_group(tags: dict[str, str] | None = PUBLIC_TAG, **props: Any) -> StackResource:
    return res(SG, "alb-sg", "sg-alb", vpcId="vpc-1", tags=tags or {}, **props)


def world_rule(port: int = 443, to_port: int | None = None, **props: Any) -> StackResource:
    base = {
        "securityGroupId": "sg-alb",
        "ipProtocol": "tcp",
        "fromPort": float(port),
        "toPort": float(to_port if to_port is not None else port),
        "cidrIpv4": "0.0.0.0/0",
    }
    return res(VPC_IN, f"alb-in-{port}", **{**base, **props})


def alb(groups: Any = ("sg-alb",), deps: Any = None) -> StackResource:
    return res(LB, "alb", "arn:lb", deps, internal=False, securityGroups=list(groups))


# -- no-world-ingress ---------------------------------------------------------------------------
def test_public_alb_listener_ports_may_admit_the_world() -> None:
    stack = [alb_group(), world_rule(80), world_rule(443), alb()]
    assert network.no_world_ingress(stack) == []


def test_untagged_group_may_not_admit_the_world() -> None:
    stack = [alb_group(tags=None), world_rule(443), alb()]
    ((resource, message),) = network.no_world_ingress(stack)
    assert resource.name == "alb-in-443"
    assert "not tagged onnx-ecs:role=public-alb" in message


def test_tagged_group_on_no_load_balancer_is_not_a_public_alb_group() -> None:
    ((_, message),) = network.no_world_ingress([alb_group(), world_rule(443)])
    assert "attached to no load balancer" in message


def test_tagged_group_also_on_tasks_is_refused() -> None:
    service = res(SERVICE, "svc", networkConfiguration={"securityGroups": ["sg-alb"]})
    ((_, message),) = network.no_world_ingress([alb_group(), world_rule(443), alb(), service])
    assert "also attached to svc" in message


@pytest.mark.parametrize(
    ("rule", "needle"),
    [
        (world_rule(8000), "port 8000"),
        (world_rule(0, 65535), "ports 0-65535"),
        (world_rule(443, ipProtocol="-1"), "ports 0-65535"),
        (world_rule(22, cidrIpv4=None, cidrIpv6="::/0"), "::/0"),
    ],
)
def test_other_ports_from_the_world_are_refused_even_on_a_public_alb(
    rule: StackResource, needle: str
) -> None:
    findings = network.no_world_ingress([alb_group(), rule, alb()])
    assert len(findings) == 1
    assert needle in findings[0][1]


def test_allowed_ports_come_from_config() -> None:
    stack = [alb_group(), world_rule(8443), alb()]
    assert network.no_world_ingress(stack) != []
    assert network.no_world_ingress(stack, {"publicListenerPorts": [8443]}) == []


def test_vpc_cidr_and_group_references_are_not_world_ingress() -> None:
    task_in = res(
        VPC_IN,
        "task-in",
        securityGroupId="sg-task",
        ipProtocol="tcp",
        fromPort=8000.0,
        toPort=8000.0,
        referencedSecurityGroupId="sg-alb",
    )
    internal = world_rule(80, cidrIpv4="10.0.0.0/16")
    assert network.no_world_ingress([alb_group(tags=None), task_in, internal]) == []


def test_inline_ingress_on_a_group_is_checked() -> None:
    ssh = {"protocol": "tcp", "fromPort": 22, "toPort": 22, "cidrBlocks": ["0.0.0.0/0"]}
    group = res(SG, "bastion", "sg-b", ingress=[ssh])
    ((resource, message),) = network.no_world_ingress([group])
    assert resource.name == "bastion" and "port 22" in message
    https = {"protocol": "tcp", "fromPort": 443, "toPort": 443, "ipv6CidrBlocks": ["::/0"]}
    tagged = alb_group(ingress=[https])
    assert network.no_world_ingress([tagged, alb()]) == []


def test_security_group_rule_resource_type_ingress_only() -> None:
    common = {"securityGroupId": "sg-alb", "protocol": "tcp", "cidrBlocks": ["0.0.0.0/0"]}
    ingress = res(SG_RULE, "in", type="ingress", fromPort=5432, toPort=5432, **common)
    egress = res(SG_RULE, "out", type="egress", fromPort=0, toPort=65535, **common)
    findings = network.no_world_ingress([alb_group(), ingress, egress, alb()])
    assert [r.name for r, _ in findings] == ["in"]


def test_group_outside_the_stack_cannot_be_shown_public() -> None:
    rule = world_rule(443, securityGroupId="sg-elsewhere")
    ((_, message),) = network.no_world_ingress([rule])
    assert "not in this stack" in message


def test_preview_matches_by_dependency_when_ids_are_unknown() -> None:
    group = res(SG, "alb-sg", None, tags=PUBLIC_TAG)
    rule = res(
        VPC_IN,
        "alb-in-443",
        deps={"securityGroupId": ["urn:alb-sg"]},
        securityGroupId=UNKNOWN,
        ipProtocol="tcp",
        fromPort=443.0,
        toPort=443.0,
        cidrIpv4="0.0.0.0/0",
    )
    lb = alb(groups=[UNKNOWN], deps={"securityGroups": ["urn:alb-sg"]})
    assert network.no_world_ingress([group, rule, lb]) == []
    assert network.no_world_ingress([group, rule]) != []  # same, with no load balancer


def test_without_property_dependencies_any_dependency_of_an_unknown_reference_counts() -> None:
    new_bucket = res(BUCKET, "archive", None)
    other = res(BUCKET, "other", None)
    pab = StackResource(
        PAB, "pab", {"bucket": UNKNOWN, **FLAGS}, "urn:pab", depends_on=("urn:archive",)
    )
    findings = s3.s3_public_access_blocked([new_bucket, other, pab])
    assert [r.name for r, _ in findings] == ["other"]
    known = StackResource(
        PAB, "pab", {"bucket": "x-id", **FLAGS}, "urn:pab", depends_on=("urn:archive",)
    )
    assert len(s3.s3_public_access_blocked([new_bucket, known])) == 1  # a known value decides


def test_unknown_cidr_port_or_tags_are_left_for_the_update() -> None:
    assert network.no_world_ingress([world_rule(443, cidrIpv4=UNKNOWN)]) == []
    assert network.no_world_ingress([world_rule(443, fromPort=UNKNOWN)]) == []
    group = res(SG, "alb-sg", "sg-alb", tags=UNKNOWN)
    assert network.no_world_ingress([group, world_rule(443)]) == []


def test_resource_level_dependencies_attach_a_group_when_property_ones_are_missing() -> None:
    group = res(SG, "alb-sg", None, tags=PUBLIC_TAG)
    rule = StackResource(
        VPC_IN,
        "alb-in-443",
        {
            "securityGroupId": UNKNOWN,
            "ipProtocol": "tcp",
            "fromPort": 443.0,
            "toPort": 443.0,
            "cidrIpv4": "0.0.0.0/0",
        },
        "urn:rule",
        depends_on=("urn:alb-sg",),
    )
    lb = StackResource(
        LB,
        "alb",
        {"internal": False, "securityGroups": [UNKNOWN]},
        "urn:lb",
        depends_on=("urn:alb-sg",),
    )
    assert network.no_world_ingress([group, rule, lb]) == []
    assert network.no_world_ingress([group, rule]) != []


# -- S3 -----------------------------------------------------------------------------------------
FLAGS = dict.fromkeys(s3.BLOCK_FLAGS, True)


def bucket(name: str = "archive") -> StackResource:
    return res(BUCKET, name, f"{name}-id")


def block(target: str = "archive-id", **flags: Any) -> StackResource:
    return res(PAB, f"pab-{target}", bucket=target, **{**FLAGS, **flags})


def test_bucket_with_full_public_access_block_passes() -> None:
    assert s3.s3_public_access_blocked([bucket(), block()]) == []


def test_bucket_without_public_access_block_fails() -> None:
    ((resource, message),) = s3.s3_public_access_blocked([bucket(), block("other-id")])
    assert resource.name == "archive"
    assert "no public access block" in message and "BucketPublicAccessBlock" in message


@pytest.mark.parametrize("flag", s3.BLOCK_FLAGS)
def test_each_of_the_four_flags_is_required(flag: str) -> None:
    ((_, message),) = s3.s3_public_access_blocked([bucket(), block(**{flag: False})])
    assert flag in message


def test_bucket_v2_is_covered_and_account_block_satisfies_all() -> None:
    v2 = res("aws:s3/bucketV2:BucketV2", "old", "old-id")
    assert s3.s3_public_access_blocked([v2]) != []
    account = res(s3.ACCOUNT_PUBLIC_ACCESS_BLOCK, "account", **FLAGS)
    assert s3.s3_public_access_blocked([v2, account]) == []


def test_public_access_block_matched_by_dependency_during_preview() -> None:
    new_bucket = res(BUCKET, "archive", None)
    pab = res(PAB, "pab", deps={"bucket": ["urn:archive"]}, bucket=UNKNOWN, **FLAGS)
    assert s3.s3_public_access_blocked([new_bucket, pab]) == []


def test_encryption_declared_passes_with_config_or_inline_rule() -> None:
    sse = res(SSE, "sse", bucket="archive-id", rules=[{"bucketKeyEnabled": True}])
    assert s3.s3_encryption_declared([bucket(), sse]) == []
    inline = res(BUCKET, "legacy", "legacy-id", serverSideEncryptionConfiguration={"rule": {}})
    assert s3.s3_encryption_declared([inline]) == []


def test_encryption_not_declared_is_reported() -> None:
    ((resource, message),) = s3.s3_encryption_declared([bucket()])
    assert resource.name == "archive" and "SSE-S3" in message
