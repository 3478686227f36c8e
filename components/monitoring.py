"""ServiceMonitoring: the stack's dashboard and the alarms on the service's own metrics.

Composed in ``__main__.py`` after the service (Fargate or GPU): it needs the load balancer's and
target group's ARN suffixes, the ECS names, the alert topic and, on GPU stacks, the GPU
instances' Auto Scaling group. The body is built by :func:`components.dashboard.dashboard_body`
and the alarms by :func:`components.service_alarms.create_alarms`.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, field

import pulumi
import pulumi_aws as aws

from components.dashboard import DashboardTargets, dashboard_body
from components.service_alarms import AlarmThresholds, create_alarms

_DASHBOARD_NAME_MAX = 255


@dataclass
class ServiceMonitoringArgs:
    service_name: str  # the InferenceService's name = the ServiceName dimension of its metrics
    cluster_name: pulumi.Input[str]
    ecs_service_name: pulumi.Input[str]
    load_balancer_arn_suffix: pulumi.Input[str]
    target_group_arn_suffix: pulumi.Input[str]
    alarm_topic_arn: pulumi.Input[str]
    gpu_auto_scaling_group_name: pulumi.Input[str] | None = None
    concurrency_target: float | None = None
    thresholds: AlarmThresholds = field(default_factory=AlarmThresholds)
    dashboard_name: str | None = None  # None: the service name
    tags: Mapping[str, str] = field(default_factory=dict)


class ServiceMonitoring(pulumi.ComponentResource):
    """A CloudWatch dashboard and three alarms (model load failure, shedding, queue time)."""

    dashboard_name: pulumi.Output[str]
    alarm_arns: dict[str, pulumi.Output[str]]

    def __init__(
        self, name: str, args: ServiceMonitoringArgs, opts: pulumi.ResourceOptions | None = None
    ) -> None:
        args.thresholds.validate()
        dashboard_name = args.dashboard_name or args.service_name
        if not dashboard_name or len(dashboard_name) > _DASHBOARD_NAME_MAX:
            raise ValueError(f"dashboard name {dashboard_name!r}: use 1-255 characters")
        super().__init__("onnx-ecs:index:ServiceMonitoring", name, None, opts)
        child = pulumi.ResourceOptions(parent=self)
        region = aws.get_region_output(opts=pulumi.InvokeOutputOptions(parent=self)).region

        def render(values: list) -> str:
            region_, cluster, ecs_service, lb, tg, asg = values
            targets = DashboardTargets(
                region=region_,
                service_name=args.service_name,
                cluster_name=cluster,
                ecs_service_name=ecs_service,
                load_balancer=lb,
                target_group=tg,
                gpu_auto_scaling_group=asg,
                concurrency_target=args.concurrency_target,
                queue_time_alarm_ms=args.thresholds.queue_time_p99_ms,
            )
            return json.dumps(dashboard_body(targets))

        body = pulumi.Output.all(
            region,
            args.cluster_name,
            args.ecs_service_name,
            args.load_balancer_arn_suffix,
            args.target_group_arn_suffix,
            args.gpu_auto_scaling_group_name,
        ).apply(render)
        dashboard = aws.cloudwatch.Dashboard(
            f"{name}-dashboard", dashboard_name=dashboard_name, dashboard_body=body, opts=child
        )
        alarms = create_alarms(
            name,
            args.service_name,
            args.thresholds,
            [args.alarm_topic_arn],
            child,
            tags=dict(args.tags),
        )
        self.dashboard_name = dashboard.dashboard_name
        self.alarm_arns = {role: alarm.arn for role, alarm in alarms.items()}
        self.register_outputs({"dashboard_name": self.dashboard_name, **self.alarm_arns})
