"""ServiceMonitoring: the stack's dashboard and the alarms on the service's own metrics.

Composed in ``__main__.py`` after the service (Fargate or GPU): it needs the load balancer's and
target group's ARN suffixes, the ECS names, the alert topic and, on GPU stacks, the GPU
instances' Auto Scaling group. The body is built by :func:`components.dashboard.dashboard_body`
and the alarms by :func:`components.service_alarms.create_alarms`.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from dataclasses import dataclass, field

import pulumi
import pulumi_aws as aws

from components.dashboard import DashboardTargets, dashboard_body
from components.service_alarms import AlarmThresholds, create_alarms

# PutDashboard (CloudWatch API Reference): "The maximum length is 255, and valid characters are
# A-Z, a-z, 0-9, "-", and "_"". Dashboards are global to the account, not regional, so the
# default name ends with the region: two stacks of the same name in two regions (two projects
# or organisations, one account) would otherwise overwrite, and on destroy delete, each other's.
_DASHBOARD_NAME = re.compile(r"^[A-Za-z0-9_-]{1,255}$")
_REGION_SUFFIX_MAX = 20  # "-" + the longest region name (e.g. "ap-southeast-5", "us-gov-west-1")


def validate_dashboard_name(name: str, field_name: str = "dashboard_name") -> None:
    """Fail at preview on a name PutDashboard would refuse at deploy time."""
    if not isinstance(name, str) or not _DASHBOARD_NAME.match(name):
        raise ValueError(
            f"{field_name}={name!r}: a CloudWatch dashboard name is 1-255 of A-Z, a-z, 0-9, "
            "'-' and '_'"
        )


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
    dashboard_name: str | None = None  # None: "<service name>-<region>" (dashboards are global)
    # False when the cluster runs without Container Insights: its task counts are then never
    # published, so the dashboard does not plot them.
    container_insights: bool = True
    tags: Mapping[str, str] = field(default_factory=dict)


class ServiceMonitoring(pulumi.ComponentResource):
    """A CloudWatch dashboard and three alarms (model load failure, shedding, queue time)."""

    dashboard_name: pulumi.Output[str]
    alarm_arns: dict[str, pulumi.Output[str]]

    def __init__(
        self, name: str, args: ServiceMonitoringArgs, opts: pulumi.ResourceOptions | None = None
    ) -> None:
        args.thresholds.validate()
        if args.dashboard_name is not None:
            validate_dashboard_name(args.dashboard_name)
        else:  # the region is appended: leave room for it
            validate_dashboard_name(
                args.service_name + "-" + "x" * (_REGION_SUFFIX_MAX - 1), "service_name"
            )
        super().__init__("onnx-ecs:index:ServiceMonitoring", name, None, opts)
        child = pulumi.ResourceOptions(parent=self)
        region = aws.get_region_output(opts=pulumi.InvokeOutputOptions(parent=self)).region
        dashboard_name: pulumi.Input[str] = (
            args.dashboard_name
            if args.dashboard_name is not None
            else pulumi.Output.concat(args.service_name, "-", region)
        )

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
                container_insights=args.container_insights,
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
