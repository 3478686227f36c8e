"""CloudWatch alarms on the service's target group that ECS watches during every deployment.

ECS marks a deployment failed, and with ``rollback`` returns to the last completed one, when one
of the service's deployment alarms goes into ALARM while the deployment runs or during its bake
time (Amazon ECS Developer Guide, "How CloudWatch alarms detect Amazon ECS deployment
failures"). The circuit breaker alone only sees tasks that fail to start or fail health checks; a
new image that answers ``/health`` but fails or slows down real requests passes it. Three alarms
cover that, all on the ``AWS/ApplicationELB`` metrics of this target group (dimensions
``TargetGroup`` and ``LoadBalancer`` take the ARN *suffixes* ``targetgroup/...`` and
``app/...``, not ARNs):

- 5xx rate: metric math ``100 * HTTPCode_Target_5XX_Count / RequestCount`` per minute, counted
  only above a minimum of requests (2 errors out of 3 requests is noise, not a verdict);
- p99 ``TargetResponseTime`` (seconds);
- ``UnHealthyHostCount`` (maximum).

ELB reports these only while requests flow, so missing data is "not breaching": an idle service
does not roll back. Each alarm also notifies the service's SNS topic.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

import pulumi
import pulumi_aws as aws

NAMESPACE = "AWS/ApplicationELB"
PERIOD_S = 60  # ELB publishes these metrics every 60 seconds


@dataclass
class DeploymentAlarmSettings:
    """Thresholds (stack config: alarm* keys). Defaults suit an online inference service."""

    error_rate_percent: float = 5.0
    min_requests: int = 20  # per minute, before the 5xx rate counts
    latency_p99_seconds: float = 2.0
    unhealthy_hosts: int = 1
    evaluation_periods: int = 3  # minutes in ALARM before ECS fails the deployment

    def deployment_check_timeout(self, base_seconds: int) -> int:
        """How long the deploy-time check may wait for ECS to call the deployment COMPLETED.

        After the tasks are steady ECS keeps watching the alarms for a bake time that it
        "computes ... based on the alarm configuration" and that cannot be set (ECS Developer
        Guide, "How CloudWatch alarms detect Amazon ECS deployment failures"): the longer the
        alarms' evaluation window, the longer the bake. Twice that window on top of the base
        allowance, so a long window never times out a healthy deployment.
        """
        return base_seconds + 2 * self.evaluation_periods * PERIOD_S

    def validate(self) -> None:
        """Fail at preview with the value and what is accepted."""
        if not 0 < self.error_rate_percent <= 100:
            raise ValueError(
                f"alarm5xxRatePercent {self.error_rate_percent}: use a percentage in (0, 100]"
            )
        if isinstance(self.min_requests, bool) or not 1 <= self.min_requests <= 1_000_000:
            raise ValueError(f"alarm5xxMinRequests {self.min_requests}: use 1-1000000 a minute")
        if not 0 < self.latency_p99_seconds <= 4000:
            raise ValueError(
                f"alarmLatencyP99Seconds {self.latency_p99_seconds}: use (0, 4000] seconds "
                "(the ALB idle timeout's range)"
            )
        if isinstance(self.unhealthy_hosts, bool) or not 1 <= self.unhealthy_hosts <= 1000:
            raise ValueError(f"alarmUnhealthyHosts {self.unhealthy_hosts}: use 1-1000 targets")
        if isinstance(self.evaluation_periods, bool) or not 1 <= self.evaluation_periods <= 60:
            raise ValueError(
                f"alarmEvaluationPeriods {self.evaluation_periods}: use 1-60 one-minute periods "
                "(ECS also waits this long after a deployment before calling it complete)"
            )


def error_rate_queries(
    dimensions: Mapping[str, pulumi.Input[str]], min_requests: int
) -> list[aws.cloudwatch.MetricAlarmMetricQueryArgs]:
    """``rate`` = 5xx share of requests in percent, 0 below ``min_requests`` a minute."""

    def metric(query_id: str, name: str) -> aws.cloudwatch.MetricAlarmMetricQueryArgs:
        return aws.cloudwatch.MetricAlarmMetricQueryArgs(
            id=query_id,
            return_data=False,
            metric=aws.cloudwatch.MetricAlarmMetricQueryMetricArgs(
                namespace=NAMESPACE,
                metric_name=name,
                dimensions=dict(dimensions),
                period=PERIOD_S,
                stat="Sum",
            ),
        )

    return [
        metric("errors", "HTTPCode_Target_5XX_Count"),
        metric("requests", "RequestCount"),
        aws.cloudwatch.MetricAlarmMetricQueryArgs(
            id="rate",
            label="Target 5xx rate (%)",
            return_data=True,
            # 5XX counts are reported only when non-zero: FILL turns a gap into 0.
            expression=f"IF(requests >= {min_requests}, 100 * FILL(errors, 0) / requests, 0)",
        ),
    ]


class DeploymentAlarms(pulumi.ComponentResource):
    """The three alarms (module docstring); ``names`` goes into the service's ``alarms``."""

    names: list[pulumi.Output[str]]
    arns: list[pulumi.Output[str]]

    def __init__(
        self,
        name: str,
        *,
        target_group_arn_suffix: pulumi.Input[str],
        load_balancer_arn_suffix: pulumi.Input[str],
        topic_arn: pulumi.Input[str],
        settings: DeploymentAlarmSettings,
        tags: Mapping[str, str] | None = None,
        opts: pulumi.ResourceOptions | None = None,
    ) -> None:
        settings.validate()
        super().__init__("onnx-ecs:index:DeploymentAlarms", name, None, opts)
        child = pulumi.ResourceOptions(parent=self)
        dimensions = {
            "TargetGroup": target_group_arn_suffix,
            "LoadBalancer": load_balancer_arn_suffix,
        }
        common = {
            "comparison_operator": "GreaterThanOrEqualToThreshold",
            "evaluation_periods": settings.evaluation_periods,
            "datapoints_to_alarm": settings.evaluation_periods,
            "treat_missing_data": "notBreaching",
            "alarm_actions": [topic_arn],
            "ok_actions": [topic_arn],
            "tags": dict(tags or {}),
            "opts": child,
        }
        error_rate = aws.cloudwatch.MetricAlarm(
            f"{name}-5xx-rate",
            alarm_description=(
                f"Inference targets answered >= {settings.error_rate_percent:g}% 5xx "
                f"(with >= {settings.min_requests} requests a minute) for "
                f"{settings.evaluation_periods} min; ECS rolls a deployment back on it"
            ),
            threshold=settings.error_rate_percent,
            metric_queries=error_rate_queries(dimensions, settings.min_requests),
            **common,
        )
        latency = aws.cloudwatch.MetricAlarm(
            f"{name}-latency-p99",
            alarm_description=(
                f"Inference p99 TargetResponseTime >= {settings.latency_p99_seconds:g} s for "
                f"{settings.evaluation_periods} min; ECS rolls a deployment back on it"
            ),
            namespace=NAMESPACE,
            metric_name="TargetResponseTime",
            dimensions=dimensions,
            period=PERIOD_S,
            extended_statistic="p99",
            threshold=settings.latency_p99_seconds,
            **common,
        )
        unhealthy = aws.cloudwatch.MetricAlarm(
            f"{name}-unhealthy-hosts",
            alarm_description=(
                f">= {settings.unhealthy_hosts} inference target(s) failing the ALB health "
                f"check for {settings.evaluation_periods} min; ECS rolls a deployment back on it"
            ),
            namespace=NAMESPACE,
            metric_name="UnHealthyHostCount",
            dimensions=dimensions,
            period=PERIOD_S,
            statistic="Maximum",
            threshold=settings.unhealthy_hosts,
            **common,
        )
        alarms = (error_rate, latency, unhealthy)
        self.names = [a.name for a in alarms]
        self.arns = [a.arn for a in alarms]
        self.register_outputs({"names": self.names, "arns": self.arns})
