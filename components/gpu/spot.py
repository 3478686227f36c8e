"""Spot GPU capacity above an On-Demand floor: the Auto Scaling group's mixed instances policy.

Why this shape (AWS guides cited in tests/components/test_gpu_spot.py):

- An On-Demand **base** (``on_demand_base_capacity``) covers the service's minimum tasks, so a
  Spot reclaim can never take the service below its floor; everything above the base is Spot
  (``on_demand_percentage_above_base`` 0 by default).
- **Several instance types** with the same GPU count (e.g. g6/g5/g6e ``xlarge``): each type and
  AZ is a separate Spot pool, and more pools mean fewer interruptions and fewer "no capacity"
  failures. Tasks are sized for the smallest type, so a task fits whichever type is launched.
- **price-capacity-optimized** allocation: AWS's recommended Spot strategy for most workloads
  (EC2 Auto Scaling guide, "Allocation strategies for multiple instance types"): it picks the
  pools with the most spare capacity first, then the cheapest of those, so it interrupts about as
  rarely as ``capacity-optimized`` at a lower price. ``capacity-optimized`` is accepted too.
- **Capacity rebalancing**: the group launches a replacement when EC2 sends a rebalance
  recommendation, before the two-minute interruption notice.
- **ECS Spot draining** (``ECS_ENABLE_SPOT_INSTANCE_DRAINING=true``, components/gpu/user_data.py):
  on the interruption notice the agent sets the instance DRAINING, so ECS stops its tasks
  gracefully and the service scheduler places replacements elsewhere.

No override carries a ``WeightedCapacity``: ECS managed scaling counts instances, and supports
several types in one group only with all weights 1 (aws/containers-roadmap#76).

A launch template used by a mixed instances policy must not request Spot itself
(``InstanceMarketOptions``): EC2 Auto Scaling refuses it, so the market choice lives here only.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import pulumi
import pulumi_aws as aws

from components.gpu.instance_types import instance_shape, parse_gpu_instance_type

SPOT_ALLOCATION_STRATEGIES = ("price-capacity-optimized", "capacity-optimized")
DEFAULT_SPOT_ALLOCATION_STRATEGY = "price-capacity-optimized"


@dataclass(frozen=True)
class GpuMarket:
    """How the GPU group buys its instances. ``spot=False``: On-Demand only, one type."""

    spot: bool = False
    instance_types: Sequence[str] = ()
    """Instance types Spot may use besides the launch template's one (same GPU count)."""
    on_demand_base_capacity: int = 0
    on_demand_percentage_above_base: int = 0
    spot_allocation_strategy: str = DEFAULT_SPOT_ALLOCATION_STRATEGY

    def all_instance_types(self, primary: str) -> list[str]:
        """The launch template's type first, then the others, without duplicates."""
        ordered = [primary, *self.instance_types]
        return list(dict.fromkeys(ordered))

    def validate(self, primary: str, max_size: int) -> None:
        """Refuse, at preview, markets AWS would refuse or that could never place a task."""
        types = self.all_instance_types(primary)
        for instance_type in types:
            parse_gpu_instance_type(instance_type)
        if not self.spot:
            if self.instance_types:
                raise ValueError(
                    f"spot_instance_types {list(self.instance_types)} only apply with spot=True "
                    "(On-Demand uses the one instance_type)"
                )
            return
        gpus = {t: shape.gpus for t in types if (shape := instance_shape(t)) is not None}
        if len(set(gpus.values())) > 1:
            raise ValueError(
                f"spot instance types must have the same GPU count so every task fits any of "
                f"them; got {gpus}"
            )
        if self.spot_allocation_strategy not in SPOT_ALLOCATION_STRATEGIES:
            raise ValueError(
                f"spot_allocation_strategy {self.spot_allocation_strategy!r}: use one of "
                f"{SPOT_ALLOCATION_STRATEGIES} (the lowest-price strategy ignores interruption "
                "risk)"
            )
        base = self.on_demand_base_capacity
        if isinstance(base, bool) or not isinstance(base, int) or not 0 <= base <= max_size:
            raise ValueError(
                f"on_demand_base_capacity {base!r} must be an integer in 0..max_size ({max_size})"
            )
        pct = self.on_demand_percentage_above_base
        if isinstance(pct, bool) or not isinstance(pct, int) or not 0 <= pct <= 100:
            raise ValueError(f"on_demand_percentage_above_base {pct!r} must be in 0..100")

    def warnings(self, primary: str) -> list[str]:
        """Legal but risky choices, for ``pulumi.log.warn``."""
        if self.spot and len(self.all_instance_types(primary)) < 2:
            return [
                f"spot with the single instance type {primary!r}: each type (and AZ) is a Spot "
                "pool, and one pool is reclaimed and exhausted far more often; add "
                "spot_instance_types with the same GPU count (e.g. g5.xlarge, g6e.xlarge)"
            ]
        return []

    def most_instances(self, max_size: int) -> tuple[int, int]:
        """(On-Demand, Spot) instances the group may run at ``max_size``, for the quota guard.
        Each is the worst case for its own quota."""
        if not self.spot:
            return max_size, 0
        above = max_size - self.on_demand_base_capacity
        on_demand_above = -(-above * self.on_demand_percentage_above_base // 100)  # ceil
        return self.on_demand_base_capacity + on_demand_above, above - (
            above * self.on_demand_percentage_above_base // 100
        )


def smallest_instance_type(types: Sequence[str]) -> str:
    """The type with the least memory (then vCPU): tasks are sized to fit it. Unknown sizes
    sort last (they are accepted only with an explicit task size)."""

    def key(instance_type: str) -> tuple[int, int, int]:
        shape = instance_shape(instance_type)
        if shape is None:
            return (1, 0, 0)
        return (0, shape.memory_gib, shape.vcpus)

    return min(types, key=key)


def mixed_instances_policy(
    market: GpuMarket,
    primary: str,
    launch_template_id: pulumi.Input[str],
    launch_template_version: pulumi.Input[str],
) -> aws.autoscaling.GroupMixedInstancesPolicyArgs:
    """The group's mixed instances policy: On-Demand base, Spot above, several types."""
    return aws.autoscaling.GroupMixedInstancesPolicyArgs(
        instances_distribution=aws.autoscaling.GroupMixedInstancesPolicyInstancesDistributionArgs(
            on_demand_base_capacity=market.on_demand_base_capacity,
            on_demand_percentage_above_base_capacity=market.on_demand_percentage_above_base,
            on_demand_allocation_strategy="prioritized",  # the launch template's type first
            spot_allocation_strategy=market.spot_allocation_strategy,
        ),
        launch_template=aws.autoscaling.GroupMixedInstancesPolicyLaunchTemplateArgs(
            launch_template_specification=aws.autoscaling.GroupMixedInstancesPolicyLaunchTemplateLaunchTemplateSpecificationArgs(
                launch_template_id=launch_template_id,
                version=launch_template_version,
            ),
            overrides=[
                aws.autoscaling.GroupMixedInstancesPolicyLaunchTemplateOverrideArgs(
                    instance_type=instance_type
                )
                for instance_type in market.all_instance_types(primary)
            ],
        ),
    )
