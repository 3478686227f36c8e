"""Each per-resource rule on props that pass and props that fail (camelCase, as the engine
sends them), including values the engine does not know yet during preview."""

from __future__ import annotations

import json
from typing import Any

import pytest

from policy.guardrails import compute, iam, network, storage
from policy.guardrails.model import UNKNOWN

EFS = "aws:efs/fileSystem:FileSystem"
TASK_DEF = "aws:ecs/taskDefinition:TaskDefinition"
LOG_GROUP = "aws:cloudwatch/logGroup:LogGroup"
SNS = "aws:sns/topic:Topic"
LT = "aws:ec2/launchTemplate:LaunchTemplate"
INSTANCE = "aws:ec2/instance:Instance"
SERVICE = "aws:ecs/service:Service"
CLUSTER = "aws:ecs/cluster:Cluster"
ECR = "aws:ecr/repository:Repository"
LB = "aws:lb/loadBalancer:LoadBalancer"
ROLE = "aws:iam/role:Role"
ROLE_POLICY = "aws:iam/rolePolicy:RolePolicy"
POLICY = "aws:iam/policy:Policy"


def efs_volume(transit: Any) -> dict[str, Any]:
    return {
        "name": "models",
        "efsVolumeConfiguration": {
            "fileSystemId": "fs-1",
            "transitEncryption": transit,
            "authorizationConfig": {"accessPointId": "fsap-1", "iam": "ENABLED"},
        },
    }


# -- storage ------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("props", "ok"),
    [
        ({"encrypted": True}, True),
        ({"encrypted": True, "kmsKeyId": "arn:aws:kms:k"}, True),
        ({"encrypted": UNKNOWN}, True),
        ({"encrypted": False}, False),
        ({}, False),
    ],
)
def test_efs_encrypted(props: dict[str, Any], ok: bool) -> None:
    messages = storage.efs_encrypted(EFS, props)
    assert (messages == []) is ok
    if not ok:
        assert "encrypted=True" in messages[0]


def test_efs_rule_ignores_other_types() -> None:
    assert storage.efs_encrypted(LOG_GROUP, {"encrypted": False}) == []


@pytest.mark.parametrize(
    ("volumes", "failures"),
    [
        ([efs_volume("ENABLED")], 0),
        ([{"name": "scratch"}], 0),  # not EFS: nothing to encrypt in transit
        (None, 0),
        (UNKNOWN, 0),
        ([efs_volume(UNKNOWN)], 0),
        ([efs_volume("DISABLED")], 1),
        ([efs_volume(None)], 1),
        ([efs_volume("ENABLED"), {**efs_volume("DISABLED"), "name": "cache"}], 1),
    ],
)
def test_ecs_efs_transit_encryption(volumes: Any, failures: int) -> None:
    props = {"family": "svc", "volumes": volumes} if volumes is not None else {"family": "svc"}
    messages = storage.ecs_efs_transit_encryption(TASK_DEF, props)
    assert len(messages) == failures
    assert all("transit_encryption='ENABLED'" in m for m in messages)


def test_transit_encryption_message_names_the_volume() -> None:
    bad = {**efs_volume("DISABLED"), "name": "cache"}
    (message,) = storage.ecs_efs_transit_encryption(
        TASK_DEF, {"volumes": [efs_volume("ENABLED"), bad]}
    )
    assert "'cache'" in message


@pytest.mark.parametrize(
    ("days", "ok"),
    [
        (90, True),
        (90.0, True),
        (1, True),
        (UNKNOWN, True),
        (0, False),
        (None, False),
        (True, False),
    ],
)
def test_log_group_retention(days: Any, ok: bool) -> None:
    props = {"name": "/ecs/app"} if days is None else {"retentionInDays": days}
    assert (storage.log_group_retention(LOG_GROUP, props) == []) is ok


@pytest.mark.parametrize(
    ("props", "ok"),
    [
        ({"kmsMasterKeyId": "arn:aws:kms:us-east-1:1:key/abc"}, True),
        ({"kmsMasterKeyId": UNKNOWN}, True),
        ({"kmsMasterKeyId": ""}, False),
        ({}, False),
    ],
)
def test_sns_topic_encrypted(props: dict[str, Any], ok: bool) -> None:
    assert (storage.sns_topic_encrypted(SNS, props) == []) is ok


# -- compute ------------------------------------------------------------------------------------
@pytest.mark.parametrize("resource_type", [LT, INSTANCE])
@pytest.mark.parametrize(
    ("options", "ok"),
    [
        ({"httpTokens": "required", "httpEndpoint": "enabled"}, True),
        ({"httpTokens": UNKNOWN}, True),
        (UNKNOWN, True),
        ({"httpEndpoint": "disabled", "httpTokens": "optional"}, True),  # no IMDS at all
        ({"httpTokens": "optional"}, False),
        ({"httpPutResponseHopLimit": 2}, False),  # AWS defaults to optional
        (None, False),
    ],
)
def test_imdsv2_required(resource_type: str, options: Any, ok: bool) -> None:
    props = {"imageId": "ami-1"} if options is None else {"metadataOptions": options}
    messages = compute.imdsv2_required(resource_type, props)
    assert (messages == []) is ok
    if not ok:
        assert "http_tokens': 'required'" in messages[0]


@pytest.mark.parametrize(
    ("props", "ok"),
    [
        ({"deploymentCircuitBreaker": {"enable": True, "rollback": True}}, True),
        ({"deploymentCircuitBreaker": UNKNOWN}, True),
        ({"deploymentController": {"type": "CODE_DEPLOY"}}, True),  # no breaker for blue/green
        ({"deploymentController": {"type": "EXTERNAL"}}, True),
        (
            {
                "deploymentController": {"type": "ECS"},
                "deploymentCircuitBreaker": {"enable": True, "rollback": False},
            },
            False,
        ),
        ({"deploymentCircuitBreaker": {"enable": False, "rollback": True}}, False),
        ({}, False),
    ],
)
def test_ecs_circuit_breaker(props: dict[str, Any], ok: bool) -> None:
    messages = compute.ecs_circuit_breaker(SERVICE, props)
    assert (messages == []) is ok
    if not ok:
        assert "'rollback': True" in messages[0]


@pytest.mark.parametrize(
    ("props", "ok"),
    [({"enableExecuteCommand": True}, True), ({"enableExecuteCommand": False}, False), ({}, False)],
)
def test_ecs_exec_enabled(props: dict[str, Any], ok: bool) -> None:
    assert (compute.ecs_exec_enabled(SERVICE, props) == []) is ok


@pytest.mark.parametrize(
    ("network_configuration", "ok"),
    [
        ({"assignPublicIp": False, "subnets": ["subnet-1"]}, True),
        ({"subnets": ["subnet-1"]}, True),
        ({"assignPublicIp": True, "subnets": ["subnet-1"]}, False),
    ],
)
def test_ecs_no_public_ip(network_configuration: dict[str, Any], ok: bool) -> None:
    props = {"networkConfiguration": network_configuration}
    assert (compute.ecs_no_public_ip(SERVICE, props) == []) is ok


@pytest.mark.parametrize(
    ("settings", "ok"),
    [
        ([{"name": "containerInsights", "value": "enabled"}], True),
        ([{"name": "containerInsights", "value": "enhanced"}], True),
        ([{"name": "containerInsights", "value": "disabled"}], False),
        ([], False),
        (None, False),
    ],
)
def test_container_insights(settings: Any, ok: bool) -> None:
    props = {} if settings is None else {"settings": settings}
    assert (compute.container_insights(CLUSTER, props) == []) is ok


@pytest.mark.parametrize(
    ("props", "ok"),
    [
        ({"imageScanningConfiguration": {"scanOnPush": True}}, True),
        ({"imageScanningConfiguration": {"scanOnPush": False}}, False),
        ({}, False),
    ],
)
def test_ecr_scan_on_push(props: dict[str, Any], ok: bool) -> None:
    assert (compute.ecr_scan_on_push(ECR, props) == []) is ok


def test_containers_non_root_flags_root_app_but_not_log_router() -> None:
    containers = [
        {"name": "app", "image": "app:1", "user": "10001:10001"},
        {
            "name": "log-router",
            "image": "fluent-bit",
            "firelensConfiguration": {"type": "fluentbit"},
        },
        {"name": "sidecar", "image": "busybox"},
        {"name": "rooty", "image": "busybox", "user": "0:0"},
    ]
    messages = compute.containers_non_root(
        TASK_DEF, {"containerDefinitions": json.dumps(containers)}
    )
    assert len(messages) == 2
    assert "'sidecar'" in messages[0] and "'rooty'" in messages[1]


def test_containers_non_root_passes_unprivileged_and_unknown() -> None:
    ok = json.dumps([{"name": "app", "user": "10001:10001"}])
    assert compute.containers_non_root(TASK_DEF, {"containerDefinitions": ok}) == []
    assert compute.containers_non_root(TASK_DEF, {"containerDefinitions": UNKNOWN}) == []


# -- network ------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("internal", "config", "ok"),
    [
        (True, {}, True),
        (UNKNOWN, {}, True),
        (False, {}, False),
        (None, {}, False),  # AWS default is internet-facing
        (False, {"allowPublicLoadBalancers": True}, True),
        (False, {"allowPublicLoadBalancers": False}, False),
    ],
)
def test_lb_internal(internal: Any, config: dict[str, Any], ok: bool) -> None:
    props = {"loadBalancerType": "application"}
    if internal is not None:
        props["internal"] = internal
    messages = network.lb_internal(LB, props, config)
    assert (messages == []) is ok
    if not ok:
        assert "allowPublicLoadBalancers" in messages[0]


def test_lb_internal_covers_alb_alias_token() -> None:
    assert network.lb_internal("aws:alb/loadBalancer:LoadBalancer", {"internal": False}) != []


@pytest.mark.parametrize(
    ("props", "ok"),
    [({"enableDeletionProtection": True}, True), ({"enableDeletionProtection": False}, False)],
)
def test_lb_deletion_protection(props: dict[str, Any], ok: bool) -> None:
    assert (network.lb_deletion_protection(LB, props) == []) is ok


# -- IAM ----------------------------------------------------------------------------------------
def doc(*statements: dict[str, Any]) -> str:
    return json.dumps({"Version": "2012-10-17", "Statement": list(statements)})


SCOPED = {"Effect": "Allow", "Action": ["logs:PutLogEvents"], "Resource": "arn:aws:logs:x"}
PASSROLE_SCOPED = {
    "Effect": "Allow",
    "Action": "iam:PassRole",
    "Resource": "arn:aws:iam::123456789012:role/task",
    "Condition": {"StringEquals": {"iam:PassedToService": "ecs-tasks.amazonaws.com"}},
}


@pytest.mark.parametrize(
    "policy",
    [
        doc(SCOPED),
        doc(SCOPED, PASSROLE_SCOPED),
        json.dumps({"Version": "2012-10-17", "Statement": SCOPED}),  # Statement as one object
        {"Version": "2012-10-17", "Statement": [SCOPED]},  # document as an object
        doc({"Effect": "Deny", "Action": "*", "Resource": "*"}),  # deny-all guard is fine
        doc({"Effect": "Allow", "Action": "s3:*", "Resource": "arn:aws:s3:::b/*"}),
        UNKNOWN,
    ],
)
@pytest.mark.parametrize("resource_type", [POLICY, ROLE_POLICY])
def test_iam_policy_passes(resource_type: str, policy: Any) -> None:
    assert iam.no_wildcard_iam(resource_type, {"policy": policy}) == []


@pytest.mark.parametrize(
    ("policy", "expected"),
    [
        (doc({"Effect": "Allow", "Action": "*", "Resource": "*"}), "Action '*'"),
        (
            doc({"Effect": "Allow", "Action": ["s3:GetObject", "*:*"], "Resource": "*"}),
            "Action '*'",
        ),
        (
            json.dumps({"Statement": {"Effect": "Allow", "Action": "*", "Resource": "arn:x"}}),
            "Action '*'",
        ),
        ({"Statement": [{"Effect": "Allow", "Action": "*", "Resource": "*"}]}, "Action '*'"),
        (doc({"Effect": "Allow", "Action": "iam:PassRole", "Resource": "*"}), "iam:PassRole"),
        (doc({"Effect": "Allow", "Action": ["IAM:passrole"], "Resource": ["*"]}), "iam:PassRole"),
        (doc({"Effect": "Allow", "Action": "iam:Pass*", "Resource": "*"}), "iam:PassRole"),
        (doc({"Effect": "Allow", "Action": "iam:*", "Resource": "*"}), "iam:PassRole"),
        (doc({"Effect": "Allow", "NotAction": "iam:*", "Resource": "*"}), "NotAction"),
        ("not json", "not a JSON policy document"),
    ],
)
def test_iam_policy_fails(policy: Any, expected: str) -> None:
    messages = iam.no_wildcard_iam(POLICY, {"policy": policy})
    assert len(messages) == 1
    assert expected in messages[0]


def test_iam_role_inline_policies_are_checked_each() -> None:
    props = {
        "assumeRolePolicy": doc({"Effect": "Allow", "Action": "sts:AssumeRole", "Resource": "*"}),
        "inlinePolicies": [
            {"name": "ok", "policy": doc(SCOPED)},
            {"name": "admin", "policy": doc({"Effect": "Allow", "Action": "*", "Resource": "*"})},
        ],
    }
    messages = iam.no_wildcard_iam(ROLE, props)
    assert len(messages) == 1
    assert "inlinePolicies[admin]" in messages[0]


def test_iam_role_trust_policy_alone_is_not_an_identity_policy() -> None:
    props = {"assumeRolePolicy": doc({"Effect": "Allow", "Action": "*", "Resource": "*"})}
    assert iam.no_wildcard_iam(ROLE, props) == []
