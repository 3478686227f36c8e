"""Alarms on the service's own metrics, notifying the stack's SNS topic.

Three conditions an operator must hear about, none of which the load balancer can see:

- a model version failed to load and is not serving (``ModelVersionsUnavailable`` >= 1 in any
  task): the service logs the reason to the error log group. The alarm watches that state, not
  the ``ModelLoadFailures`` event count: a load fails once per file (no retry storm), so an
  alarm on the event would breach for one minute and then, with no data, notify OK while the
  version still does not serve. Every task publishes ``ModelVersionsUnavailable`` every minute,
  so the alarm stays in ALARM as long as a version is down and returns to OK when it serves
  (or is removed); it is never left in INSUFFICIENT_DATA while tasks run;
- sustained shedding (``RequestsShed`` >= N per minute for M minutes in a row): queues are full
  and clients get 503 + Retry-After -- scaling is not keeping up or has hit ``maxCount``;
- queue time (p99 of ``QueueTime`` above a threshold for M minutes): requests wait for the model
  before they are even run, the first sign of saturation.

The deployment alarms (5xx rate, p99 latency, unhealthy hosts at the load balancer) live in
``components/deployment_alarms.py``; these complement them. Metrics are published once a minute
per task (service/emf.py), so every alarm has a 60 s period; "no data" means no traffic or no
failures, never a breach (``notBreaching``). Alarm behaviour: Amazon CloudWatch User Guide, "Using
Amazon CloudWatch alarms" (``evaluation_periods``/``datapoints_to_alarm`` for "M out of N",
``treat_missing_data``; percentiles through ``extended_statistic``; period x evaluation periods
at most one day).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import pulumi
import pulumi_aws as aws

from service import metric_names as mn

MAX_ALARM_MINUTES = 1440  # evaluation periods x 60 s must not exceed one day


@dataclass(frozen=True)
class AlarmThresholds:
    """Stack config: sheddingAlarm*, queueTimeAlarm* (docs/infrastructure.md)."""

    shed_per_minute: int = 10
    shed_minutes: int = 5
    queue_time_p99_ms: float = 100.0
    queue_time_minutes: int = 5

    def validate(self) -> None:
        """Fail at preview on thresholds CloudWatch would refuse or that could never fire."""
        if isinstance(self.shed_per_minute, bool) or self.shed_per_minute < 1:
            raise ValueError(
                f"sheddingAlarmPerMinute {self.shed_per_minute!r}: use a whole number >= 1 "
                "(shed requests per minute, summed over the tasks)"
            )
        if not 0 < self.queue_time_p99_ms <= 600_000:
            raise ValueError(
                f"queueTimeAlarmMs {self.queue_time_p99_ms!r}: use (0, 600000] milliseconds"
            )
        for key, minutes in (
            ("sheddingAlarmMinutes", self.shed_minutes),
            ("queueTimeAlarmMinutes", self.queue_time_minutes),
        ):
            if isinstance(minutes, bool) or not 1 <= minutes <= MAX_ALARM_MINUTES:
                raise ValueError(
                    f"{key} {minutes!r}: use 1-{MAX_ALARM_MINUTES} minutes (CloudWatch evaluates "
                    "at most one day of 1-minute periods)"
                )


@dataclass(frozen=True)
class AlarmSpec:
    """One alarm as plain data (the inputs of aws.cloudwatch.MetricAlarm)."""

    role: str
    description: str
    metric: mn.Metric
    threshold: float
    minutes: int
    statistic: str | None = None
    extended_statistic: str | None = None
    comparison: str = "GreaterThanOrEqualToThreshold"


def alarm_specs(thresholds: AlarmThresholds) -> list[AlarmSpec]:
    return [
        AlarmSpec(
            "model-load-failed",
            "A model version failed to load and is not serving (reason in the error log group)",
            mn.VERSIONS_UNAVAILABLE,
            1,
            1,
            statistic="Maximum",
        ),
        AlarmSpec(
            "requests-shed",
            f"Requests shed with 503 (queue full): >= {thresholds.shed_per_minute}/min for "
            f"{thresholds.shed_minutes} min",
            mn.SHED,
            thresholds.shed_per_minute,
            thresholds.shed_minutes,
            statistic="Sum",
        ),
        AlarmSpec(
            "queue-time",
            f"Queue time p99 above {thresholds.queue_time_p99_ms:g} ms for "
            f"{thresholds.queue_time_minutes} min",
            mn.QUEUE_TIME,
            thresholds.queue_time_p99_ms,
            thresholds.queue_time_minutes,
            extended_statistic="p99",
            comparison="GreaterThanThreshold",
        ),
    ]


def create_alarms(
    name: str,
    service_name: str,
    thresholds: AlarmThresholds,
    actions: Sequence[pulumi.Input[str]],
    opts: pulumi.ResourceOptions,
    tags: dict[str, str] | None = None,
) -> dict[str, aws.cloudwatch.MetricAlarm]:
    """``<name>-<role>`` alarms on the service-wide series (``ServiceName`` only), notifying
    ``actions`` on ALARM and on OK."""
    thresholds.validate()
    alarms = {}
    for spec in alarm_specs(thresholds):
        kwargs: dict[str, Any] = {}
        if spec.statistic:
            kwargs["statistic"] = spec.statistic
        else:
            kwargs["extended_statistic"] = spec.extended_statistic
        alarms[spec.role] = aws.cloudwatch.MetricAlarm(
            f"{name}-{spec.role}",
            alarm_description=f"{service_name}: {spec.description}",
            namespace=mn.NAMESPACE,
            metric_name=spec.metric.name,
            dimensions={mn.SERVICE: service_name},
            unit=spec.metric.unit,
            period=60,
            evaluation_periods=spec.minutes,
            datapoints_to_alarm=spec.minutes,
            threshold=spec.threshold,
            comparison_operator=spec.comparison,
            treat_missing_data="notBreaching",
            alarm_actions=list(actions),
            ok_actions=list(actions),
            tags=tags,
            opts=opts,
            **kwargs,
        )
    return alarms
