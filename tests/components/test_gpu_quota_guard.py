"""The GPU quota guard: EC2 G and VT (or P) On-Demand and Spot vCPU quotas vs. the GPU group.

AWS facts encoded here: EC2 On-Demand and Spot instance limits are vCPU-based Service Quotas,
service code ``ec2``: "Running On-Demand G and VT instances" ``L-DB2E81BA`` and "All G and VT
Spot Instance Requests" ``L-3819A6DF`` (Amazon EC2 User Guide, "Amazon EC2 service quotas" /
"On-Demand Instance quotas", https://docs.aws.amazon.com/ec2/latest/instancetypes/ec2-instance-quotas.html;
Service Quotas console, Amazon EC2). Each instance counts its vCPUs (g6.xlarge: 4).

A Spot group with Capacity Rebalancing launches the replacement before it terminates the at-risk
instance, and "being at or near the specified maximum capacity could impede or completely halt
rebalancing activities. To avoid this problem, [Auto Scaling] can temporarily exceed the
specified maximum capacity of a group by a 10% margin during a rebalancing activity" (EC2 Auto
Scaling Developer Guide, "Auto Scaling behavior", rebalancing activities; the current User Guide,
"Capacity Rebalancing in Auto Scaling to replace at-risk Spot Instances", says the group "can
temporarily exceed the specified maximum capacity"). The Spot quota must hold that too.
"""

from __future__ import annotations

from typing import Any

import pytest

from components.gpu.cluster import GpuEc2ClusterArgs
from components.quota_guard import (
    Capacity,
    Outcome,
    QuotaReadError,
    check_gpu_quotas,
    gpu_instance_demands,
    read_quota,
    rebalancing_margin,
)
from components.stack_config import StackConfig
from tests.pulumi_mocks import install


def args(**overrides: Any) -> GpuEc2ClusterArgs:
    return GpuEc2ClusterArgs(vpc_id="v", subnet_ids=["s"], **overrides)


def test_on_demand_group_counts_max_size_times_vcpu() -> None:
    group = args(instance_type="g6.2xlarge", max_size=5)
    (demand,) = gpu_instance_demands("gpu", group, group.market)
    assert (demand.capacity, demand.max_tasks, demand.vcpu) == ("EC2_G_VT_ON_DEMAND", 5, 8)


def test_spot_group_splits_between_the_two_quotas_at_the_largest_vcpu() -> None:
    group = args(
        spot=True,
        spot_instance_types=["g5.xlarge", "g6e.2xlarge"],  # 4 and 8 vCPU: count 8
        min_size=2,
        max_size=10,
    )
    on_demand, spot, rebalancing = gpu_instance_demands("gpu", group, group.market)
    assert (on_demand.capacity, on_demand.max_tasks, on_demand.vcpu) == (
        "EC2_G_VT_ON_DEMAND",
        2,
        8,
    )
    assert (spot.capacity, spot.max_tasks, spot.total_vcpu) == ("EC2_G_VT_SPOT", 8, 64)
    # 10 % of max_size 10: one more Spot instance while capacity rebalancing replaces one
    assert (rebalancing.capacity, rebalancing.max_tasks, rebalancing.vcpu) == (
        "EC2_G_VT_SPOT",
        1,
        8,
    )


def test_rebalancing_margin_is_ten_percent_of_max_size_and_at_least_one() -> None:
    assert [rebalancing_margin(n) for n in (1, 4, 10, 11, 12, 40)] == [1, 1, 1, 2, 2, 4]
    on_demand_only = args(max_size=10)
    assert [
        d.capacity for d in gpu_instance_demands("gpu", on_demand_only, on_demand_only.market)
    ] == ["EC2_G_VT_ON_DEMAND"]


def test_p_family_uses_the_p_quotas() -> None:
    group = args(instance_type="p5.4xlarge", max_size=2)
    (demand,) = gpu_instance_demands("gpu", group, group.market)
    assert demand.capacity == "EC2_P_ON_DEMAND"


def test_spot_types_across_g_and_p_count_against_both_kinds_of_quota() -> None:
    """p3.2xlarge and g5.2xlarge both have one GPU and 8 vCPU; EC2 counts P instances against
    the P quotas (L-417A185B, L-7212CCBC) and G against the G and VT ones, and the group may
    fill all of its Spot capacity with either kind."""
    group = args(
        instance_type="g5.2xlarge", spot=True, spot_instance_types=["p3.2xlarge"], max_size=6
    )
    by_quota: dict[str, float] = {}
    for demand in gpu_instance_demands("gpu", group, group.market):
        by_quota[demand.capacity] = by_quota.get(demand.capacity, 0) + demand.total_vcpu
    assert by_quota == {  # 6 Spot instances + 1 while rebalancing, x 8 vCPU, on each kind
        "EC2_G_VT_ON_DEMAND": 0,
        "EC2_G_VT_SPOT": 56,
        "EC2_P_ON_DEMAND": 0,
        "EC2_P_SPOT": 56,
    }


def test_unknown_size_cannot_be_counted() -> None:
    group = args(instance_type="g6.96xlarge", max_size=2)  # a size instance_types.py lacks
    with pytest.raises(ValueError, match=r"g6\.96xlarge.*quotaGuardSkip"):
        gpu_instance_demands("gpu", group, group.market)


@pytest.mark.parametrize(
    ("quotas", "outcome"),
    [
        ({"EC2_G_VT_ON_DEMAND": 64, "EC2_G_VT_SPOT": 128}, Outcome.FITS),
        ({"EC2_G_VT_ON_DEMAND": 64, "EC2_G_VT_SPOT": 50}, Outcome.WARNS),  # 44 / 50 = 88 %
    ],
)
def test_prod_verdicts(quotas: dict[str, float], outcome: Outcome) -> None:
    cfg = StackConfig(
        capacity="gpu",
        gpu_spot=True,
        gpu_spot_instance_types=["g5.xlarge", "g6e.xlarge"],
        gpu_min_size=3,
        gpu_max_size=12,
        min_count=3,
        desired_count=3,
        max_count=6,
    )
    demands = cfg.gpu_demands("prod")
    install()
    result = check_gpu_quotas(demands, reader=lambda c: quotas[c.value])
    assert result.outcome is outcome


def test_zero_spot_quota_fails_the_preview_with_the_increase_command() -> None:
    cfg = StackConfig(
        capacity="gpu", gpu_spot=True, gpu_spot_instance_types=["g5.xlarge"], gpu_max_size=4
    )
    with pytest.raises(ValueError) as err:
        check_gpu_quotas(cfg.gpu_demands("s"), reader=lambda c: {"EC2_G_VT_SPOT": 0}.get(c, 64))
    message = str(err.value)
    assert "EC2 GPU instance vCPU quota check failed" in message and "quotaGuardSkip" in message
    assert "All G and VT Spot Instance Requests (ec2/L-3819A6DF)" in message
    # 2 Spot instances above the base (minCount 2), + 1 while rebalancing, x 4 vCPU = 12; / 0.8
    assert "--service-code ec2 --quota-code L-3819A6DF --desired-value 15" in message
    assert "Spot replacements while rebalancing: 1 x 4 vCPU" in message
    assert "Amazon Elastic Compute Cloud (Amazon EC2)" in message


def test_skip_reads_nothing() -> None:
    def reader(capacity: Capacity) -> float:
        raise AssertionError("must not read")

    demands = StackConfig(capacity="gpu").gpu_demands("s")
    assert check_gpu_quotas(demands, skip=True, reader=reader).outcome is Outcome.SKIPPED


def test_fargate_stack_has_no_gpu_demand() -> None:
    assert StackConfig().gpu_demands("s") == []


def test_a_failing_quota_read_says_what_permission_or_skip_helps(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """What the preview shows when the Service Quotas data source fails (the provider's error
    text, e.g. AccessDenied, is kept)."""
    import pulumi_aws as aws

    def denied(**_: Any) -> Any:
        raise RuntimeError("AccessDeniedException: not authorized")

    monkeypatch.setattr(aws.servicequotas, "get_service_quota", denied)
    with pytest.raises(
        QuotaReadError, match=r"L-DB2E81BA.*AccessDenied.*GetServiceQuota.*quotaGuardSkip"
    ):
        read_quota(Capacity.EC2_G_VT_ON_DEMAND)
