"""The parts every one-off Fargate task of the stack is built from (model sync, smoke probe).

A one-off task reads the model store and talks to AWS APIs, and nothing else reaches it: a
security group with no ingress, egress HTTPS and NFS to the store (which admits it); an execution
role and a task role, each trusted by ECS only for this account and holding one inline policy;
a Fargate task definition (``awsvpc``, Linux, the family named after the component); and its
container: the service image with its own entry point (a container override can replace only
the command), as the service's non-root user, on a read-only root file system.
The callers add what differs: their own egress, statements and containers.

Children are named ``<name>-sg``, ``<name>-execution-role``/``-policy``,
``<name>-task-role``/``-policy`` and ``<name>-taskdef``, under the component that asks, as they
were before these helpers existed, so deployed stacks keep their URNs.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, Literal

import pulumi
import pulumi_aws as aws

from components.ecs_service import (
    APP_USER,
    ModelStore,
    execution_role_trust_policy,
    task_egress,
    task_role_trust_policy,
)

RoleKind = Literal["execution", "task"]


def model_reader_security_group(
    name: str,
    *,
    parent: pulumi.Resource,
    vpc_id: pulumi.Input[str],
    description: str,
    model_store: ModelStore,
    tags: dict[str, str],
) -> aws.ec2.SecurityGroup:
    """No ingress; HTTPS out to AWS APIs and NFS to the model store, which admits the group."""
    child = pulumi.ResourceOptions(parent=parent)
    group = aws.ec2.SecurityGroup(
        f"{name}-sg", vpc_id=vpc_id, description=description, tags=tags, opts=child
    )
    task_egress(name, group, model_store, child, tags)
    model_store.allow_from(name, group.id)
    return group


def ecs_role(
    name: str,
    kind: RoleKind,
    *,
    parent: pulumi.Resource,
    description: str,
    policy: pulumi.Input[str],
    tags: dict[str, str],
) -> aws.iam.Role:
    """An execution or task role (its ECS trust policy, confused-deputy conditions included)
    with one inline policy."""
    child = pulumi.ResourceOptions(parent=parent)
    trust = execution_role_trust_policy if kind == "execution" else task_role_trust_policy
    role = aws.iam.Role(
        f"{name}-{kind}-role",
        assume_role_policy=trust(parent),
        description=description,
        tags=tags,
        opts=child,
    )
    aws.iam.RolePolicy(f"{name}-{kind}-policy", role=role.id, policy=policy, opts=child)
    return role


def fargate_task_definition(
    name: str,
    *,
    parent: pulumi.Resource,
    cpu: int | str,
    memory: int | str,
    architecture: str,
    task_role: aws.iam.Role,
    execution_role: aws.iam.Role,
    container_definitions: pulumi.Input[str],
    volumes: Sequence[aws.ecs.TaskDefinitionVolumeArgs],
    tags: dict[str, str],
) -> aws.ecs.TaskDefinition:
    """A Fargate (``awsvpc``, Linux) task definition whose family is ``name``."""
    return aws.ecs.TaskDefinition(
        f"{name}-taskdef",
        family=name,
        network_mode="awsvpc",
        requires_compatibilities=["FARGATE"],
        cpu=str(cpu),
        memory=str(memory),
        runtime_platform=aws.ecs.TaskDefinitionRuntimePlatformArgs(
            operating_system_family="LINUX", cpu_architecture=architecture
        ),
        task_role_arn=task_role.arn,
        execution_role_arn=execution_role.arn,
        container_definitions=container_definitions,
        volumes=list(volumes),
        tags=tags,
        opts=pulumi.ResourceOptions(parent=parent),
    )


def one_off_container(
    *,
    name: str,
    image: str,
    entry_point: Sequence[str],
    environment: Mapping[str, str],
    mount_points: Sequence[Mapping[str, Any]],
    extra: Mapping[str, Any],
) -> dict[str, Any]:
    """The task's container in ECS API field names, ``extra`` fields (logging, stop timeout,
    dependencies) last."""
    return {
        "name": name,
        "image": image,
        "essential": True,
        "user": APP_USER,
        "entryPoint": list(entry_point),
        "command": [],
        "environment": [{"name": k, "value": v} for k, v in sorted(environment.items())],
        "mountPoints": [dict(m) for m in mount_points],
        "readonlyRootFilesystem": True,
        **extra,
    }
