"""Cost and capacity of the dev and prod stacks, run through ``__main__.py`` under mocks.

What issue 13 asks the stacks to show: prod's GPU group buys Spot above an On-Demand floor over
several instance types with capacity rebalancing and ECS Spot draining; the model sync runs on
FARGATE_SPOT; the preview reads the G/VT quotas; dev scales to zero at night and back. AWS
requirements behind each are cited in tests/components/test_gpu_spot.py and test_off_hours.py.
"""

from __future__ import annotations

import base64
import json
from typing import Any

import pytest

from components.fargate_capacity import DEPLOYMENT_MAXIMUM_PERCENT
from tests.pulumi_mocks import RecordingMocks
from tests.test_stack_dev import DEV, NAME, PROJECT, _mock_fixes, run_stack  # noqa: F401
from tests.test_stack_prod import PROD

ASG = "aws:autoscaling/group:Group"
LT = "aws:ec2/launchTemplate:LaunchTemplate"
SERVICE = "aws:ecs/service:Service"
CCP = "aws:ecs/clusterCapacityProviders:ClusterCapacityProviders"
SCHEDULED = "aws:appautoscaling/scheduledAction:ScheduledAction"
GROUP_SCHEDULE = "aws:autoscaling/schedule:Schedule"


@pytest.fixture(scope="module")
def dev(_mock_fixes: None) -> RecordingMocks:  # noqa: F811
    mocks, _ = run_stack(DEV, {"modelSyncSource": "s3://my-models/dev"})
    return RecordingMocks(resources=list(mocks.resources), calls=list(mocks.calls))


@pytest.fixture(scope="module")
def prod(_mock_fixes: None) -> RecordingMocks:  # noqa: F811
    mocks, _ = run_stack(PROD)
    return RecordingMocks(resources=list(mocks.resources), calls=list(mocks.calls))


def dev_key(name: str) -> Any:
    return DEV[f"{PROJECT}:{name}"]


# -- prod: GPU Spot above an On-Demand floor ------------------------------------------------------
def test_prod_gpu_group_is_spot_above_an_on_demand_floor(prod: RecordingMocks) -> None:
    group = prod.one(ASG).inputs
    policy = group["mixedInstancesPolicy"]
    distribution = policy["instancesDistribution"]
    min_count = PROD[f"{PROJECT}:minCount"]
    assert distribution["onDemandBaseCapacity"] >= 1
    assert distribution["onDemandBaseCapacity"] == min_count  # the service's floor
    assert distribution["onDemandPercentageAboveBaseCapacity"] == 0  # Spot above it
    assert distribution["spotAllocationStrategy"] in (
        "price-capacity-optimized",
        "capacity-optimized",
    )
    types = [o["instanceType"] for o in policy["launchTemplate"]["overrides"]]
    assert len(types) >= 2 and len(set(types)) == len(types)
    assert group["capacityRebalance"] is True
    script = base64.b64decode(prod.one(LT).inputs["userData"]).decode().splitlines()
    assert "ECS_ENABLE_SPOT_INSTANCE_DRAINING=true" in script


def test_prod_sync_runs_on_fargate_spot(prod: RecordingMocks) -> None:
    machine = prod.one("aws:sfn/stateMachine:StateMachine").inputs
    states = json.loads(machine["definition"])["States"]
    params = states["RunTask"]["Parameters"]
    assert params["CapacityProviderStrategy"] == [{"CapacityProvider": "FARGATE_SPOT", "Weight": 1}]


def test_prod_preview_reads_both_gpu_quotas(prod: RecordingMocks) -> None:
    reads = {
        (a["serviceCode"], a["quotaCode"])
        for token, a in prod.calls
        if token == "aws:servicequotas/getServiceQuota:getServiceQuota"
    }
    assert {("ec2", "L-DB2E81BA"), ("ec2", "L-3819A6DF")} <= reads


def test_prod_has_no_off_hours(prod: RecordingMocks) -> None:
    assert prod.of_type(SCHEDULED) == [] and prod.of_type(GROUP_SCHEDULE) == []


def test_gpu_off_hours_lowers_the_group_minimum_only() -> None:
    mocks, _ = run_stack(PROD, {"offHoursStart": "06:00", "offHoursStop": "22:00"})
    schedules = {r.name: r.inputs for r in mocks.of_type(GROUP_SCHEDULE)}
    stop, start = schedules[f"{NAME}-gpu-off-hours-stop"], schedules[f"{NAME}-gpu-off-hours-start"]
    assert (stop["minSize"], stop["maxSize"], stop["desiredCapacity"]) == (0, -1, -1)
    assert start["minSize"] == PROD[f"{PROJECT}:gpuMinSize"]
    actions = {r.name: r.inputs for r in mocks.of_type(SCHEDULED)}
    assert actions[f"{NAME}-off-hours-stop"]["scalableTargetAction"] == {
        "minCapacity": 0,
        "maxCapacity": 0,
    }


# -- dev: off-hours and Fargate Spot ------------------------------------------------------------
def test_dev_scales_to_zero_at_night_and_back(dev: RecordingMocks) -> None:
    actions = {r.name: r.inputs for r in dev.of_type(SCHEDULED)}
    stop, start = actions[f"{NAME}-off-hours-stop"], actions[f"{NAME}-off-hours-start"]
    assert stop["scalableTargetAction"] == {"minCapacity": 0, "maxCapacity": 0}
    assert start["scalableTargetAction"] == {
        "minCapacity": dev_key("minCount"),
        "maxCapacity": dev_key("maxCount"),
    }
    assert stop["schedule"] == "cron(0 20 ? * MON,TUE,WED,THU,FRI *)"
    assert start["schedule"] == "cron(0 7 ? * MON,TUE,WED,THU,FRI *)"
    assert stop["timezone"] == start["timezone"] == dev_key("offHoursTimezone")
    target = dev.one("aws:appautoscaling/target:Target")
    assert stop["resourceId"] == target.inputs["resourceId"]


def test_dev_service_keeps_its_floor_on_demand_and_bursts_on_spot(dev: RecordingMocks) -> None:
    service = dev.one(SERVICE).inputs
    assert "launchType" not in service
    strategies = {s["capacityProvider"]: s for s in service["capacityProviderStrategies"]}
    assert strategies["FARGATE"]["base"] == dev_key("minCount")
    assert strategies["FARGATE_SPOT"]["weight"] == dev_key("fargateSpotWeight")
    attached = dev.one(CCP).inputs
    assert attached["capacityProviders"] == ["FARGATE", "FARGATE_SPOT"]
    # RunTask/CreateService without a strategy stay On-Demand
    assert attached["defaultCapacityProviderStrategies"] == [
        {"capacityProvider": "FARGATE", "base": 0, "weight": 1}
    ]


def test_quota_rollout_factor_matches_the_service(dev: RecordingMocks) -> None:
    """The quota guard multiplies by DEPLOYMENT_MAXIMUM_PERCENT; it must be what the service
    really deploys with."""
    assert dev.one(SERVICE).inputs["deploymentMaximumPercent"] == DEPLOYMENT_MAXIMUM_PERCENT


def test_dev_without_spot_keeps_an_on_demand_fargate_strategy() -> None:
    """Spot off is FARGATE alone, still a strategy (not the launch type): switching Spot on or
    off again is a strategy change ECS makes in place (tests/components/
    test_capacity_strategy_updates.py has the citations)."""
    mocks, _ = run_stack(DEV, {"fargateSpotWeight": 0})
    service = mocks.one(SERVICE).inputs
    assert "launchType" not in service
    assert [s["capacityProvider"] for s in service["capacityProviderStrategies"]] == ["FARGATE"]
    assert service["forceNewDeployment"] is True


def test_the_estimate_prices_the_alarms_the_stacks_create(
    dev: RecordingMocks, prod: RecordingMocks
) -> None:
    """``ops cost`` bills ``Usage.alarms`` standard alarms (USD 0.10 each, CloudWatch pricing,
    "Alarms"); it must be the number of MetricAlarm resources the stacks really create."""
    from ops.cost.estimate import Usage

    alarm = "aws:cloudwatch/metricAlarm:MetricAlarm"
    assert len(dev.of_type(alarm)) == len(prod.of_type(alarm)) == Usage().alarms


def test_the_estimate_counts_the_metrics_the_service_publishes() -> None:
    """One metric per name x dimension combination (CloudWatch pricing, "Metrics"): the count
    follows service/metric_names.py and docs/observability.md (23 for one model and version)."""
    from ops.cost.estimate import custom_metric_count

    assert custom_metric_count(1, 1) == 23
    assert custom_metric_count(3, 3) == 63
    assert custom_metric_count(2, 1) - custom_metric_count(1, 1) == 5 + 3 + 3  # model + version
