"""A second ``pulumi up`` that changes how a service buys capacity must update it in place.

Issue 13 moves the dev service from the FARGATE launch type to a FARGATE/FARGATE_SPOT capacity
provider strategy, and lets any stack change the Spot weight later. What AWS and the provider
require for that, on a service that already exists:

- ECS API Reference, UpdateService, ``capacityProviderStrategy``
  (https://docs.aws.amazon.com/AmazonECS/latest/APIReference/API_UpdateService.html): "This
  parameter doesn't trigger a new service deployment"; ECS refuses the change without
  ``forceNewDeployment`` ("When switching from launch type to capacity provider strategy on an
  existing service, or making a change to a capacity provider strategy on a service that is
  already using one, you must force a new deployment", InvalidParameterException, quoted in
  pipe-cd/pipecd#6385). Going back from a strategy to the launch type needs an empty strategy
  list, which the provider does not send as a launch-type change: ``launch_type`` is ForceNew.
- pulumi-aws 7 ``aws.ecs.Service`` (terraform-provider-aws v6 ``aws_ecs_service``),
  ``capacity_provider_strategies``: "Updating this argument requires ``force_new_deployment =
  true``"; its CustomizeDiff fails the preview otherwise ("force_new_deployment should be true
  when capacity_provider_strategy is being updated", internal/service/ecs/service.go
  ``capacityProviderStrategyCustomizeDiff``).
- ECS API Reference, CapacityProviderStrategyItem
  (https://docs.aws.amazon.com/AmazonECS/latest/APIReference/API_CapacityProviderStrategyItem.html):
  ``weight`` 0..1000, ``base`` 0..100000, only one provider in a strategy with a base.

So every service sets ``force_new_deployment``; a Fargate service on a cluster this stack creates
(FARGATE and FARGATE_SPOT associated) always uses a strategy, FARGATE alone when Spot is off, so
Spot on/off is strategy-to-strategy; only on a cluster the stack does not own (providers maybe
absent) does Spot off mean the launch type.
"""

from __future__ import annotations

from typing import Any

import pulumi
import pytest

from components.fargate_capacity import FargateSpotSplit
from components.fargate_service import fargate_placement
from tests.components.test_fargate_service import deploy
from tests.pulumi_mocks import run

SERVICE = "aws:ecs/service:Service"


def strategy(service: dict[str, Any]) -> dict[str, tuple[float, float]]:
    return {
        s["capacityProvider"]: (s.get("base", 0), s.get("weight", 0))
        for s in service.get("capacityProviderStrategies", [])
    }


@pytest.mark.parametrize("weight", [0, 3])
def test_own_cluster_service_always_has_a_strategy_and_forces_deployments(weight: int) -> None:
    """Spot off and Spot on differ only in the strategy: an in-place UpdateService."""
    service = deploy(spot=FargateSpotSplit(spot_weight=weight, on_demand_base=2)).one(SERVICE)
    assert "launchType" not in service.inputs
    expected = {"FARGATE": (2, 1)}
    if weight:
        expected["FARGATE_SPOT"] = (0, weight)
    assert strategy(service.inputs) == expected
    assert service.inputs["forceNewDeployment"] is True


def test_existing_cluster_without_spot_keeps_the_launch_type_and_forces_deployments() -> None:
    """FARGATE may not be associated with a cluster we do not own: the launch type, which works
    on any cluster; force_new_deployment lets a later Spot strategy through."""
    service = deploy(cluster="shared").one(SERVICE).inputs
    assert service["launchType"] == "FARGATE"
    assert "capacityProviderStrategies" not in service
    assert service["forceNewDeployment"] is True


def test_placement_without_an_attached_cluster_is_the_launch_type() -> None:
    def program() -> None:
        assert fargate_placement(1024, 2048).launch_type == "FARGATE"
        owned = fargate_placement(1024, 2048, attached=pulumi.Output.from_input("ccp-id"))
        assert owned.launch_type is None
        assert len(owned.capacity_provider_strategies) == 1

    run(program)


@pytest.mark.parametrize(("weight", "ok"), [(1000, True), (1001, False)])
def test_spot_weight_is_capped_at_the_ecs_maximum(weight: int, ok: bool) -> None:
    if ok:
        assert FargateSpotSplit(spot_weight=weight).uses_spot
    else:
        with pytest.raises(ValueError, match=r"spot weight 1001 must be an integer in 0\.\.1000"):
            FargateSpotSplit(spot_weight=weight)
