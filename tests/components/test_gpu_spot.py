"""Spot GPU capacity above an On-Demand floor (components/gpu/spot.py) under Pulumi mocks.

AWS requirements encoded here:
- EC2 Auto Scaling User Guide, "Auto Scaling groups with multiple instance types and purchase
  options" (https://docs.aws.amazon.com/autoscaling/ec2/userguide/ec2-auto-scaling-mixed-instances-groups.html):
  a mixed instances policy takes a launch template plus instance-type overrides and an
  InstancesDistribution (OnDemandBaseCapacity, OnDemandPercentageAboveBaseCapacity,
  SpotAllocationStrategy); the group refuses a launch template that itself requests Spot
  (InstanceMarketOptions), and a group has either LaunchTemplate or MixedInstancesPolicy.
- Same guide, "Allocation strategies for multiple instance types"
  (https://docs.aws.amazon.com/autoscaling/ec2/userguide/allocation-strategies.html):
  price-capacity-optimized is the recommended Spot strategy; capacity-optimized also avoids the
  pools most likely to be interrupted; lowest-price does not.
- Same guide, "Capacity Rebalancing" (ec2-auto-scaling-capacity-rebalancing.html): the group
  replaces a Spot instance on a rebalance recommendation when CapacityRebalance is true.
- Amazon ECS Developer Guide, "Spot Instance draining"
  (https://docs.aws.amazon.com/AmazonECS/latest/developerguide/container-instance-spot.html):
  ECS_ENABLE_SPOT_INSTANCE_DRAINING=true in /etc/ecs/ecs.config sets the instance DRAINING on the
  two-minute interruption notice.
- Same guide, "Configuring Amazon ECS Linux container instances to receive Spot Instance
  notices" (https://docs.aws.amazon.com/AmazonECS/latest/developerguide/spot-instance-draining-linux-container.html):
  "Amazon ECS does not receive a notice from Amazon EC2 when instances are removed by Auto
  Scaling Capacity Rebalancing". Those terminations go through the group, where the capacity
  provider's managed instance draining ("Configuring Amazon ECS capacity providers to safely
  shut down instances", enable-managed-instance-draining.html) drains the tasks first; so Spot
  with capacity rebalancing requires managed draining (refused otherwise).
- Amazon ECS Developer Guide, "Auto Scaling group capacity providers"
  (https://docs.aws.amazon.com/AmazonECS/latest/developerguide/asg-capacity-providers.html):
  managed termination protection needs managed scaling and instance scale-in protection on the
  group; that holds with a mixed instances policy too (asserted below).
- ECS cluster auto scaling with several instance types in one group works only without instance
  weights (all WeightedCapacity 1 or unset): its CapacityProviderReservation metric counts
  instances (the ECS team in aws/containers-roadmap#76,
  https://github.com/aws/containers-roadmap/issues/76, and "Deep dive on Amazon ECS cluster auto
  scaling"). So no override carries a weight.
"""

from __future__ import annotations

import base64
from typing import Any

import pytest

from components.gpu.cluster import GpuEc2Cluster, GpuEc2ClusterArgs
from components.gpu.instance_types import gpu_task_size
from components.gpu.spot import GpuMarket, smallest_instance_type
from tests.components.test_gpu_ec2_cluster import (  # noqa: F401 (an autouse fixture, used here)
    _launch_template_version,
)
from tests.pulumi_mocks import RecordingMocks, run

LT = "aws:ec2/launchTemplate:LaunchTemplate"
ASG = "aws:autoscaling/group:Group"
CP = "aws:ecs/capacityProvider:CapacityProvider"


def build(**overrides: Any) -> RecordingMocks:
    def program() -> GpuEc2Cluster:
        args = GpuEc2ClusterArgs(vpc_id="vpc-1", subnet_ids=["subnet-a", "subnet-b"], **overrides)
        return GpuEc2Cluster("infer", args)

    return run(program)


SPOT = {
    "spot": True,
    "spot_instance_types": ["g5.xlarge", "g6e.xlarge"],
    "min_size": 2,
    "max_size": 8,
}


def test_spot_group_has_on_demand_base_spot_above_and_several_types() -> None:
    mocks = build(**SPOT)
    group = mocks.one(ASG).inputs
    policy = group["mixedInstancesPolicy"]
    distribution = policy["instancesDistribution"]
    assert distribution["onDemandBaseCapacity"] == 2  # defaults to min_size: the floor
    assert distribution["onDemandPercentageAboveBaseCapacity"] == 0
    assert distribution["spotAllocationStrategy"] == "price-capacity-optimized"
    spec = policy["launchTemplate"]["launchTemplateSpecification"]
    assert spec["launchTemplateId"] == mocks.one(LT).name + "-id"
    assert spec["version"] == "3"
    types = [o["instanceType"] for o in policy["launchTemplate"]["overrides"]]
    assert types == ["g6.xlarge", "g5.xlarge", "g6e.xlarge"]
    assert all("weightedCapacity" not in o for o in policy["launchTemplate"]["overrides"])
    assert group["capacityRebalance"] is True
    assert "launchTemplate" not in group
    # the launch template does not request Spot itself (the group would refuse it)
    assert "instanceMarketOptions" not in mocks.one(LT).inputs
    # managed termination protection still has what it needs
    assert group["protectFromScaleIn"] is True
    assert mocks.one(CP).inputs["autoScalingGroupProvider"]["managedTerminationProtection"] == (
        "ENABLED"
    )
    script = base64.b64decode(mocks.one(LT).inputs["userData"]).decode()
    assert "ECS_ENABLE_SPOT_INSTANCE_DRAINING=true" in script.splitlines()


def test_explicit_base_and_percentage_and_strategy() -> None:
    mocks = build(
        **SPOT,
        on_demand_base_capacity=3,
        on_demand_percentage_above_base=25,
        spot_allocation_strategy="capacity-optimized",
    )
    distribution = mocks.one(ASG).inputs["mixedInstancesPolicy"]["instancesDistribution"]
    assert distribution["onDemandBaseCapacity"] == 3
    assert distribution["onDemandPercentageAboveBaseCapacity"] == 25
    assert distribution["spotAllocationStrategy"] == "capacity-optimized"


def test_spot_false_is_on_demand_only_with_one_type() -> None:
    mocks = build(min_size=2, max_size=8)
    group = mocks.one(ASG).inputs
    assert "mixedInstancesPolicy" not in group
    assert group["launchTemplate"]["version"] == "3"
    assert group["capacityRebalance"] is False
    script = base64.b64decode(mocks.one(LT).inputs["userData"]).decode()
    assert "SPOT" not in script


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        ({"spot_instance_types": ["g6.12xlarge"]}, "same GPU count"),
        ({"spot_instance_types": ["g4ad.xlarge"]}, "g4ad"),
        ({"spot_allocation_strategy": "lowest-price"}, "lowest-price"),
        ({"on_demand_base_capacity": 9}, "on_demand_base_capacity 9"),
        ({"on_demand_percentage_above_base": 101}, "on_demand_percentage_above_base 101"),
    ],
)
def test_bad_spot_settings_fail_before_any_resource(
    overrides: dict[str, Any], message: str
) -> None:
    settings = {**SPOT, **overrides}
    with pytest.raises(ValueError, match=message):
        build(**settings)


def test_spot_without_managed_draining_is_refused() -> None:
    with pytest.raises(ValueError, match="spot=True needs managed_draining=True"):
        build(**SPOT, managed_draining=False)
    assert build(**SPOT).one(CP).inputs["autoScalingGroupProvider"]["managedDraining"] == (
        "ENABLED"
    )


def test_instance_types_without_spot_are_refused() -> None:
    with pytest.raises(ValueError, match="only apply with spot=True"):
        build(spot_instance_types=["g5.xlarge"])


def test_single_type_spot_is_a_warning_not_an_error() -> None:
    market = GpuMarket(spot=True, on_demand_base_capacity=1)
    market.validate("g6.xlarge", 4)
    assert "single instance type" in market.warnings("g6.xlarge")[0]
    assert GpuMarket(spot=True, instance_types=("g5.xlarge",)).warnings("g6.xlarge") == []


def test_tasks_are_sized_for_the_smallest_type() -> None:
    """g6e.xlarge has 32 GiB, g6.xlarge 16: a task sized for g6e would never fit on g6."""
    assert smallest_instance_type(["g6e.xlarge", "g6.xlarge"]) == "g6.xlarge"
    args = GpuEc2ClusterArgs(
        vpc_id="v",
        subnet_ids=["s"],
        instance_type="g6e.xlarge",
        spot=True,
        spot_instance_types=["g6.xlarge"],
    )
    assert args.sizing_instance_type == "g6.xlarge"
    assert gpu_task_size(args.sizing_instance_type).memory < gpu_task_size("g6e.xlarge").memory


@pytest.mark.parametrize(
    ("market", "max_size", "expected"),
    [
        (GpuMarket(), 6, (6, 0)),
        (GpuMarket(spot=True, on_demand_base_capacity=2), 6, (2, 4)),
        (GpuMarket(spot=True, on_demand_base_capacity=2, on_demand_percentage_above_base=50), 7,
         (5, 3)),  # 5 above the base: at most 3 On-Demand (rounded up), 3 Spot (rounded up)
        (GpuMarket(spot=True, on_demand_base_capacity=0, on_demand_percentage_above_base=100), 4,
         (4, 0)),
    ],
)  # fmt: skip
def test_most_instances_per_market(market: GpuMarket, max_size: int, expected: tuple) -> None:
    assert market.most_instances(max_size) == expected
