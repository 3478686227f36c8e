"""ECS, EC2 and ECR settings that keep deployments recoverable and hosts hard to abuse."""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

from .model import EMPTY, as_list, get_path, is_unknown

LAUNCH_TEMPLATE = "aws:ec2/launchTemplate:LaunchTemplate"
INSTANCE = "aws:ec2/instance:Instance"
ECS_SERVICE = "aws:ecs/service:Service"
ECS_CLUSTER = "aws:ecs/cluster:Cluster"
ECR_REPOSITORY = "aws:ecr/repository:Repository"
TASK_DEFINITION = "aws:ecs/taskDefinition:TaskDefinition"

# Deployment controllers for which ECS offers no circuit breaker (blue/green is CodeDeploy's).
_NO_CIRCUIT_BREAKER_CONTROLLERS = {"CODE_DEPLOY", "EXTERNAL"}
_ROOT_USERS = {"root", "0", "0:0"}


def imdsv2_required(
    resource_type: str, props: Mapping[str, Any], config: Mapping[str, Any] = EMPTY
) -> list[str]:
    """IMDSv1 lets any SSRF in a container read the instance role's credentials."""
    if resource_type not in (LAUNCH_TEMPLATE, INSTANCE):
        return []
    options = props.get("metadataOptions")
    if is_unknown(options):
        return []
    endpoint = get_path(props, "metadataOptions", "httpEndpoint")
    tokens = get_path(props, "metadataOptions", "httpTokens")
    if endpoint == "disabled" or is_unknown(tokens) or tokens == "required":
        return []
    return [
        f"metadataOptions.httpTokens is {tokens!r}. Set metadata_options="
        "{'http_tokens': 'required', 'http_endpoint': 'enabled', "
        "'http_put_response_hop_limit': 1} (1 keeps awsvpc tasks, which use task roles, off the "
        "instance's credentials; 2 only for bridge-mode containers that need IMDS)."
    ]


def ecs_circuit_breaker(
    resource_type: str, props: Mapping[str, Any], config: Mapping[str, Any] = EMPTY
) -> list[str]:
    """Without the breaker a bad image keeps replacing tasks forever instead of rolling back."""
    if resource_type != ECS_SERVICE:
        return []
    controller = get_path(props, "deploymentController", "type")
    if is_unknown(controller) or controller in _NO_CIRCUIT_BREAKER_CONTROLLERS:
        return []
    breaker = props.get("deploymentCircuitBreaker")
    if is_unknown(breaker):
        return []
    enable = get_path(props, "deploymentCircuitBreaker", "enable")
    rollback = get_path(props, "deploymentCircuitBreaker", "rollback")
    if (is_unknown(enable) or enable is True) and (is_unknown(rollback) or rollback is True):
        return []
    return [
        f"deploymentCircuitBreaker is {breaker!r}. Set deployment_circuit_breaker="
        "{'enable': True, 'rollback': True} on aws.ecs.Service so a failing deployment "
        "rolls back to the last steady task definition."
    ]


def ecs_exec_enabled(
    resource_type: str, props: Mapping[str, Any], config: Mapping[str, Any] = EMPTY
) -> list[str]:
    """ECS Exec is how an operator gets a shell in a task without SSH or a public IP."""
    if resource_type != ECS_SERVICE:
        return []
    value = props.get("enableExecuteCommand")
    if is_unknown(value) or value is True:
        return []
    return [
        "enableExecuteCommand is not true. Set enable_execute_command=True and give the task "
        "role ssmmessages:CreateControlChannel/CreateDataChannel/OpenControlChannel/"
        "OpenDataChannel."
    ]


def ecs_no_public_ip(
    resource_type: str, props: Mapping[str, Any], config: Mapping[str, Any] = EMPTY
) -> list[str]:
    """Tasks belong in private subnets behind the load balancer."""
    if resource_type != ECS_SERVICE:
        return []
    assign = get_path(props, "networkConfiguration", "assignPublicIp")
    if assign is True:
        return [
            "networkConfiguration.assignPublicIp is true. Run tasks in private subnets with "
            "assign_public_ip=False and reach AWS APIs through NAT or VPC endpoints."
        ]
    return []


def container_insights(
    resource_type: str, props: Mapping[str, Any], config: Mapping[str, Any] = EMPTY
) -> list[str]:
    """Per-task CPU/memory metrics are what you need when a model starts thrashing."""
    if resource_type != ECS_CLUSTER:
        return []
    settings = props.get("settings")
    if is_unknown(settings):
        return []
    for setting in as_list(settings):
        if isinstance(setting, Mapping) and setting.get("name") == "containerInsights":
            value = setting.get("value")
            if is_unknown(value) or value in ("enabled", "enhanced"):
                return []
    return [
        "Container Insights is off. Add settings=[{'name': 'containerInsights', "
        "'value': 'enabled'}] (or 'enhanced') to aws.ecs.Cluster."
    ]


def ecr_scan_on_push(
    resource_type: str, props: Mapping[str, Any], config: Mapping[str, Any] = EMPTY
) -> list[str]:
    """Scan images as they are pushed (a registry-level scanning rule also satisfies this)."""
    if resource_type != ECR_REPOSITORY:
        return []
    scan = get_path(props, "imageScanningConfiguration", "scanOnPush")
    if is_unknown(scan) or scan is True:
        return []
    return [
        "imageScanningConfiguration.scanOnPush is not true. Set image_scanning_configuration="
        "{'scan_on_push': True} (or configure enhanced scanning at registry level)."
    ]


def containers_non_root(
    resource_type: str, props: Mapping[str, Any], config: Mapping[str, Any] = EMPTY
) -> list[str]:
    """Application containers should run as an unprivileged user (ours is 10001).

    The FireLens log router (a container with ``firelensConfiguration``) is exempt: the AWS
    Fluent Bit image runs as root and only reads the log stream the agent hands it.
    """
    if resource_type != TASK_DEFINITION:
        return []
    raw = props.get("containerDefinitions")
    if is_unknown(raw) or raw is None:
        return []
    try:
        containers = json.loads(raw) if isinstance(raw, str) else raw
    except ValueError:
        return []
    messages = []
    for container in as_list(containers):
        if not isinstance(container, Mapping) or container.get("firelensConfiguration"):
            continue
        user = container.get("user")
        if user is None or str(user).strip() in _ROOT_USERS:
            messages.append(
                f"container {container.get('name')!r} runs as {user or 'the image default'!s}. "
                "Set 'user': '10001:10001' (or another non-root uid:gid) in its definition."
            )
    return messages


def ecs_deployment_safety(
    resource_type: str, props: Mapping[str, Any], config: Mapping[str, Any] = EMPTY
) -> list[str]:
    """A service behind a load balancer must end ``pulumi up`` verified or failed: the circuit
    breaker with rollback, deployment alarms with rollback, and a steady-state wait (without it
    ``pulumi up`` succeeds while ECS is still replacing or rolling back tasks)."""
    if resource_type != ECS_SERVICE:
        return []
    balancers = props.get("loadBalancers")
    if is_unknown(balancers) or not as_list(balancers):
        return []
    controller = get_path(props, "deploymentController", "type")
    if is_unknown(controller) or controller in _NO_CIRCUIT_BREAKER_CONTROLLERS:
        return []
    problems: list[str] = []
    breaker = [get_path(props, "deploymentCircuitBreaker", k) for k in ("enable", "rollback")]
    if not all(is_unknown(v) or v is True for v in breaker):
        problems.append("deployment_circuit_breaker={'enable': True, 'rollback': True}")
    alarms = props.get("alarms")
    if not is_unknown(alarms):
        flags = [get_path(props, "alarms", k) for k in ("enable", "rollback")]
        names = get_path(props, "alarms", "alarmNames")
        if not all(is_unknown(v) or v is True for v in flags) or (
            not is_unknown(names) and not as_list(names)
        ):
            problems.append(
                "alarms=aws.ecs.ServiceAlarmsArgs(alarm_names=[...], enable=True, rollback=True) "
                "(components/deployment_alarms.py: 5xx rate, p99 latency, unhealthy hosts)"
            )
    wait = props.get("waitForSteadyState")
    if not (is_unknown(wait) or wait is True):
        problems.append("wait_for_steady_state=True")
    if not problems:
        return []
    return [
        "This load-balanced ECS service can deploy a broken revision without failing the update. "
        "Set " + "; ".join(problems) + " on aws.ecs.Service."
    ]
