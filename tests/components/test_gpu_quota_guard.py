"""The GPU quota guard: EC2 G and VT (or P) On-Demand and Spot vCPU quotas vs. the GPU group.

AWS facts encoded here: EC2 On-Demand and Spot instance limits are vCPU-based Service Quotas,
service code ``ec2``: "Running On-Demand G and VT instances" ``L-DB2E81BA`` and "All G and VT
Spot Instance Requests" ``L-3819A6DF`` (Amazon EC2 User Guide, "Amazon EC2 service quotas" /
"On-Demand Instance quotas", https://docs.aws.amazon.com/ec2/latest/instancetypes/ec2-instance-quotas.html;
Service Quotas console, Amazon EC2). Each instance counts its vCPUs (g6.xlarge: 4).
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
    on_demand, spot = gpu_instance_demands("gpu", group, group.market)
    assert (on_demand.capacity, on_demand.max_tasks, on_demand.vcpu) == (
        "EC2_G_VT_ON_DEMAND",
        2,
        8,
    )
    assert (spot.capacity, spot.max_tasks, spot.total_vcpu) == ("EC2_G_VT_SPOT", 8, 64)


def test_p_family_uses_the_p_quotas() -> None:
    group = args(instance_type="p5.4xlarge", max_size=2)
    (demand,) = gpu_instance_demands("gpu", group, group.market)
    assert demand.capacity == "EC2_P_ON_DEMAND"


def test_unknown_size_cannot_be_counted() -> None:
    group = args(instance_type="g6.96xlarge", max_size=2)  # a size instance_types.py lacks
    with pytest.raises(ValueError, match=r"g6\.96xlarge.*quotaGuardSkip"):
        gpu_instance_demands("gpu", group, group.market)


@pytest.mark.parametrize(
    ("quotas", "outcome"),
    [
        ({"EC2_G_VT_ON_DEMAND": 64, "EC2_G_VT_SPOT": 128}, Outcome.FITS),
        ({"EC2_G_VT_ON_DEMAND": 64, "EC2_G_VT_SPOT": 40}, Outcome.WARNS),  # 36 / 40 = 90 %
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
    assert "--service-code ec2 --quota-code L-3819A6DF --desired-value 10" in message
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
