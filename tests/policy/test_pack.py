"""The pulumi_policy wiring, driven through the SDK's own argument types and proxies, and the
pack process itself, driven over gRPC the way the Pulumi engine drives it."""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import grpc
import pytest
from google.protobuf import empty_pb2, json_format, struct_pb2
from pulumi.runtime.proto import analyzer_pb2, analyzer_pb2_grpc
from pulumi_policy import (
    PolicyCustomTimeouts,
    PolicyResource,
    PolicyResourceOptions,
    ResourceValidationArgs,
    ResourceValidationPolicy,
    StackValidationArgs,
    StackValidationPolicy,
)
from pulumi_policy.proxy import UNKNOWN_BOOLEAN_VALUE, UNKNOWN_STRING_VALUE, unknown_checking_proxy

from policy.guardrails.model import UNKNOWN, ResourceRule
from policy.guardrails.pack import PACK_NAME, build_policies, plain
from policy.guardrails.registry import RULES

REPO = Path(__file__).resolve().parents[2]
OPTS = PolicyResourceOptions(False, [], None, [], PolicyCustomTimeouts(0, 0, 0), [])


def validate_resource(
    name: str, type_: str, props: dict[str, Any], config: dict[str, Any] | None = None
) -> list[str]:
    (policy,) = [p for p in build_policies() if p.name == name]
    assert isinstance(policy, ResourceValidationPolicy)
    args = ResourceValidationArgs(
        type_, unknown_checking_proxy(props), f"urn:{type_}", "r", OPTS, None, config
    )
    found: list[str] = []
    policy.validate(args, lambda message, urn=None: found.append(message))
    return found


def test_one_policy_per_rule_with_the_same_level() -> None:
    policies = build_policies()
    assert [p.name for p in policies] == [r.name for r in RULES]
    for policy, rule in zip(policies, RULES, strict=True):
        assert policy.enforcement_level.value == rule.enforcement.value
        expected = (
            ResourceValidationPolicy if isinstance(rule, ResourceRule) else StackValidationPolicy
        )
        assert isinstance(policy, expected)


def test_plain_turns_unknowns_into_the_sentinel_at_any_depth() -> None:
    proxied = unknown_checking_proxy(
        {"a": UNKNOWN_STRING_VALUE, "b": [1, UNKNOWN_BOOLEAN_VALUE, {"c": UNKNOWN_STRING_VALUE}]}
    )
    assert plain(proxied) == {"a": UNKNOWN, "b": [1, UNKNOWN, {"c": UNKNOWN}]}


def test_resource_policy_reports_through_the_sdk() -> None:
    assert (
        validate_resource("efs-encrypted", "aws:efs/fileSystem:FileSystem", {"encrypted": True})
        == []
    )
    (message,) = validate_resource("efs-encrypted", "aws:efs/fileSystem:FileSystem", {})
    assert "encrypted=True" in message


def test_resource_policy_judges_known_parts_when_others_are_unknown() -> None:
    volumes = [
        {"name": "a", "efsVolumeConfiguration": {"fileSystemId": UNKNOWN_STRING_VALUE}},
        {
            "name": "b",
            "efsVolumeConfiguration": {
                "fileSystemId": UNKNOWN_STRING_VALUE,
                "transitEncryption": "DISABLED",
            },
        },
    ]
    found = validate_resource(
        "ecs-efs-transit-encryption", "aws:ecs/taskDefinition:TaskDefinition", {"volumes": volumes}
    )
    assert len(found) == 2  # 'a' has no setting (defaults to DISABLED), 'b' disables it


def test_resource_policy_reads_its_config() -> None:
    lb = "aws:lb/loadBalancer:LoadBalancer"
    assert validate_resource("lb-internal", lb, {"internal": False}) != []
    assert (
        validate_resource(
            "lb-internal", lb, {"internal": False}, {"allowPublicLoadBalancers": True}
        )
        == []
    )


def test_stack_policy_resolves_dependencies_and_reports_the_urn() -> None:
    (policy,) = [p for p in build_policies() if p.name == "s3-public-access-blocked"]
    bucket = PolicyResource(
        "aws:s3/bucket:Bucket",
        unknown_checking_proxy({"bucket": UNKNOWN_STRING_VALUE}),
        "urn:bucket",
        "archive",
        OPTS,
        None,
        None,
        [],
        {},
    )
    flags = {
        "blockPublicAcls": True,
        "blockPublicPolicy": True,
        "ignorePublicAcls": True,
        "restrictPublicBuckets": False,
    }
    block = PolicyResource(
        "aws:s3/bucketPublicAccessBlock:BucketPublicAccessBlock",
        unknown_checking_proxy({"bucket": UNKNOWN_STRING_VALUE, **flags}),
        "urn:pab",
        "pab",
        OPTS,
        None,
        None,
        [bucket],
        {"bucket": [bucket]},
    )
    found: list[tuple[str, str | None]] = []
    policy.validate(
        StackValidationArgs([bucket, block]), lambda m, urn=None: found.append((m, urn))
    )
    ((message, urn),) = found
    assert urn == "urn:bucket"
    assert "restrictPublicBuckets" in message


# -- the pack process, as the engine runs it ----------------------------------------------------
@pytest.fixture(scope="module")
def analyzer() -> Iterator[analyzer_pb2_grpc.AnalyzerStub]:
    """`python -m pulumi.policy <engine> policy` is how the Python host starts a pack; it
    prints the port it serves on."""
    process = subprocess.Popen(
        [sys.executable, "-m", "pulumi.policy", "127.0.0.1:0", "policy"],
        cwd=REPO,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        line = process.stdout.readline() if process.stdout else ""
        if not line.strip().isdigit():
            process.kill()
            raise AssertionError(f"pack did not start: {line!r} {process.communicate()[1][-2000:]}")
        channel = grpc.insecure_channel(f"127.0.0.1:{line.strip()}")
        grpc.channel_ready_future(channel).result(timeout=20)
        yield analyzer_pb2_grpc.AnalyzerStub(channel)
        channel.close()
    finally:
        process.kill()
        process.wait(timeout=10)


def struct(props: dict[str, Any]) -> struct_pb2.Struct:
    return json_format.ParseDict(props, struct_pb2.Struct())


def test_pack_serves_every_policy(analyzer: analyzer_pb2_grpc.AnalyzerStub) -> None:
    info = analyzer.GetAnalyzerInfo(empty_pb2.Empty())
    assert info.name == PACK_NAME
    served = {p.name: p.enforcementLevel for p in info.policies}
    assert set(served) == {r.name for r in RULES}
    assert served["lb-internal"] == analyzer_pb2.MANDATORY
    assert served["lb-deletion-protection"] == analyzer_pb2.DISABLED


def test_pack_analyzes_a_resource(analyzer: analyzer_pb2_grpc.AnalyzerStub) -> None:
    request = analyzer_pb2.AnalyzeRequest(
        type="aws:cloudwatch/logGroup:LogGroup",
        properties=struct({"name": "/ecs/app"}),
        urn="urn:pulumi:dev::p::aws:cloudwatch/logGroup:LogGroup::app",
        name="app",
    )
    response = analyzer.Analyze(request)
    found = {(d.policyName, d.enforcementLevel) for d in response.diagnostics}
    assert found == {("log-group-retention", analyzer_pb2.MANDATORY)}
    request.properties.CopyFrom(struct({"name": "/ecs/app", "retentionInDays": 90}))
    assert list(analyzer.Analyze(request).diagnostics) == []


def test_pack_analyzes_a_stack_during_preview(analyzer: analyzer_pb2_grpc.AnalyzerStub) -> None:
    group = analyzer_pb2.AnalyzerResource(
        type="aws:ec2/securityGroup:SecurityGroup",
        name="alb-sg",
        urn="urn:sg",
        properties=struct({"tags": {"onnx-ecs:role": "public-alb"}}),
    )
    rule = analyzer_pb2.AnalyzerResource(
        type="aws:vpc/securityGroupIngressRule:SecurityGroupIngressRule",
        name="in-443",
        urn="urn:rule",
        properties=struct(
            {
                "securityGroupId": UNKNOWN_STRING_VALUE,
                "ipProtocol": "tcp",
                "fromPort": 443,
                "toPort": 443,
                "cidrIpv4": "0.0.0.0/0",
            }
        ),
        propertyDependencies={
            "securityGroupId": analyzer_pb2.AnalyzerPropertyDependencies(urns=["urn:sg"])
        },
    )
    response = analyzer.AnalyzeStack(analyzer_pb2.AnalyzeStackRequest(resources=[group, rule]))
    world = [d for d in response.diagnostics if d.policyName == "no-world-ingress"]
    assert len(world) == 1 and world[0].urn == "urn:rule"
    assert "attached to no load balancer" in world[0].message


def test_pack_config_file_shape_is_what_the_engine_sends(
    analyzer: analyzer_pb2_grpc.AnalyzerStub,
) -> None:
    config = json.loads((REPO / "policy" / "config" / "prod.json").read_text())
    assert all(isinstance(v, str | dict) for v in config.values())
    request = analyzer_pb2.ConfigureAnalyzerRequest(
        policyConfig={
            "lb-internal": analyzer_pb2.PolicyConfig(
                enforcementLevel=analyzer_pb2.MANDATORY,
                properties=struct({"allowPublicLoadBalancers": True}),
            )
        }
    )
    analyzer.Configure(request)
    lb = analyzer_pb2.AnalyzeRequest(
        type="aws:lb/loadBalancer:LoadBalancer",
        properties=struct({"internal": False}),
        urn="urn:lb",
        name="alb",
    )
    assert [d.policyName for d in analyzer.Analyze(lb).diagnostics] == []
