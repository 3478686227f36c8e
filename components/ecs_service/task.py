"""The inference task's pieces as plain data: the app container definition and the IAM policies
of task and execution roles (shared with other task definitions, e.g. the model sync job)."""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from typing import Any

import pulumi
import pulumi_aws as aws

from components.ecs_service.settings import (
    _ECR_URI,
    APP_USER,
    CONTAINER_NAME,
    CONTAINER_PORT,
    GRPC_PORT,
    HEALTH_COMMAND,
    ContainerHealthCheck,
    LogRouterLike,
    Placement,
)
from components.iam import assume_role_policy


# -- pure helpers (unit-testable without Pulumi) ---------------------------------------------------
def ecr_repository_arn(image: str) -> str | None:
    """ARN of the ECR repository an image URI points at, or None for non-ECR images."""
    match = _ECR_URI.match(image)
    if match is None:
        return None
    partition = "aws-cn" if match["cn"] else "aws"
    return f"arn:{partition}:ecr:{match['region']}:{match['account']}:repository/{match['repo']}"


def app_container_definition(
    *,
    image: str,
    environment: Mapping[str, str],
    mount_points: Sequence[Mapping[str, Any]],
    log_configuration: Mapping[str, Any],
    log_router_name: str,
    stop_timeout_s: int,
    readonly_root: bool,
    health: ContainerHealthCheck,
    placement: Placement,
    grpc: bool = False,
) -> dict[str, Any]:
    """The inference container, in ECS API field names (see tests/ecs_schema.py). ``grpc``: the
    load balancer has a gRPC target group, which needs the gRPC port mapped."""
    env = {**environment, **placement.environment}
    container: dict[str, Any] = {
        "name": CONTAINER_NAME,
        "image": image,
        "essential": True,
        "user": APP_USER,
        "portMappings": [
            {
                "containerPort": CONTAINER_PORT,
                "protocol": "tcp",
                "name": "http",
                "appProtocol": "http",
            }
        ],
        "environment": [{"name": k, "value": str(v)} for k, v in sorted(env.items())],
        "mountPoints": [dict(m) for m in mount_points],
        "readonlyRootFilesystem": readonly_root,
        "stopTimeout": stop_timeout_s,
        "healthCheck": {
            "command": list(HEALTH_COMMAND),
            "interval": health.interval_s,
            "timeout": health.timeout_s,
            "retries": health.retries,
            "startPeriod": health.start_period_s,
        },
        "logConfiguration": dict(log_configuration),
        # The router must be up before the app logs its first line.
        "dependsOn": [{"containerName": log_router_name, "condition": "START"}],
        # tini as PID 1: forwards SIGTERM for graceful shutdown and reaps ECS Exec sessions.
        "linuxParameters": {"initProcessEnabled": True},
    }
    if grpc:
        container["portMappings"].append(
            {"containerPort": GRPC_PORT, "protocol": "tcp", "name": "grpc", "appProtocol": "grpc"}
        )
    if placement.resource_requirements:
        container["resourceRequirements"] = [dict(r) for r in placement.resource_requirements]
    if placement.container_cpu is not None:
        container["cpu"] = placement.container_cpu
    if placement.container_memory_reservation is not None:
        container["memoryReservation"] = placement.container_memory_reservation
    return container


# -- IAM helpers, shared with other task definitions (components/model_sync_job.py) -----------
def task_role_trust_policy(parent: pulumi.Resource) -> pulumi.Output[str]:
    """Trust policy of a task role. Confused-deputy guard: only ECS acting for this account may
    assume it, and ``aws:SourceArn`` is pinned to this account's ECS resources in this region,
    as the ECS guide for task roles shows."""
    invoke = pulumi.InvokeOutputOptions(parent=parent)
    account = aws.get_caller_identity_output(opts=invoke).account_id
    region = aws.get_region_output(opts=invoke).region
    partition = aws.get_partition_output(opts=invoke).partition
    return pulumi.Output.all(account, region, partition).apply(
        lambda v: assume_role_policy(
            "ecs-tasks.amazonaws.com",
            {
                "StringEquals": {"aws:SourceAccount": v[0]},
                "ArnLike": {"aws:SourceArn": f"arn:{v[2]}:ecs:{v[1]}:{v[0]}:*"},
            },
        )
    )


def execution_role_trust_policy(parent: pulumi.Resource) -> pulumi.Output[str]:
    """Trust policy of an execution role: ``aws:SourceAccount`` only, the condition the ECS
    agent is documented to send when it pulls images."""
    invoke = pulumi.InvokeOutputOptions(parent=parent)
    return aws.get_caller_identity_output(opts=invoke).account_id.apply(
        lambda account: assume_role_policy(
            "ecs-tasks.amazonaws.com", {"StringEquals": {"aws:SourceAccount": account}}
        )
    )


def execution_role_policy(
    parent: pulumi.Resource, image: pulumi.Input[str], log_router: LogRouterLike
) -> pulumi.Output[str]:
    """Execution-role policy for a task of ``image`` + the log router sidecar: pull from the ECR
    repositories in use, write the router's own log group (see :func:`execution_statements`)."""
    invoke = pulumi.InvokeOutputOptions(parent=parent)
    account = aws.get_caller_identity_output(opts=invoke).account_id
    region = aws.get_region_output(opts=invoke).region
    partition = aws.get_partition_output(opts=invoke).partition
    router_image = log_router.container_definition().apply(lambda c: c.get("image", ""))
    log_group_arn = pulumi.Output.all(
        partition, region, account, log_router.router_log_group_name
    ).apply(lambda v: f"arn:{v[0]}:logs:{v[1]}:{v[2]}:log-group:{v[3]}:*")
    return pulumi.Output.all(image, router_image, log_group_arn).apply(
        lambda v: json.dumps(
            {"Version": "2012-10-17", "Statement": execution_statements(v[0], v[1], v[2])}
        )
    )


def execution_statements(app_image: str, router_image: str, log_group_arn: str) -> list[dict]:
    """Least-privilege execution role: pull from the ECR repositories in use, write router logs."""
    repos = sorted({arn for arn in map(ecr_repository_arn, (app_image, router_image)) if arn})
    statements: list[dict[str, Any]] = [
        {
            "Sid": "RouterLogs",
            "Effect": "Allow",
            "Action": ["logs:CreateLogStream", "logs:PutLogEvents"],
            "Resource": log_group_arn,
        }
    ]
    if repos:
        statements += [
            {
                "Sid": "EcrAuth",
                "Effect": "Allow",
                "Action": "ecr:GetAuthorizationToken",
                "Resource": "*",
            },
            {
                "Sid": "EcrPull",
                "Effect": "Allow",
                "Action": [
                    "ecr:BatchCheckLayerAvailability",
                    "ecr:BatchGetImage",
                    "ecr:GetDownloadUrlForLayer",
                ],
                "Resource": repos,
            },
        ]
    return statements
