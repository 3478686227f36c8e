"""The stack's CloudWatch dashboard, as data: is the service healthy, how loaded, and why.

One dashboard per stack, built by :func:`dashboard_body` from plain strings (so it is tested
without Pulumi) and created by :class:`components.monitoring.ServiceMonitoring`. It shows only
metrics the stack emits, taken from their sources:

- the service's own metrics (EMF through the log router): names, units and dimension sets from
  ``service/metric_names.py``, with ``ServiceName`` = the InferenceService's name;
- the GPU instances' CloudWatch agent (GPU stacks): ``components/gpu/cloudwatch_agent.py``;
- AWS's own: the load balancer (``AWS/ApplicationELB``: "Metrics for your Application Load
  Balancer", dimensions ``LoadBalancer`` and ``TargetGroup`` take the ARN *suffixes*
  ``app/<name>/<id>`` and ``targetgroup/<name>/<id>``), the ECS service (``AWS/ECS``: CPU and
  memory utilisation by ``ClusterName``/``ServiceName``) and Container Insights
  (``ECS/ContainerInsights``: ``RunningTaskCount``/``DesiredTaskCount``; the cluster needs
  Container Insights, which the stack's clusters enable by default).

Dashboard body structure: CloudWatch API Reference, "Dashboard Body Structure and Syntax"
(``widgets`` with ``type``/``x``/``y``/``width``/``height``/``properties``; a metric is
``[Namespace, MetricName, DimName, DimValue, ..., {options}]``; expressions such as
``SEARCH('{Namespace,Dim1,Dim2} MetricName="..."', 'Stat', period)`` go in ``{"expression"}``).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from components.gpu import cloudwatch_agent as gpu
from service import metric_names as mn

ALB = "AWS/ApplicationELB"
ECS = "AWS/ECS"
INSIGHTS = "ECS/ContainerInsights"
# AWS metrics the dashboard uses, with the dimension sets AWS publishes them under.
AWS_METRICS: dict[tuple[str, str], tuple[tuple[str, ...], ...]] = {
    (ALB, "RequestCount"): (("LoadBalancer",), ("LoadBalancer", "TargetGroup")),
    (ALB, "TargetResponseTime"): (("LoadBalancer",), ("LoadBalancer", "TargetGroup")),
    (ALB, "HTTPCode_Target_5XX_Count"): (("LoadBalancer",), ("LoadBalancer", "TargetGroup")),
    (ALB, "HTTPCode_ELB_5XX_Count"): (("LoadBalancer",),),
    (ALB, "HealthyHostCount"): (("LoadBalancer", "TargetGroup"),),
    (ALB, "UnHealthyHostCount"): (("LoadBalancer", "TargetGroup"),),
    (ECS, "CPUUtilization"): (("ClusterName", "ServiceName"),),
    (ECS, "MemoryUtilization"): (("ClusterName", "ServiceName"),),
    (INSIGHTS, "RunningTaskCount"): (("ClusterName", "ServiceName"),),
    (INSIGHTS, "DesiredTaskCount"): (("ClusterName", "ServiceName"),),
}
WIDTH, HEIGHT = 8, 6  # three widgets a row (the grid is 24 wide)


@dataclass(frozen=True)
class DashboardTargets:
    """What the dashboard looks at, as resolved strings."""

    region: str
    service_name: str  # the ServiceName dimension of the service's metrics
    cluster_name: str
    ecs_service_name: str
    load_balancer: str  # ARN suffix app/<name>/<id>
    target_group: str  # ARN suffix targetgroup/<name>/<id>
    gpu_auto_scaling_group: str | None = None  # GPU stacks: the GPU instances' ASG
    concurrency_target: float | None = None  # the scaling policy's target, drawn as a line
    queue_time_alarm_ms: float | None = None
    container_insights: bool = True  # the cluster publishes ECS/ContainerInsights task counts


def _service(metric: mn.Metric, t: DashboardTargets, **options: Any) -> list[Any]:
    return [mn.NAMESPACE, metric.name, mn.SERVICE, t.service_name, options]


def _search(metric: mn.Metric, dims: tuple[str, ...], t: DashboardTargets, stat: str) -> dict:
    schema = ",".join((mn.NAMESPACE, *dims))
    query = f'{{{schema}}} {mn.SERVICE}="{t.service_name}" MetricName="{metric.name}"'
    return {"expression": f"SEARCH('{query}', '{stat}', 60)"}


def _alb(name: str, t: DashboardTargets, per_target_group: bool = True, **options: Any) -> list:
    dims = ["LoadBalancer", t.load_balancer]
    if per_target_group:
        dims += ["TargetGroup", t.target_group]
    return [ALB, name, *dims, options]


def _ecs(namespace: str, name: str, t: DashboardTargets, **options: Any) -> list:
    return [
        namespace,
        name,
        "ClusterName",
        t.cluster_name,
        "ServiceName",
        t.ecs_service_name,
        options,
    ]


def _widget(title: str, metrics: list, t: DashboardTargets, **props: Any) -> dict[str, Any]:
    props = {k: v for k, v in props.items() if v}  # no empty annotations
    return {
        "type": "metric",
        "width": WIDTH,
        "height": HEIGHT,
        "properties": {
            "title": title,
            "region": t.region,
            "view": "timeSeries",
            "period": 60,
            "metrics": metrics,
            **props,
        },
    }


def _line(value: float | None, label: str) -> dict[str, Any]:
    return {"horizontal": [{"value": value, "label": label}]} if value is not None else {}


def dashboard_body(t: DashboardTargets) -> dict[str, Any]:
    """The dashboard JSON (as a dict): traffic, latency, errors, load, models, capacity, GPU."""
    widgets: list[dict[str, Any]] = [
        _widget(
            "Requests per minute",
            [
                _alb("RequestCount", t, stat="Sum", label="load balancer"),
                _service(mn.REQUESTS, t, stat="Sum", label="inference (service)"),
            ],
            t,
        ),
        _widget(
            "Latency at the load balancer (s)",
            [
                _alb("TargetResponseTime", t, stat="p50", label="p50"),
                _alb("TargetResponseTime", t, stat="p99", label="p99"),
            ],
            t,
        ),
        _widget(
            "Inference latency in the service (ms)",
            [
                _service(mn.LATENCY, t, stat="p50", label="p50"),
                _service(mn.LATENCY, t, stat="p99", label="p99"),
            ],
            t,
        ),
        _widget(
            "Errors and shed requests per minute",
            [
                _alb("HTTPCode_Target_5XX_Count", t, stat="Sum", label="5xx from tasks"),
                _alb("HTTPCode_ELB_5XX_Count", t, False, stat="Sum", label="5xx from the ALB"),
                _service(mn.SHED, t, stat="Sum", label="shed 503 (queue full)"),
                _service(mn.ERRORS_5XX, t, stat="Sum", label="inference 5xx"),
                _service(mn.ERRORS_4XX, t, stat="Sum", label="inference 4xx"),
            ],
            t,
        ),
        _widget(
            "Queue time (ms)",
            [
                _service(mn.QUEUE_TIME, t, stat="p50", label="p50"),
                _service(mn.QUEUE_TIME, t, stat="p99", label="p99"),
            ],
            t,
            annotations=_line(t.queue_time_alarm_ms, "alarm"),
        ),
        _widget(
            "Batch size (rows per run) and run time (ms)",
            [
                _service(mn.BATCH_SIZE, t, stat="Average", label="batch size, average"),
                _service(mn.BATCH_SIZE, t, stat="Maximum", label="batch size, max"),
                _service(mn.INFERENCE_TIME, t, stat="p50", label="run time p50", yAxis="right"),
                _service(mn.INFERENCE_TIME, t, stat="p99", label="run time p99", yAxis="right"),
            ],
            t,
        ),
        _widget(
            "In-flight requests per task (scaling signal)",
            [
                _service(mn.CONCURRENCY, t, stat="Average", label="average per task"),
                _service(mn.MAX_CONCURRENCY, t, stat="Maximum", label="peak in a task"),
            ],
            t,
            annotations=_line(t.concurrency_target, "scaling target"),
        ),
        _widget(
            "Tasks",
            [
                # Container Insights metrics exist only where the cluster has it enabled.
                *(
                    [
                        _ecs(INSIGHTS, "RunningTaskCount", t, stat="Average", label="running"),
                        _ecs(INSIGHTS, "DesiredTaskCount", t, stat="Average", label="desired"),
                    ]
                    if t.container_insights
                    else []
                ),
                _alb("HealthyHostCount", t, stat="Minimum", label="healthy targets"),
                _alb("UnHealthyHostCount", t, stat="Maximum", label="unhealthy targets"),
            ],
            t,
        ),
        _widget(
            "Task CPU and memory (%)",
            [
                _ecs(ECS, "CPUUtilization", t, stat="Average", label="CPU"),
                _ecs(ECS, "MemoryUtilization", t, stat="Average", label="memory"),
            ],
            t,
        ),
        _widget(
            "Model versions",
            [
                {
                    **_search(mn.VERSIONS_READY, (mn.SERVICE, mn.PROVIDER), t, "Maximum"),
                    "id": "ready",
                },
                _service(mn.VERSIONS_UNAVAILABLE, t, stat="Maximum", label="unavailable"),
                _service(mn.MODEL_LOAD_FAILURES, t, stat="Sum", label="load failures"),
            ],
            t,
        ),
        _widget(
            "Requests per model",
            [{**_search(mn.REQUESTS, (mn.SERVICE, mn.MODEL), t, "Sum"), "id": "models"}],
            t,
        ),
        _widget(
            "Queue time p99 per model version (ms)",
            [
                {
                    **_search(mn.QUEUE_TIME, (mn.SERVICE, mn.MODEL, mn.VERSION), t, "p99"),
                    "id": "versions",
                }
            ],
            t,
        ),
    ]
    if t.gpu_auto_scaling_group is not None:
        asg = [gpu.ASG_DIMENSION, t.gpu_auto_scaling_group]
        widgets += [
            _widget(
                "GPU utilisation (%)",
                [
                    [gpu_ns := mn.GPU_NAMESPACE, gpu.GPU_UTILIZATION, *asg, {"stat": "Average"}],
                    [gpu_ns, gpu.GPU_UTILIZATION, *asg, {"stat": "Maximum", "label": "max"}],
                ],
                t,
                yAxis={"left": {"min": 0, "max": 100}},
            ),
            _widget(
                "GPU memory (MiB)",
                [
                    [gpu_ns, gpu.GPU_MEMORY_USED, *asg, {"stat": "Maximum", "label": "used"}],
                    [gpu_ns, gpu.GPU_MEMORY_TOTAL, *asg, {"stat": "Maximum", "label": "total"}],
                ],
                t,
            ),
        ]
    for i, widget in enumerate(widgets):
        widget["x"], widget["y"] = (i % 3) * WIDTH, (i // 3) * HEIGHT
    return {"periodOverride": "inherit", "widgets": widgets}
