"""Who can reach what: load balancer exposure and security group ingress from the internet.

A security group may admit 0.0.0.0/0 or ::/0 only if it is a public load balancer's group:
it carries the tag ``onnx-ecs:role = public-alb``, it is attached to a load balancer, it is
attached to nothing that runs code (ECS services, instances, launch templates), and the open
ports are listener ports (policy config ``publicListenerPorts``, default 80 and 443). The tag
alone proves nothing, which is why the attachment is checked; whether the stack may have a
public load balancer at all is the ``lb-internal`` policy's question (``allowPublicLoadBalancers``).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from .model import (
    EMPTY,
    StackResource,
    as_list,
    is_unknown,
    refers_to,
    tags_of,
)

LOAD_BALANCER_TYPES = frozenset(
    {"aws:lb/loadBalancer:LoadBalancer", "aws:alb/loadBalancer:LoadBalancer"}
)
SECURITY_GROUP = "aws:ec2/securityGroup:SecurityGroup"
SECURITY_GROUP_RULE = "aws:ec2/securityGroupRule:SecurityGroupRule"
VPC_INGRESS_RULE = "aws:vpc/securityGroupIngressRule:SecurityGroupIngressRule"
# Resources that run workloads: a world-open group attached to one of these is never a
# "load balancer's group", whatever its tag says.
_COMPUTE_TYPES = frozenset(
    {
        "aws:ecs/service:Service",
        "aws:ec2/instance:Instance",
        "aws:ec2/launchTemplate:LaunchTemplate",
        "aws:ecs/taskSet:TaskSet",
        "aws:lambda/function:Function",
    }
)

PUBLIC_ALB_TAG_KEY = "onnx-ecs:role"
PUBLIC_ALB_TAG_VALUE = "public-alb"
DEFAULT_PUBLIC_PORTS = (80, 443)
WORLD_CIDRS = frozenset({"0.0.0.0/0", "::/0"})


def lb_internal(
    resource_type: str, props: Mapping[str, Any], config: Mapping[str, Any] = EMPTY
) -> list[str]:
    """Load balancers are internal unless this stack's policy config allows public ones."""
    if resource_type not in LOAD_BALANCER_TYPES:
        return []
    internal = props.get("internal")
    if is_unknown(internal) or internal is True:
        return []
    if config.get("allowPublicLoadBalancers") is True:
        return []
    return [
        "load balancer is internet-facing. Set internal=True, or, if this stack is meant to be "
        "public, allow it in policy/config/<stack>.json: "
        '{"lb-internal": {"allowPublicLoadBalancers": true}} (reviewed like any other change).'
    ]


def lb_deletion_protection(
    resource_type: str, props: Mapping[str, Any], config: Mapping[str, Any] = EMPTY
) -> list[str]:
    """A production ALB's DNS name is what clients point at; losing it is an outage."""
    if resource_type not in LOAD_BALANCER_TYPES:
        return []
    value = props.get("enableDeletionProtection")
    if is_unknown(value) or value is True:
        return []
    return [
        "enableDeletionProtection is not true. Set enable_deletion_protection=True on the "
        "production load balancer (turn it off deliberately before a planned teardown)."
    ]


# -- world ingress (stack level: a rule's group is another resource) ----------------------------
def _number(value: Any) -> int | None:
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    return int(value)


def _ports(from_port: Any, to_port: Any, protocol: Any) -> tuple[int, int] | None:
    """Port range of a rule; None when it cannot be known. All protocols = all ports."""
    if is_unknown(protocol) or is_unknown(from_port) or is_unknown(to_port):
        return None
    if str(protocol) in ("-1", "all"):
        return (0, 65535)
    low, high = _number(from_port), _number(to_port)
    if low is None or high is None:
        return (0, 65535)
    return (low, high)


def _world_cidrs(*values: Any) -> list[str]:
    found = []
    for value in values:
        for cidr in as_list(value):
            if isinstance(cidr, str) and cidr in WORLD_CIDRS:
                found.append(cidr)
    return found


def _ingress_entries(resource: StackResource) -> list[tuple[tuple[int, int] | None, list[str]]]:
    """(port range, world CIDRs) of each ingress entry of a group or rule resource."""
    props = resource.props
    if resource.type_ == SECURITY_GROUP:
        ingress = props.get("ingress")
        if is_unknown(ingress):
            return []
        return [
            (
                _ports(e.get("fromPort"), e.get("toPort"), e.get("protocol")),
                _world_cidrs(e.get("cidrBlocks"), e.get("ipv6CidrBlocks")),
            )
            for e in as_list(ingress)
            if isinstance(e, Mapping)
        ]
    if resource.type_ == SECURITY_GROUP_RULE:
        if props.get("type") != "ingress":
            return []
        ports = _ports(props.get("fromPort"), props.get("toPort"), props.get("protocol"))
        return [(ports, _world_cidrs(props.get("cidrBlocks"), props.get("ipv6CidrBlocks")))]
    if resource.type_ == VPC_INGRESS_RULE:
        ports = _ports(props.get("fromPort"), props.get("toPort"), props.get("ipProtocol"))
        return [(ports, _world_cidrs(props.get("cidrIpv4"), props.get("cidrIpv6")))]
    return []


def _owning_groups(rule: StackResource, groups: Sequence[StackResource]) -> list[StackResource]:
    if rule.type_ == SECURITY_GROUP:
        return [rule]
    return [g for g in groups if refers_to(rule, g, "securityGroupId")]


def _is_public_lb_group(group: StackResource, resources: Sequence[StackResource]) -> str | None:
    """None if ``group`` qualifies as a public load balancer's group, else the reason why not."""
    if is_unknown(group.props.get("tags")):
        return None  # computed tags: judged again during the update, when they are known
    if tags_of(group.props).get(PUBLIC_ALB_TAG_KEY) != PUBLIC_ALB_TAG_VALUE:
        return (
            f"its security group {group.name!r} is not tagged "
            f"{PUBLIC_ALB_TAG_KEY}={PUBLIC_ALB_TAG_VALUE}"
        )
    attached_to = [r for r in resources if r is not group and refers_to(r, group)]
    if not any(r.type_ in LOAD_BALANCER_TYPES for r in attached_to):
        return f"its security group {group.name!r} is attached to no load balancer"
    compute = [r.name for r in attached_to if r.type_ in _COMPUTE_TYPES]
    if compute:
        return f"its security group {group.name!r} is also attached to {', '.join(compute)}"
    return None


def no_world_ingress(
    resources: Sequence[StackResource], config: Mapping[str, Any] = EMPTY
) -> list[tuple[StackResource, str]]:
    """Only a public load balancer's listener ports may accept traffic from anywhere."""
    allowed_ports = {int(p) for p in config.get("publicListenerPorts", DEFAULT_PUBLIC_PORTS)}
    groups = [r for r in resources if r.type_ == SECURITY_GROUP]
    findings: list[tuple[StackResource, str]] = []
    for resource in resources:
        for ports, cidrs in _ingress_entries(resource):
            if not cidrs or ports is None:
                continue
            low, high = ports
            span = f"port {low}" if low == high else f"ports {low}-{high}"
            how_to_fix = (
                "Admit the load balancer's security group (referenced_security_group_id) or a "
                "VPC CIDR instead; only a public ALB's group (tagged "
                f"{PUBLIC_ALB_TAG_KEY}={PUBLIC_ALB_TAG_VALUE}, attached to the load balancer "
                f"only) may admit the internet, on ports {sorted(allowed_ports)}."
            )
            if not (low == high and low in allowed_ports):
                findings.append(
                    (resource, f"ingress from {'/'.join(cidrs)} on {span}. {how_to_fix}")
                )
                continue
            owners = _owning_groups(resource, groups)
            if not owners:
                findings.append(
                    (
                        resource,
                        f"ingress from {'/'.join(cidrs)} on {span} to a security group that is "
                        f"not in this stack. {how_to_fix}",
                    )
                )
                continue
            for group in owners:
                reason = _is_public_lb_group(group, resources)
                if reason is not None:
                    findings.append(
                        (
                            resource,
                            f"ingress from {'/'.join(cidrs)} on {span}, but {reason}. {how_to_fix}",
                        )
                    )
    return findings
