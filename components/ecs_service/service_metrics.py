"""How the stack refers to the service's own CloudWatch metrics (names: service/metric_names.py).

The service publishes them (EMF through the log router) with ``ServiceName`` = the name the
:class:`InferenceService` was given; the task definition sets ``EMF_SERVICE_NAME`` to it, and
the scaling policy, dashboard and alarms use the same value, so all of them see one series.
"""

from __future__ import annotations

import pulumi_aws as aws

from service import metric_names as mn

ENV_SERVICE_NAME = "EMF_SERVICE_NAME"
ENV_NAMESPACE = "EMF_NAMESPACE"

_aas = aws.appautoscaling
_Customized = _aas.PolicyTargetTrackingScalingPolicyConfigurationCustomizedMetricSpecificationArgs
_Dimension = (
    _aas.PolicyTargetTrackingScalingPolicyConfigurationCustomizedMetricSpecificationDimensionArgs
)


def metric_environment(service_name: str) -> dict[str, str]:
    """The app container's settings that make its metrics this service's."""
    return {ENV_SERVICE_NAME: service_name, ENV_NAMESPACE: mn.NAMESPACE}


def concurrency_metric(service_name: str) -> _Customized:
    """Average in-flight inference requests per task (``ConcurrentRequests``, one datapoint per
    task and minute; the Average over the service's datapoints is the per-task mean).

    Application Auto Scaling User Guide, "Target tracking scaling policies": the metric is "the
    ideal average utilization or throughput level" and must rise when the tasks are busier and
    fall when tasks are added -- in-flight requests per task does both (Little's law: arrival
    rate x latency, shared by the tasks)."""
    return _Customized(
        namespace=mn.NAMESPACE,
        metric_name=mn.CONCURRENCY.name,
        dimensions=[_Dimension(name=mn.SERVICE, value=service_name)],
        statistic="Average",
        unit=mn.CONCURRENCY.unit,
    )
