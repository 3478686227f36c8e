"""Fargate Spot: the service's strategy, task splits for the quotas and the bill, the cluster's
capacity providers, and the model sync's retry on a Spot interruption.

AWS requirements encoded here:
- Amazon ECS Developer Guide, "Amazon ECS capacity providers" (cluster-capacity-providers.html):
  a capacity provider must be associated with the cluster (PutClusterCapacityProviders) before a
  strategy may name it; only one provider in a strategy may have a base; a service or RunTask
  takes a launch type or a strategy, never both.
- AWS Knowledge Center, "How do I handle Spot termination notices in AWS Fargate Spot tasks?":
  the task gets SIGTERM two minutes ahead and stops; the publisher exits 143 (tests/sync/
  test_sync_interrupted.py), so ``ecs:runTask.sync`` fails with States.TaskFailed (Step
  Functions Developer Guide, "Run Amazon ECS tasks": the state fails when the task does not
  succeed) and a Retry on States.ALL/States.TaskFailed with MaxAttempts >= 1 runs it again.
"""

from __future__ import annotations

from typing import Any

import pulumi
import pytest

from components.fargate_capacity import FargateSpotSplit, rollout_tasks
from components.fargate_service import fargate_placement
from components.model_sync_job import ModelSyncSettings
from components.scheduled import validation
from components.state_machine import RunTaskSpec, build_definition
from tests.pulumi_mocks import run


@pytest.mark.parametrize(
    ("split", "tasks", "most", "expected"),
    [
        (FargateSpotSplit(), 6, (6, 0), (6.0, 0.0)),
        (FargateSpotSplit(spot_weight=1, on_demand_base=1), 2, (2, 1), (1.5, 0.5)),
        (FargateSpotSplit(spot_weight=3, on_demand_base=2), 12, (5, 8), (4.5, 7.5)),
        (FargateSpotSplit(spot_weight=1, on_demand_base=4), 2, (2, 0), (2.0, 0.0)),
    ],
)
def test_task_split(
    split: FargateSpotSplit, tasks: int, most: tuple[int, int], expected: tuple[float, float]
) -> None:
    assert split.most_tasks(tasks) == most
    assert split.expected_tasks(float(tasks)) == pytest.approx(expected)


def test_rollout_doubles_and_rounds_down() -> None:
    assert rollout_tasks(6) == 12
    assert rollout_tasks(3, maximum_percent=150) == 4


@pytest.mark.parametrize(
    "bad", [{"spot_weight": -1}, {"on_demand_base": 1.5}, {"spot_weight": True}]
)
def test_bad_split_is_refused(bad: dict[str, Any]) -> None:
    with pytest.raises(ValueError, match="must be an integer"):
        FargateSpotSplit(**bad)


def test_spot_placement_is_a_strategy_not_a_launch_type() -> None:
    def program() -> None:
        placement = fargate_placement(1024, 2048, spot=FargateSpotSplit(2, 1))
        assert placement.launch_type is None
        (od, spot) = placement.capacity_provider_strategies
        pulumi.Output.all(od.capacity_provider, spot.capacity_provider).apply(
            lambda names: names == ["FARGATE", "FARGATE_SPOT"] or pytest.fail(str(names))
        )
        assert (od.base, od.weight, spot.base, spot.weight) == (1, 1, 0, 2)
        assert fargate_placement(1024, 2048).launch_type == "FARGATE"

    run(program)


def test_sync_on_spot_must_be_retried() -> None:
    settings = ModelSyncSettings(
        source="s3://my-models/p",
        retry=validation.RetryPolicy(max_attempts=0),
        capacity="FARGATE_SPOT",
    )
    with pytest.raises(ValueError, match=r"Spot interruption.*would not be retried"):
        settings.validate()
    ModelSyncSettings(
        source="s3://my-models/p", retry=validation.RetryPolicy(max_attempts=0), capacity="FARGATE"
    ).validate()
    assert ModelSyncSettings(source="s3://my-models/p").capacity == "FARGATE_SPOT"


def test_a_spot_interruption_is_retried_by_the_state_machine() -> None:
    """Which retrier catches States.TaskFailed (first match wins, as Step Functions evaluates
    Retry in order)?"""
    spec = RunTaskSpec(
        job_name="sync",
        cluster_arn="arn:aws:ecs:us-east-1:123456789012:cluster/c",
        task_definition_arn="arn:aws:ecs:us-east-1:123456789012:task-definition/t:1",
        container_name="model-sync",
        subnet_ids=["s"],
        security_group_ids=["g"],
        capacity="FARGATE_SPOT",
        topic_arn="arn:aws:sns:us-east-1:123456789012:t",
    )
    state = build_definition(spec)["States"]["RunTask"]
    assert state["Parameters"]["CapacityProviderStrategy"] == [
        {"CapacityProvider": "FARGATE_SPOT", "Weight": 1}
    ]
    assert "LaunchType" not in state["Parameters"]
    matching = next(
        r
        for r in state["Retry"]
        if "States.TaskFailed" in r["ErrorEquals"] or "States.ALL" in r["ErrorEquals"]
    )
    assert matching["MaxAttempts"] >= 1


def test_stack_config_refuses_a_bad_spot_weight_at_load() -> None:
    from components.stack_config import StackConfig

    with pytest.raises(ValueError, match="spot weight -2"):
        StackConfig(fargate_spot_weight=-2).validate()


def test_existing_cluster_with_spot_is_warned_about(monkeypatch: pytest.MonkeyPatch) -> None:
    """The stack cannot associate capacity providers with a cluster it does not own (that would
    replace the owner's list), so the preview says what to check."""
    from tests.components.test_fargate_service import deploy

    warnings: list[str] = []
    monkeypatch.setattr(pulumi.log, "warn", lambda msg, *a, **k: warnings.append(msg))

    mocks = deploy(cluster="shared", spot=FargateSpotSplit(spot_weight=1, on_demand_base=1))
    assert any("put-cluster-capacity-providers" in w for w in warnings), warnings
    assert mocks.of_type("aws:ecs/clusterCapacityProviders:ClusterCapacityProviders") == []


def test_sync_on_spot_in_an_existing_cluster_is_warned_about() -> None:
    from components.stack_config import StackConfig

    cfg = StackConfig(
        cluster="shared",
        model_sync_source="s3://my-models/p",
        vpc_id="vpc-1",
        private_subnet_ids=["a", "b"],
    )
    assert any("FARGATE_SPOT" in w for w in cfg.ignored_key_warnings([]))
    cfg.model_sync_capacity = "FARGATE"
    assert not any("FARGATE_SPOT" in w for w in cfg.ignored_key_warnings([]))
