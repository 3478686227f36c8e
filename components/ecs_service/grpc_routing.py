"""gRPC through the service's load balancer (with a certificate only: an ALB forwards gRPC from
HTTPS listeners only): the gRPC target group and the HTTPS listener's rule for gRPC paths, the
gRPC port between ALB and tasks, and the service's registration of that port. Resource names
are children of the :class:`InferenceService` (``<name>-grpc-tg``, ``<name>-grpc-rule``, ...).
"""

from __future__ import annotations

import pulumi
import pulumi_aws as aws

from components.ecs_service.settings import (
    CONTAINER_NAME,
    GRPC_HEALTH_PATH,
    GRPC_PATHS,
    GRPC_PORT,
    InferenceServiceArgs,
)


def alb_to_tasks_rules(
    name: str,
    alb_sg: aws.ec2.SecurityGroup,
    task_sg: aws.ec2.SecurityGroup,
    port: int,
    opts: pulumi.ResourceOptions,
    *,
    protocol: str = "",
    tags: dict[str, str] | None = None,
) -> None:
    """One port between the ALB and the tasks, and nowhere else: the ALB's egress to the tasks'
    security group and the tasks' ingress from the ALB's. ``protocol`` ("gRPC") names the
    rules of a second port: ``{name}-alb-out-tasks-grpc``, ``{name}-task-in-alb-grpc``."""
    tail = f"-{protocol.lower()}" if protocol else ""
    what = f"{protocol} " if protocol else ""
    aws.vpc.SecurityGroupEgressRule(
        f"{name}-alb-out-tasks{tail}",
        security_group_id=alb_sg.id,
        ip_protocol="tcp",
        from_port=port,
        to_port=port,
        referenced_security_group_id=task_sg.id,
        description=f"{what}to the inference tasks",
        tags=tags,
        opts=opts,
    )
    aws.vpc.SecurityGroupIngressRule(
        f"{name}-task-in-alb{tail}",
        security_group_id=task_sg.id,
        ip_protocol="tcp",
        from_port=port,
        to_port=port,
        referenced_security_group_id=alb_sg.id,
        description=f"{what}from the inference ALB only",
        tags=tags,
        opts=opts,
    )


def grpc_security_group_rules(
    name: str,
    alb_sg: aws.ec2.SecurityGroup,
    task_sg: aws.ec2.SecurityGroup,
    opts: pulumi.ResourceOptions,
    tags: dict[str, str] | None = None,
) -> None:
    """The gRPC port between the ALB and the tasks, and nowhere else."""
    alb_to_tasks_rules(name, alb_sg, task_sg, GRPC_PORT, opts, protocol="gRPC", tags=tags)


def grpc_routing(
    name: str,
    args: InferenceServiceArgs,
    https: aws.lb.Listener,
    tags: dict[str, str],
    opts: pulumi.ResourceOptions,
) -> tuple[aws.lb.TargetGroup, aws.lb.ListenerRule]:
    """gRPC target group (protocol version GRPC, health from grpc.health.v1, code 0) and the
    rule of the HTTPS listener that sends gRPC paths to it."""
    hc = args.settings.health_check
    target_group = aws.lb.TargetGroup(
        f"{name}-grpc-tg",
        target_type="ip",
        port=GRPC_PORT,
        protocol="HTTP",
        protocol_version="GRPC",
        vpc_id=args.network.vpc_id,
        deregistration_delay=hc.deregistration_delay_s,
        health_check=aws.lb.TargetGroupHealthCheckArgs(
            enabled=True,
            path=GRPC_HEALTH_PATH,
            protocol="HTTP",
            port="traffic-port",
            matcher="0",
            interval=hc.interval_s,
            timeout=hc.timeout_s,
            healthy_threshold=hc.healthy_threshold,
            unhealthy_threshold=hc.unhealthy_threshold,
        ),
        tags=tags,
        opts=opts,
    )
    rule = aws.lb.ListenerRule(
        f"{name}-grpc-rule",
        listener_arn=https.arn,
        priority=10,
        conditions=[
            aws.lb.ListenerRuleConditionArgs(
                path_pattern=aws.lb.ListenerRuleConditionPathPatternArgs(values=list(GRPC_PATHS))
            )
        ],
        actions=[aws.lb.ListenerRuleActionArgs(type="forward", target_group_arn=target_group.arn)],
        tags=tags,
        opts=opts,
    )
    return target_group, rule


def grpc_load_balancers(
    target_group: aws.lb.TargetGroup | None,
) -> list[aws.ecs.ServiceLoadBalancerArgs]:
    """The service's registration of the gRPC port (none without the gRPC target group)."""
    if target_group is None:
        return []
    return [
        aws.ecs.ServiceLoadBalancerArgs(
            target_group_arn=target_group.arn,
            container_name=CONTAINER_NAME,
            container_port=GRPC_PORT,
        )
    ]
