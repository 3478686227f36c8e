"""The mandatory ``ecs-deployment-safety`` rule on the props the engine sends (camelCase),
unknown values included.

AWS behaviour encoded (cited): Amazon ECS API Reference, ``DeploymentAlarms`` and
``DeploymentCircuitBreaker`` ("only when the DeploymentController is set to ECS", rolling
update): services on CODE_DEPLOY or EXTERNAL controllers have neither, so the rule skips them.
"""

from __future__ import annotations

from typing import Any

import pytest

from policy.guardrails import compute
from policy.guardrails.model import UNKNOWN
from policy.guardrails.registry import MANDATORY, RULES_BY_NAME

SERVICE = "aws:ecs/service:Service"
SAFE: dict[str, Any] = {
    "loadBalancers": [{"targetGroupArn": "arn:tg", "containerName": "app", "containerPort": 8000}],
    "deploymentCircuitBreaker": {"enable": True, "rollback": True},
    "alarms": {"alarmNames": ["a-5xx", "a-p99"], "enable": True, "rollback": True},
    "waitForSteadyState": True,
}


@pytest.mark.parametrize(
    ("change", "needle"),
    [
        ({"waitForSteadyState": False}, "wait_for_steady_state=True"),
        ({"waitForSteadyState": None}, "wait_for_steady_state=True"),
        ({"alarms": None}, "alarms=aws.ecs.ServiceAlarmsArgs"),
        ({"alarms": {"alarmNames": ["a"], "enable": True, "rollback": False}}, "rollback=True)"),
        ({"alarms": {"alarmNames": [], "enable": True, "rollback": True}}, "alarm_names=[...]"),
        ({"deploymentCircuitBreaker": {"enable": True, "rollback": False}}, "circuit_breaker"),
    ],
)
def test_unsafe_load_balanced_services_are_refused(change: dict[str, Any], needle: str) -> None:
    (message,) = compute.ecs_deployment_safety(SERVICE, {**SAFE, **change})
    assert needle in message
    assert message.startswith("This load-balanced ECS service can deploy a broken revision")


@pytest.mark.parametrize(
    "props",
    [
        SAFE,
        {**SAFE, "alarms": UNKNOWN, "waitForSteadyState": UNKNOWN},
        {**SAFE, "alarms": {"alarmNames": UNKNOWN, "enable": True, "rollback": True}},
        {"waitForSteadyState": False},  # no load balancer: a worker service
        {**SAFE, "waitForSteadyState": False, "deploymentController": {"type": "CODE_DEPLOY"}},
        {**SAFE, "loadBalancers": UNKNOWN, "waitForSteadyState": False},
    ],
)
def test_safe_unknown_or_out_of_scope_services_pass(props: dict[str, Any]) -> None:
    assert compute.ecs_deployment_safety(SERVICE, props) == []


def test_rule_is_mandatory_and_only_for_services() -> None:
    rule = RULES_BY_NAME["ecs-deployment-safety"]
    assert rule.enforcement is MANDATORY
    assert compute.ecs_deployment_safety("aws:ecs/cluster:Cluster", {"waitForSteadyState": 0}) == []
