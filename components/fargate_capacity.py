"""Fargate and Fargate Spot: the cluster's capacity providers, a service's strategy, and how
many tasks each can reach (for the vCPU quota guard and the cost estimate).

Fargate Spot runs the same tasks for about 70 % less, but AWS may reclaim a task with a
two-minute warning (SIGTERM, then SIGKILL after ``stopTimeout``; the task stops with stopCode
``SpotInterruption``). So:

- a service keeps an On-Demand **base** (by default its minimum task count: the availability
  floor never depends on Spot) and puts tasks above it on FARGATE and FARGATE_SPOT by weight;
- the batch model sync runs on FARGATE_SPOT: an interrupted run exits non-zero, Step Functions
  retries it, and the publish protocol leaves the store consistent
  (tests/sync/test_sync_interrupted.py).

A cluster accepts a capacity provider in a strategy only once it is associated with it
(``PutClusterCapacityProviders``); the clusters this project creates associate FARGATE and
FARGATE_SPOT (plus the GPU provider on the GPU cluster). Fargate Spot does not fall back to
On-Demand when it has no capacity: tasks wait in PROVISIONING, which is why the floor is
On-Demand. On-Demand and Spot have separate vCPU quotas (components/quota_guard.py).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import pulumi
import pulumi_aws as aws

FARGATE = "FARGATE"
FARGATE_SPOT = "FARGATE_SPOT"
FARGATE_PROVIDERS = (FARGATE, FARGATE_SPOT)
# The ECS service's deploymentMaximumPercent (components/ecs_service/service.py): during a
# rolling deployment the service may run this share of its desired count (new + old tasks).
DEPLOYMENT_MAXIMUM_PERCENT = 200
# ECS API Reference, CapacityProviderStrategyItem: weight 0..1000, base 0..100000.
MAX_WEIGHT = 1000
MAX_BASE = 100_000


@dataclass(frozen=True)
class FargateSpotSplit:
    """A service's FARGATE / FARGATE_SPOT strategy: ``on_demand_base`` tasks always On-Demand,
    the rest split 1 : ``spot_weight``. ``spot_weight`` 0 means no Spot at all."""

    spot_weight: int = 0
    on_demand_base: int = 0

    def __post_init__(self) -> None:
        # CapacityProviderStrategyItem: weight 0..1000, base 0..100000 (ECS API Reference)
        values = (
            ("spot weight", self.spot_weight, MAX_WEIGHT),
            ("On-Demand base", self.on_demand_base, MAX_BASE),
        )
        for label, value, most in values:
            if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value <= most:
                raise ValueError(f"Fargate {label} {value!r} must be an integer in 0..{most}")

    @property
    def uses_spot(self) -> bool:
        return self.spot_weight > 0

    def most_tasks(self, tasks: int) -> tuple[int, int]:
        """(On-Demand, Spot) tasks at most when the service runs ``tasks``: each the worst case
        for its own quota (weights are honoured only approximately by the scheduler)."""
        if not self.uses_spot:
            return tasks, 0
        base = min(self.on_demand_base, tasks)
        above = tasks - base
        on_demand = base + math.ceil(above / (1 + self.spot_weight))
        spot = math.ceil(above * self.spot_weight / (1 + self.spot_weight))
        return min(on_demand, tasks), min(spot, tasks)

    def expected_tasks(self, tasks: float) -> tuple[float, float]:
        """(On-Demand, Spot) tasks on average at ``tasks`` running, for the cost estimate."""
        if not self.uses_spot:
            return tasks, 0.0
        base = min(float(self.on_demand_base), tasks)
        above = tasks - base
        spot = above * self.spot_weight / (1 + self.spot_weight)
        return tasks - spot, spot

    def strategies(
        self, attached: pulumi.Input[str] | None = None
    ) -> list[aws.ecs.ServiceCapacityProviderStrategyArgs]:
        """The service's capacity provider strategy: FARGATE with the On-Demand base, plus
        FARGATE_SPOT by weight when Spot is on (without Spot, FARGATE alone: a service that
        keeps a strategy can turn Spot on and off in place). ``attached`` (e.g. the id of the
        ClusterCapacityProviders) makes the service wait until the providers are associated."""

        def name(provider: str) -> pulumi.Input[str]:
            if attached is None:
                return provider
            return pulumi.Output.from_input(attached).apply(lambda _: provider)

        strategies = [
            aws.ecs.ServiceCapacityProviderStrategyArgs(
                capacity_provider=name(FARGATE), base=self.on_demand_base, weight=1
            )
        ]
        if self.uses_spot:
            strategies.append(
                aws.ecs.ServiceCapacityProviderStrategyArgs(
                    capacity_provider=name(FARGATE_SPOT), base=0, weight=self.spot_weight
                )
            )
        return strategies


def rollout_tasks(most_tasks: int, maximum_percent: int = DEPLOYMENT_MAXIMUM_PERCENT) -> int:
    """Tasks running at once while a deployment replaces ``most_tasks`` (ECS rounds down)."""
    return math.floor(most_tasks * maximum_percent / 100)


def fargate_cluster_capacity_providers(
    name: str, cluster_name: pulumi.Input[str], opts: pulumi.ResourceOptions
) -> aws.ecs.ClusterCapacityProviders:
    """Associate FARGATE and FARGATE_SPOT with a cluster this stack creates; the default
    strategy stays On-Demand Fargate, so a RunTask without a strategy never lands on Spot."""
    return aws.ecs.ClusterCapacityProviders(
        f"{name}-capacity-providers",
        cluster_name=cluster_name,
        capacity_providers=list(FARGATE_PROVIDERS),
        default_capacity_provider_strategies=[
            aws.ecs.ClusterCapacityProvidersDefaultCapacityProviderStrategyArgs(
                capacity_provider=FARGATE, base=0, weight=1
            )
        ],
        opts=opts,
    )
