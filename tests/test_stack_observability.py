"""Observability of the dev and prod stacks under mocks: dashboard, alarms, metrics path, GPU
metrics and the scaling policy on the service's own metric.

What the dashboard shows is checked against what the stack emits: the series a real flush of the
service's EMF emitter produces (service/emf.py, through tests/emf_spec.py), the GPU agent's
configuration (components/gpu/cloudwatch_agent.py) and AWS's documented metrics.
"""

from __future__ import annotations

import base64
import dataclasses
import json
import re
import subprocess
from typing import Any

import pytest

from components.dashboard import AWS_METRICS, DashboardTargets, dashboard_body
from components.gpu import cloudwatch_agent as gpu
from components.monitoring import (
    ServiceMonitoring,
    ServiceMonitoringArgs,
    validate_dashboard_name,
)
from components.service_alarms import AlarmThresholds
from components.stack_config import GPU_CONCURRENCY_PER_TASK, StackConfig
from service import metric_names as mn
from service.emf import EmfMetrics
from tests.emf_spec import check_emf, extracted
from tests.pulumi_mocks import REGION, RecordingMocks
from tests.test_stack_dev import DEV, NAME, _mock_fixes, run_stack  # noqa: F401
from tests.test_stack_prod import PROD

DASHBOARD = "aws:cloudwatch/dashboard:Dashboard"
ALARM = "aws:cloudwatch/metricAlarm:MetricAlarm"
POLICY = "aws:appautoscaling/policy:Policy"
SEARCH = re.compile(r"SEARCH\('\{(?P<schema>[^}]*)\}(?P<terms>[^']*)', '(?P<stat>[^']+)', 60\)")


@pytest.fixture(scope="module")
def dev(_mock_fixes: None) -> tuple[RecordingMocks, dict[str, Any]]:  # noqa: F811
    mocks, exports = run_stack(DEV)
    return RecordingMocks(resources=list(mocks.resources), calls=list(mocks.calls)), exports


@pytest.fixture(scope="module")
def prod(_mock_fixes: None) -> tuple[RecordingMocks, dict[str, Any]]:  # noqa: F811
    mocks, exports = run_stack(PROD)
    return RecordingMocks(resources=list(mocks.resources), calls=list(mocks.calls)), exports


def emitted_series(service_name: str) -> set[tuple[str, str, tuple[str, ...]]]:
    """(namespace, metric, dimension names) of every series one real flush of the service's
    emitter creates, each record checked against the EMF specification."""
    emf = EmfMetrics(service_name)
    emf.request_started()
    emf.request_finished("m", 200, 0.01, shed=False)
    emf.request_started()
    emf.request_finished("m", 503, 0.001, shed=True)
    emf.batch("m", 1, [0.001], 0.002, 1)
    emf.load_failed("m", 2)
    series = set()
    for doc in emf.flush({"CUDAExecutionProvider": 1}, 1):
        check_emf(doc)
        for namespace, metric, dims in extracted(doc):
            assert dict(dims)[mn.SERVICE] == service_name
            series.add((namespace, metric, tuple(sorted(k for k, _ in dims))))
    return series


def gpu_series() -> set[tuple[str, str, tuple[str, ...]]]:
    """What the GPU agent publishes with the roll-up its configuration asks for."""
    config = gpu.agent_config()["metrics"]
    measured = config["metrics_collected"]["nvidia_gpu"]["measurement"]
    return {
        (config["namespace"], gpu.MEASUREMENTS[m["name"]][0], tuple(sorted(dims)))
        for m in measured
        for dims in config["aggregation_dimensions"]
    }


def shown(body: dict[str, Any]) -> list[tuple[str, str, dict[str, str]]]:
    """Every (namespace, metric, dimensions) the dashboard plots, SEARCH expressions included
    (their schema's dimension names, with the values their terms pin)."""
    out = []
    for widget in body["widgets"]:
        for entry in widget["properties"]["metrics"]:
            if isinstance(entry, dict):
                m = SEARCH.fullmatch(entry["expression"])
                assert m, entry
                namespace, *dim_names = m["schema"].split(",")
                terms = dict(re.findall(r'(\w+)="([^"]*)"', m["terms"]))
                metric = terms.pop("MetricName")
                out.append((namespace, metric, {d: terms.get(d, "*") for d in dim_names}))
                continue
            *path, options = entry
            assert isinstance(options, dict)
            namespace, metric, *pairs = path
            assert "." not in (namespace, metric)  # no shorthand that could hide a name
            out.append((namespace, metric, dict(zip(pairs[::2], pairs[1::2], strict=True))))
    return out


def assert_everything_shown_is_emitted(body: dict[str, Any], targets: DashboardTargets) -> None:
    service = emitted_series(targets.service_name)
    agent = gpu_series()
    for namespace, metric, dims in shown(body):
        names = tuple(sorted(dims))
        if namespace == mn.NAMESPACE:
            assert (namespace, metric, names) in service, (metric, names)
            assert dims[mn.SERVICE] == targets.service_name
        elif namespace == mn.GPU_NAMESPACE:
            assert (namespace, metric, names) in agent, (metric, names)
            assert dims[gpu.ASG_DIMENSION] == targets.gpu_auto_scaling_group
        else:
            assert names in {tuple(sorted(d)) for d in AWS_METRICS[(namespace, metric)]}
            # Container Insights publishes nothing for a cluster that has it disabled.
            assert namespace != "ECS/ContainerInsights" or targets.container_insights, metric
            # CloudWatch's ALB dimensions are ARN suffixes, never ARNs.
            if "LoadBalancer" in dims:
                assert dims["LoadBalancer"] == targets.load_balancer
                assert dims["LoadBalancer"].startswith("app/")
            if "TargetGroup" in dims:
                assert dims["TargetGroup"].startswith("targetgroup/")
            if "ServiceName" in dims:
                assert dims["ServiceName"] == targets.ecs_service_name


def test_every_dashboard_metric_is_one_the_stack_emits() -> None:
    targets = DashboardTargets(
        region="us-east-1",
        service_name="onnx-prod",
        cluster_name="c",
        ecs_service_name="onnx-prod-service-1a2b",
        load_balancer="app/onnx-prod-alb/0123",
        target_group="targetgroup/onnx-prod-tg/4567",
        gpu_auto_scaling_group="onnx-prod-gpu-asg",
        concurrency_target=32,
    )
    body = dashboard_body(targets)
    assert_everything_shown_is_emitted(body, targets)
    plotted = {metric for _, metric, _ in shown(body)}
    # the list: requests, p50/p99, 5xx and shed, queue time, batch size, tasks, GPU
    for metric in ("RequestCount", "TargetResponseTime", "HTTPCode_Target_5XX_Count",
                   "RequestsShed", "QueueTime", "BatchSize", "RunningTaskCount",
                   "DesiredTaskCount", gpu.GPU_UTILIZATION, gpu.GPU_MEMORY_USED):  # fmt: skip
        assert metric in plotted, metric


def test_a_misspelt_metric_would_fail_the_check() -> None:
    """The check above can fail: a name the service does not emit is caught."""
    targets = DashboardTargets("us-east-1", "s", "c", "e", "app/a/1", "targetgroup/t/2")
    body = dashboard_body(targets)
    body["widgets"][0]["properties"]["metrics"].append(
        [mn.NAMESPACE, "QueueTimeMs", mn.SERVICE, "s", {}]
    )
    with pytest.raises(AssertionError, match="QueueTimeMs"):
        assert_everything_shown_is_emitted(body, targets)


def test_without_container_insights_the_dashboard_plots_no_task_counts(
    _mock_fixes: None,  # noqa: F811
) -> None:
    """``containerInsights: disabled`` is accepted stack config; the cluster then publishes no
    ``ECS/ContainerInsights`` metrics (Amazon ECS Developer Guide, "Amazon ECS Container
    Insights metrics": RunningTaskCount/DesiredTaskCount come from Container Insights), so the
    dashboard must not show them (issue 12: every metric the dashboard shows is emitted)."""
    mocks, exports = run_stack(DEV, {"containerInsights": "disabled"})
    body = _dashboard(mocks)
    namespaces = {ns for ns, _, _ in shown(body)}
    assert "ECS/ContainerInsights" not in namespaces
    assert {"AWS/ApplicationELB", "AWS/ECS", mn.NAMESPACE} <= namespaces
    plotted = {metric for _, metric, _ in shown(body)}
    assert {"HealthyHostCount", "UnHealthyHostCount"} <= plotted  # the tasks, as targets
    alb = mocks.one("aws:lb/loadBalancer:LoadBalancer")
    targets = DashboardTargets(
        region=REGION,
        service_name=NAME,
        cluster_name=exports["clusterName"],
        ecs_service_name=exports["serviceName"],
        load_balancer=f"app/{alb.name}/0123456789",
        target_group=f"targetgroup/{NAME}-tg/0123456789",
        container_insights=False,
    )
    assert_everything_shown_is_emitted(body, targets)
    # and the check itself fails on the default dashboard of such a cluster
    with pytest.raises(AssertionError, match="RunningTaskCount"):
        assert_everything_shown_is_emitted(dashboard_body(targets_with_insights(targets)), targets)


def targets_with_insights(targets: DashboardTargets) -> DashboardTargets:
    return dataclasses.replace(targets, container_insights=True)


@pytest.mark.parametrize("bad", ["onnx.prod", "onnx prod", "x" * 256, "", "dash/board"])
def test_dashboard_names_putdashboard_refuses_fail_at_preview(bad: str) -> None:
    """CloudWatch API Reference, PutDashboard, DashboardName: "The maximum length is 255, and
    valid characters are A-Z, a-z, 0-9, "-", and "_"" -- checked before any cloud call."""
    with pytest.raises(ValueError, match="dashboard name is 1-255 of A-Z"):
        validate_dashboard_name(bad)
    validate_dashboard_name("onnx-prod_2-us-east-1")


def test_a_stack_name_the_dashboard_cannot_carry_fails_at_preview() -> None:
    """The default dashboard name is the service's plus the region; a service name with a dot
    (Pulumi accepts stack names like ``prod.eu``) would make PutDashboard fail at deploy."""
    args = ServiceMonitoringArgs(
        service_name="onnx-prod.eu",
        cluster_name="c",
        ecs_service_name="s",
        load_balancer_arn_suffix="app/a/1",
        target_group_arn_suffix="targetgroup/t/2",
        alarm_topic_arn="arn:aws:sns:us-east-1:123456789012:t",
    )
    with pytest.raises(ValueError, match=r"'onnx-prod\.eu-x"):
        ServiceMonitoring("m", args)


def test_widgets_fit_the_grid_and_fargate_has_no_gpu_widgets() -> None:
    """CloudWatch API Reference, "Dashboard Body Structure and Syntax": a ``widgets`` array (at
    most 500) of objects with ``type``, ``x``/``y`` on a 24-column grid, ``width`` (1-24),
    ``height`` and ``properties``; a metric widget's properties carry ``metrics``, ``region``
    and ``period`` (a multiple of 60 for regular-resolution metrics)."""
    targets = DashboardTargets("us-east-1", "s", "c", "e", "app/a/1", "targetgroup/t/2")
    body = dashboard_body(targets)
    json.loads(json.dumps(body))
    assert all(mn.GPU_NAMESPACE not in json.dumps(w) for w in body["widgets"])
    assert len(body["widgets"]) <= 500
    for w in body["widgets"]:
        assert w["type"] == "metric" and w["properties"]["region"] == "us-east-1"
        assert w["x"] >= 0 and w["x"] + w["width"] <= 24 and w["y"] >= 0
        assert 1 <= w["width"] <= 24 and 1 <= w["height"] <= 1000
        assert w["properties"]["period"] == 60  # the service publishes once a minute


# -- the stacks --------------------------------------------------------------------------------
def _dashboard(mocks: RecordingMocks) -> dict[str, Any]:
    return json.loads(mocks.one(DASHBOARD).inputs["dashboardBody"])


def _env(mocks: RecordingMocks) -> dict[str, str]:
    task = mocks.one("aws:ecs/taskDefinition:TaskDefinition", NAME + "-taskdef")
    (app,) = [c for c in json.loads(task.inputs["containerDefinitions"]) if c["name"] == "app"]
    return {e["name"]: e["value"] for e in app["environment"]}


@pytest.mark.parametrize("stack", ["dev", "prod"])
def test_each_stack_has_a_dashboard_of_what_it_emits(
    stack: str, request: pytest.FixtureRequest
) -> None:
    mocks, exports = request.getfixturevalue(stack)
    body = _dashboard(mocks)
    env = _env(mocks)
    # the service's metrics are labelled with the name the dashboard looks for
    assert env["EMF_SERVICE_NAME"] == NAME and env["EMF_NAMESPACE"] == mn.NAMESPACE
    alb = mocks.one("aws:lb/loadBalancer:LoadBalancer")
    targets = DashboardTargets(
        region="us-east-1",
        service_name=NAME,
        cluster_name=exports["clusterName"],
        ecs_service_name=exports["serviceName"],
        load_balancer=f"app/{alb.name}/0123456789",
        target_group=f"targetgroup/{NAME}-tg/0123456789",
        gpu_auto_scaling_group=f"{NAME}-gpu-asg" if stack == "prod" else None,
    )
    assert_everything_shown_is_emitted(body, targets)
    namespaces = {ns for ns, _, _ in shown(body)}
    assert {"AWS/ApplicationELB", mn.NAMESPACE} <= namespaces
    plotted = {metric for _, metric, _ in shown(body)}
    alb_metrics = {"RequestCount", "TargetResponseTime", "HTTPCode_Target_5XX_Count"}
    service_metrics = {"Requests", "Latency", "QueueTime", "RequestsShed", "BatchSize"}
    assert alb_metrics | service_metrics <= plotted
    assert (mn.GPU_NAMESPACE in namespaces) == (stack == "prod")
    assert exports["dashboardName"] == f"{NAME}-{REGION}"  # dashboards are global: the region
    assert exports["metricsLogGroupName"].endswith("/metrics")


@pytest.mark.parametrize("stack", ["dev", "prod"])
def test_alarms_notify_the_stack_topic(stack: str, request: pytest.FixtureRequest) -> None:
    """The alarms' actions are the stack's alert topic: its key policy admits
    cloudwatch.amazonaws.com (``kms:GenerateDataKey*``, ``kms:Decrypt``; Amazon SNS Developer
    Guide, "Data encryption" / "Enable compatibility between event sources from AWS services
    and encrypted topics"), checked for every alert topic by the stack-wide test of issue 11.
    Missing data: "Configuring how CloudWatch alarms treat missing data" (Amazon CloudWatch User
    Guide) -- ``notBreaching`` for metrics that only exist with traffic (shed, queue time), and
    the model alarm watches a series every task publishes each minute
    (tests/components/test_service_alarms.py)."""
    mocks, exports = request.getfixturevalue(stack)
    alarms = {a.name.removeprefix(f"{NAME}-monitoring-"): a.inputs for a in mocks.of_type(ALARM)}
    mine = {k: v for k, v in alarms.items() if v.get("namespace") == mn.NAMESPACE}
    assert set(mine) >= {"model-load-failed", "requests-shed", "queue-time"}
    for alarm in mine.values():
        assert alarm["alarmActions"] == [exports["alarmTopicArn"]]
        assert alarm["okActions"] == [exports["alarmTopicArn"]]
        assert alarm["dimensions"] == {mn.SERVICE: NAME}
        assert alarm["treatMissingData"] == "notBreaching"
        assert alarm["period"] == 60
    # the state (a version not serving), not the one-off failure count: see
    # tests/components/test_service_alarms.py
    load = mine["model-load-failed"]
    assert (load["metricName"], load["statistic"], load["threshold"]) == (
        "ModelVersionsUnavailable",
        "Maximum",
        1,
    )
    assert load["comparisonOperator"] == "GreaterThanOrEqualToThreshold"
    queue = mine["queue-time"]
    assert (queue["metricName"], queue["extendedStatistic"], queue["threshold"]) == (
        "QueueTime",
        "p99",
        100,
    )
    shed = mine["requests-shed"]
    assert (shed["evaluationPeriods"], shed["datapointsToAlarm"], shed["threshold"]) == (5, 5, 10)
    # every metric an alarm watches is one the service emits, with these dimensions
    series = emitted_series(NAME)
    for alarm in mine.values():
        assert (mn.NAMESPACE, alarm["metricName"], (mn.SERVICE,)) in series


def test_alarm_thresholds_come_from_stack_config(_mock_fixes: None) -> None:  # noqa: F811
    mocks, _ = run_stack(DEV, {"queueTimeAlarmMs": 250, "sheddingAlarmMinutes": 3})
    alarms = {a.name: a.inputs for a in mocks.of_type(ALARM)}
    assert alarms[f"{NAME}-monitoring-queue-time"]["threshold"] == 250
    assert alarms[f"{NAME}-monitoring-requests-shed"]["evaluationPeriods"] == 3


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        ({"queue_time_alarm_ms": 0}, "queueTimeAlarmMs"),
        ({"shedding_alarm_per_minute": 0}, "sheddingAlarmPerMinute"),
        ({"shedding_alarm_minutes": 2000}, "sheddingAlarmMinutes"),
        ({"queue_time_alarm_minutes": 0}, "queueTimeAlarmMinutes"),
        ({"metrics_log_retention_days": 10}, "metricsLogRetentionDays"),
        ({"concurrency_per_task": -1}, "concurrencyPerTask"),
    ],
)
def test_bad_observability_config_fails_at_preview(overrides: dict, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        StackConfig(**overrides).validate()


def test_default_thresholds_validate() -> None:
    AlarmThresholds().validate()


# -- metrics path ------------------------------------------------------------------------------
def test_metrics_reach_cloudwatch_through_the_router(
    dev: tuple[RecordingMocks, dict[str, Any]],
) -> None:
    mocks, exports = dev
    task = mocks.one("aws:ecs/taskDefinition:TaskDefinition", NAME + "-taskdef")
    router = next(
        c for c in json.loads(task.inputs["containerDefinitions"]) if c["name"] == "log-router"
    )
    env = {e["name"]: e["value"] for e in router["environment"]}
    assert env["METRICS_LOG_GROUP_NAME"] == exports["metricsLogGroupName"]
    group = next(
        g.inputs
        for g in mocks.of_type("aws:cloudwatch/logGroup:LogGroup")
        if g.inputs["name"] == exports["metricsLogGroupName"]
    )
    assert group["retentionInDays"] == 30
    policy = json.loads(
        mocks.one("aws:iam/rolePolicy:RolePolicy", f"{NAME}-task-policy").inputs["policy"]
    )
    resources = [r for s in policy["Statement"] for r in s.get("Resource", [])]
    assert any(r.endswith(":*") and "metrics" in r for r in resources)


# -- GPU metrics and scaling -------------------------------------------------------------------
def test_prod_gpu_instances_run_the_gpu_metrics_agent(
    prod: tuple[RecordingMocks, dict[str, Any]],
) -> None:
    """Amazon CloudWatch User Guide: "Collect NVIDIA GPU metrics" (a ``nvidia_gpu`` section in
    ``metrics_collected``; ``utilization_gpu`` is published as ``nvidia_smi_utilization_gpu``,
    ``memory_used`` as ``nvidia_smi_memory_used``..., with dimensions ``index``, ``name``,
    ``host``, and no unit unless the config sets one); "Manually create or edit the CloudWatch
    agent configuration file" (``append_dimensions`` keys ``InstanceId``/``AutoScalingGroupName``
    ..., ``aggregation_dimensions`` roll-ups, ``run_as_user``: "the user must exist before you
    start the CloudWatch agent" -- the package creates ``cwagent``); "Using condition keys to
    limit access to CloudWatch namespaces" (``cloudwatch:PutMetricData`` with
    ``StringEquals`` ``cloudwatch:namespace``)."""
    mocks, _ = prod
    template = mocks.one("aws:ec2/launchTemplate:LaunchTemplate").inputs
    script = base64.b64decode(template["userData"]).decode()
    checked = subprocess.run(["bash", "-n"], input=script, text=True, capture_output=True)
    assert checked.returncode == 0, checked.stderr  # the user data is valid bash
    ecs_at, agent_at = script.index("/etc/ecs/ecs.config"), script.index("amazon-cloudwatch-agent")
    assert ecs_at < agent_at  # the instance joins ECS whatever happens to the agent
    heredoc = script.split("<<'CWAGENT'", 1)[1].split("\n", 1)[1]
    config = json.loads(heredoc.split("\nCWAGENT", 1)[0])
    assert config == gpu.agent_config()
    assert config["metrics"]["namespace"] == mn.GPU_NAMESPACE
    assert set(config["metrics"]["metrics_collected"]["nvidia_gpu"]["measurement"][0]) == {
        "name",
        "unit",
    }
    policy = json.loads(
        mocks.one("aws:iam/rolePolicy:RolePolicy", f"{NAME}-gpu-instance-gpu-metrics").inputs[
            "policy"
        ]
    )
    put = next(s for s in policy["Statement"] if s["Action"] == "cloudwatch:PutMetricData")
    assert put["Condition"] == {"StringEquals": {"cloudwatch:namespace": mn.GPU_NAMESPACE}}


def test_gpu_metrics_can_be_turned_off(_mock_fixes: None) -> None:  # noqa: F811
    mocks, _ = run_stack(PROD, {"gpuMetrics": False})
    script = base64.b64decode(
        mocks.one("aws:ec2/launchTemplate:LaunchTemplate").inputs["userData"]
    ).decode()
    assert "cloudwatch-agent" not in script
    assert not [
        p for p in mocks.of_type("aws:iam/rolePolicy:RolePolicy") if "gpu-metrics" in p.name
    ]


def test_prod_scales_on_in_flight_requests_per_task(
    prod: tuple[RecordingMocks, dict[str, Any]],
) -> None:
    """Application Auto Scaling API Reference, CustomizedMetricSpecification: "Choose a metric
    that changes proportionally with capacity. The value of the metric should increase or
    decrease in inverse proportion to the number of capacity units" (in-flight requests per
    task, averaged over the tasks' datapoints); "If you published your metric with dimensions,
    you must specify the same dimensions in your scaling policy" (``ServiceName``, the value the
    task definition gives the service); ``Statistic`` is one of Average, Minimum, Maximum,
    SampleCount, Sum (no percentiles); the unit is the one the metric is published with."""
    mocks, _ = prod
    policies = {p.name: p.inputs for p in mocks.of_type(POLICY)}
    assert set(policies) == {f"{NAME}-scale-cpu", f"{NAME}-scale-concurrency"}
    config = policies[f"{NAME}-scale-concurrency"]["targetTrackingScalingPolicyConfiguration"]
    assert config["targetValue"] == GPU_CONCURRENCY_PER_TASK
    spec = config["customizedMetricSpecification"]
    assert (spec["namespace"], spec["metricName"], spec["statistic"]) == (
        mn.NAMESPACE,
        mn.CONCURRENCY.name,
        "Average",
    )
    assert spec["dimensions"] == [{"name": mn.SERVICE, "value": _env(mocks)["EMF_SERVICE_NAME"]}]
    assert spec["statistic"] in {"Average", "Minimum", "Maximum", "SampleCount", "Sum"}
    assert spec["unit"] == mn.CONCURRENCY.unit
    assert (mn.NAMESPACE, mn.CONCURRENCY.name, (mn.SERVICE,)) in emitted_series(NAME)


def test_fargate_keeps_cpu_and_requests_unless_asked(_mock_fixes: None) -> None:  # noqa: F811
    mocks, _ = run_stack(DEV)
    assert {p.name for p in mocks.of_type(POLICY)} == {
        f"{NAME}-scale-cpu",
        f"{NAME}-scale-requests",
    }
    mocks, _ = run_stack(DEV, {"concurrencyPerTask": 8})
    policies = {p.name: p.inputs for p in mocks.of_type(POLICY)}
    config = policies[f"{NAME}-scale-concurrency"]["targetTrackingScalingPolicyConfiguration"]
    assert config["targetValue"] == 8
