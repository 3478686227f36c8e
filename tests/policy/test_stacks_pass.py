"""Every committed stack (``Pulumi.<stack>.yaml``) passes the policy pack with no mandatory
violation, under the policy config CI passes for it (``policy/config/<stack>.json``).

This is the offline twin of CI's ``pulumi preview --policy-pack policy`` per stack: the program
runs under mocks (tests/test_stack_dev.py's ``run_stack``, which fills in awsx outputs), then
the pack's rules run over everything it registered.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml

from policy.guardrails.evaluate import CONFIG_DIR
from policy.guardrails.model import Enforcement
from policy.guardrails.network import PUBLIC_ALB_TAG_KEY, PUBLIC_ALB_TAG_VALUE
from tests.policy.harness import check_recorded, check_stack, mandatory
from tests.pulumi_mocks import Recorded
from tests.test_stack_dev import _mock_fixes, run_stack  # noqa: F401  (autouse mock fixes)

ROOT = Path(__file__).resolve().parents[2]
STACKS = sorted(p.name.split(".")[1] for p in ROOT.glob("Pulumi.*.yaml"))


def stack_config(stack: str) -> dict[str, Any]:
    return yaml.safe_load((ROOT / f"Pulumi.{stack}.yaml").read_text())["config"]


def test_there_is_a_dev_stack() -> None:
    assert "dev" in STACKS


@pytest.mark.parametrize("stack", STACKS)
def test_every_stack_has_a_policy_config(stack: str) -> None:
    assert (CONFIG_DIR / f"{stack}.json").is_file(), f"add policy/config/{stack}.json"


@pytest.mark.parametrize("stack", STACKS)
def test_stack_has_no_mandatory_violation(stack: str) -> None:
    mocks, _ = run_stack(stack_config(stack))
    violations = check_stack(mocks.resources, stack)
    assert mandatory(violations) == [], "\n".join(map(str, mandatory(violations)))


@pytest.mark.parametrize("stack", STACKS)
def test_stack_with_prebuilt_images_has_no_mandatory_violation(stack: str) -> None:
    """What CI deploys: images built once per commit, passed as config."""
    images = {"serviceImage": "1.dkr.ecr/svc:abc", "logRouterImage": "1.dkr.ecr/router:abc"}
    mocks, _ = run_stack(stack_config(stack), images)
    assert mandatory(check_stack(mocks.resources, stack)) == []


def with_alb_group_tags(resources: list[Recorded], tags: dict[str, str]) -> list[Recorded]:
    """The recorded stack with the ALB security group's tags replaced."""
    out = []
    for r in resources:
        if r.type_ == "aws:ec2/securityGroup:SecurityGroup" and r.name.endswith("-alb-sg"):
            r = Recorded(r.type_, r.name, {**r.inputs, "tags": tags}, r.options)
        out.append(r)
    return out


def test_public_https_variant_passes_only_when_allowed_and_the_alb_group_is_tagged() -> None:
    """A public ALB needs the stack's consent (policy config) and the public-alb tag on its
    security group; everything else in that variant already complies."""
    cert = "arn:aws:acm:us-east-1:123456789012:certificate/abc"
    mocks, _ = run_stack(stack_config("dev"), {"publicLoadBalancer": True, "certificateArn": cert})
    allow = {"lb-internal": {"allowPublicLoadBalancers": True}}
    tagged = with_alb_group_tags(mocks.resources, {PUBLIC_ALB_TAG_KEY: PUBLIC_ALB_TAG_VALUE})
    untagged = with_alb_group_tags(mocks.resources, {"environment": "dev"})
    assert mandatory(check_recorded(tagged, allow)) == []
    assert {v.policy for v in mandatory(check_recorded(tagged, {}))} == {"lb-internal"}
    found = mandatory(check_recorded(untagged, allow))
    assert {v.policy for v in found} == {"no-world-ingress"}
    assert sorted(v.resource_name for v in found) == ["onnx-test-alb-in-443", "onnx-test-alb-in-80"]


def test_the_check_is_live_a_world_open_task_port_fails_the_dev_stack() -> None:
    """Guard against a harness that passes everything: break one thing, see it caught."""
    mocks, _ = run_stack(stack_config("dev"))
    rule = next(
        r
        for r in mocks.of_type("aws:vpc/securityGroupIngressRule:SecurityGroupIngressRule")
        if r.inputs.get("fromPort") == 8000
    )
    rule.inputs = {**rule.inputs, "cidrIpv4": "0.0.0.0/0"}
    rule.inputs.pop("referencedSecurityGroupId", None)
    found = mandatory(check_stack(mocks.resources, "dev"))
    assert [(v.policy, v.resource_name) for v in found] == [("no-world-ingress", rule.name)]
    assert found[0].enforcement is Enforcement.MANDATORY
