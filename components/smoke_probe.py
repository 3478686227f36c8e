"""``SmokeProbe``: the task definition ``python -m ops smoke`` runs inside the VPC.

The load balancer is internal, so the post-deploy check must run in the VPC: a one-off Fargate
task from the service image, entry point ``python -m ops.smoke_probe`` (a container override can
replace only the command, so the probe is the entry point of its own task definition, as the
model sync is). It mounts the model store read-only to list the published models, calls the
service through the load balancer's URL (``SMOKE_URL``), prints one line per model to its log
group and exits with the probe's exit code (ops/smoke_probe.py).

Least privilege: a security group with no ingress and egress only to the load balancer's listener
ports (inside the VPC; anywhere for a public load balancer, reached at its public addresses),
HTTPS (ECR, logs) and NFS to the store; an execution role that pulls the
image and writes its own log group; a task role that only mounts the store read-only.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import pulumi
import pulumi_aws as aws

from components.ecs_service import (
    MODEL_PATH,
    ModelStore,
    execution_statements,
)
from components.iam import policy_json
from components.one_off_task import (
    ecs_role,
    fargate_task_definition,
    model_reader_security_group,
    one_off_container,
)
from ops.smoke_probe import CONTAINER_NAME, LOG_STREAM_PREFIX

ENTRY_POINT = ["python", "-m", "ops.smoke_probe"]


@dataclass
class SmokeProbeArgs:
    vpc_id: pulumi.Input[str]
    vpc_cidr_block: pulumi.Input[str]
    image: pulumi.Input[str]
    url: pulumi.Input[str]  # the service's load balancer URL
    listener_ports: Sequence[int]
    model_store: ModelStore
    # a public ALB is reached at its public addresses (through NAT), not inside the VPC range
    public_load_balancer: bool = False
    architecture: str = "X86_64"
    log_retention_days: int = 30
    tags: Mapping[str, str] = field(default_factory=dict)


def smoke_container_definition(
    *, image: str, url: str, log_group: str, region: str, mount_points: Sequence[Mapping[str, Any]]
) -> dict[str, Any]:
    """The probe container, in ECS API field names."""
    return one_off_container(
        name=CONTAINER_NAME,
        image=image,
        entry_point=ENTRY_POINT,
        environment={"MODEL_DIR": MODEL_PATH, "SMOKE_URL": url},
        mount_points=mount_points,
        extra={
            "logConfiguration": {
                "logDriver": "awslogs",
                "options": {
                    "awslogs-group": log_group,
                    "awslogs-region": region,
                    "awslogs-stream-prefix": LOG_STREAM_PREFIX,
                },
            },
        },
    )


class SmokeProbe(pulumi.ComponentResource):
    """Task definition, roles, security group and log group of the smoke probe."""

    task_definition_arn: pulumi.Output[str]
    security_group_id: pulumi.Output[str]
    log_group_name: pulumi.Output[str]

    def __init__(
        self, name: str, args: SmokeProbeArgs, opts: pulumi.ResourceOptions | None = None
    ) -> None:
        super().__init__("onnx-ecs:index:SmokeProbe", name, None, opts)
        child = pulumi.ResourceOptions(parent=self)
        tags = {**args.tags, "job": "smoke"}
        invoke = pulumi.InvokeOutputOptions(parent=self)
        region = aws.get_region_output(opts=invoke).region

        group = model_reader_security_group(
            name,
            parent=self,
            vpc_id=args.vpc_id,
            description="Smoke probe tasks: no ingress; to the ALB, HTTPS and NFS out",
            model_store=args.model_store,
            tags=tags,
        )
        for port in args.listener_ports:
            aws.vpc.SecurityGroupEgressRule(
                f"{name}-out-alb-{port}",
                security_group_id=group.id,
                ip_protocol="tcp",
                from_port=port,
                to_port=port,
                cidr_ipv4="0.0.0.0/0" if args.public_load_balancer else args.vpc_cidr_block,
                description="to the load balancer's listener",
                tags=tags,
                opts=child,
            )

        log_group = aws.cloudwatch.LogGroup(
            f"{name}-logs", retention_in_days=args.log_retention_days, tags=tags, opts=child
        )
        execution_role = ecs_role(
            name,
            "execution",
            parent=self,
            description="ECS agent for the smoke probe: pull the image, write its log group",
            policy=pulumi.Output.all(args.image, log_group.arn).apply(
                lambda v: json.dumps(
                    {
                        "Version": "2012-10-17",
                        "Statement": execution_statements(v[0], v[0], f"{v[1]}:*"),
                    }
                )
            ),
            tags=tags,
        )
        task_role = ecs_role(
            name,
            "task",
            parent=self,
            description="Smoke probe: list the model store (read-only mount)",
            policy=policy_json([args.model_store.task_role_statement(write=False)]),
            tags=tags,
        )
        mount_points = [args.model_store.mount_point(MODEL_PATH, read_only=True)]
        task_definition = fargate_task_definition(
            name,
            parent=self,
            cpu=256,
            memory=512,
            architecture=args.architecture,
            task_role=task_role,
            execution_role=execution_role,
            container_definitions=pulumi.Output.all(
                args.image, args.url, log_group.name, region
            ).apply(
                lambda v: json.dumps(
                    [
                        smoke_container_definition(
                            image=v[0],
                            url=v[1],
                            log_group=v[2],
                            region=v[3],
                            mount_points=mount_points,
                        )
                    ]
                )
            ),
            volumes=[args.model_store.volume()],
            tags=tags,
        )
        self.task_definition_arn = task_definition.arn
        self.security_group_id = group.id
        self.log_group_name = log_group.name
        self.register_outputs(
            {
                "task_definition_arn": self.task_definition_arn,
                "security_group_id": self.security_group_id,
                "log_group_name": self.log_group_name,
            }
        )
