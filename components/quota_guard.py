"""Preview-time guard: can this stack scale out within the account's vCPU quotas?

Fargate On-Demand and Fargate Spot vCPU are two separate Service Quotas (service code
``fargate``), and neither shows up when you search the console for "ECS". A stack whose
autoscaling maximum does not fit gets no error at deploy time: RunTask and the service scheduler
simply fail to place tasks later, under load (seed 003). So we compare, per capacity type, what
the stack can scale to (sum over services and jobs of max tasks x vCPU) with the quota, and fail
the preview when it cannot fit, or warn when it uses 80 % or more of it.

The same holds for GPU instances: EC2 counts them, in vCPU, against "Running On-Demand G and
VT instances" (``ec2``/``L-DB2E81BA``) and, separately, "All G and VT Spot Instance Requests"
(``L-3819A6DF``); P instances against their own pair. New accounts often have 0 there, and an
Auto Scaling group over its quota only records a failed scaling activity (seed 003). The GPU
demand is the group's max size in instances split by the mixed instances policy
(:func:`gpu_instance_demands`), times each instance's vCPU.

Two layers: :func:`evaluate` is pure (demands + quota values -> :class:`GuardResult`), and
:func:`check_fargate_quotas` reads the quotas with the ``aws.servicequotas.get_service_quota``
data source and acts on the result (raise or ``pulumi.log.warn``). The guard only sees this
stack: other stacks and ad-hoc tasks in the same account and region draw on the same quota.
"""

from __future__ import annotations

import enum
import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from functools import partial
from typing import Protocol

import pulumi

SERVICE_CODE = "fargate"
DEFAULT_WARN_RATIO = 0.8
# EC2 Auto Scaling may exceed a group's maximum while it rebalances (launch before terminate).
REBALANCING_MARGIN = 0.1


class Capacity(enum.StrEnum):
    """Capacity types that have their own vCPU quota."""

    FARGATE = "FARGATE"
    FARGATE_SPOT = "FARGATE_SPOT"
    EC2_G_VT_ON_DEMAND = "EC2_G_VT_ON_DEMAND"
    EC2_G_VT_SPOT = "EC2_G_VT_SPOT"
    EC2_P_ON_DEMAND = "EC2_P_ON_DEMAND"
    EC2_P_SPOT = "EC2_P_SPOT"


@dataclass(frozen=True)
class QuotaInfo:
    """Which Service Quota limits a capacity type."""

    code: str
    name: str
    service_code: str = SERVICE_CODE
    console: str = "AWS Fargate"


def _ec2(code: str, name: str) -> QuotaInfo:
    return QuotaInfo(code, name, "ec2", "Amazon Elastic Compute Cloud (Amazon EC2)")


QUOTAS: Mapping[Capacity, QuotaInfo] = {
    Capacity.FARGATE: QuotaInfo("L-3032A538", "Fargate On-Demand vCPU resource count"),
    Capacity.FARGATE_SPOT: QuotaInfo("L-36FBB829", "Fargate Spot vCPU resource count"),
    Capacity.EC2_G_VT_ON_DEMAND: _ec2("L-DB2E81BA", "Running On-Demand G and VT instances"),
    Capacity.EC2_G_VT_SPOT: _ec2("L-3819A6DF", "All G and VT Spot Instance Requests"),
    Capacity.EC2_P_ON_DEMAND: _ec2("L-417A185B", "Running On-Demand P instances"),
    Capacity.EC2_P_SPOT: _ec2("L-7212CCBC", "All P Spot Instance Requests"),
}
FARGATE_CAPACITIES = (Capacity.FARGATE, Capacity.FARGATE_SPOT)
GPU_CAPACITIES = tuple(c for c in Capacity if c not in FARGATE_CAPACITIES)


class Outcome(enum.StrEnum):
    """What the guard decided; ordered from best to worst except SKIPPED."""

    FITS = "fits"
    WARNS = "warns"
    FAILS = "fails"
    SKIPPED = "skipped"


@dataclass(frozen=True)
class Demand:
    """One service or job: at most ``max_tasks`` tasks of ``vcpu`` vCPU each on ``capacity``."""

    name: str
    capacity: Capacity | str
    max_tasks: int
    vcpu: float

    def __post_init__(self) -> None:
        try:
            Capacity(self.capacity)
        except ValueError:
            raise ValueError(
                f"demand {self.name!r}: capacity {self.capacity!r} has no vCPU quota known to "
                f"this guard; use one of {[c.value for c in Capacity]}"
            ) from None
        if self.max_tasks < 0:
            raise ValueError(f"demand {self.name!r}: max_tasks {self.max_tasks} must be >= 0")
        if not self.vcpu > 0:
            raise ValueError(f"demand {self.name!r}: vcpu {self.vcpu} must be > 0")

    @classmethod
    def from_cpu_units(
        cls, name: str, capacity: Capacity | str, max_tasks: int, cpu_units: int
    ) -> Demand:
        """Build from ECS task ``cpu`` units (1024 units = 1 vCPU)."""
        return cls(name, capacity, max_tasks, cpu_units / 1024)

    @property
    def total_vcpu(self) -> float:
        return self.max_tasks * self.vcpu


@dataclass(frozen=True)
class CapacityCheck:
    """The verdict for one capacity type."""

    capacity: Capacity
    demand_vcpu: float
    quota_vcpu: float
    outcome: Outcome
    message: str


@dataclass(frozen=True)
class GuardResult:
    """The overall verdict (worst of the per-capacity ones) and a message for people."""

    outcome: Outcome
    checks: tuple[CapacityCheck, ...]
    message: str


def _num(value: float) -> str:
    """Quotas come back as floats (e.g. 6.0, or fractional); print them without noise."""
    return f"{value:g}"


def _breakdown(demands: Sequence[Demand]) -> str:
    return "; ".join(
        f"{d.name}: {d.max_tasks} x {_num(d.vcpu)} vCPU = {_num(d.total_vcpu)}" for d in demands
    )


def _increase_hint(capacity: Capacity, demand: float, warn_ratio: float) -> str:
    info = QUOTAS[capacity]
    # Ask for enough that the stack lands below the warning threshold, not just at the limit.
    desired = math.ceil(demand / warn_ratio)
    return (
        f"Request an increase in the Service Quotas console (AWS services > {info.console} > "
        f"'{info.name}') or with: aws service-quotas request-service-quota-increase "
        f"--service-code {info.service_code} --quota-code {info.code} --desired-value {desired}"
    )


def _check_one(
    capacity: Capacity, demands: Sequence[Demand], quota: float, warn_ratio: float
) -> CapacityCheck:
    info = QUOTAS[capacity]
    total = sum(d.total_vcpu for d in demands)
    head = (
        f"{info.name} ({info.service_code}/{info.code}): this stack can scale to "
        f"{_num(total)} vCPU "
        f"({_breakdown(demands)}); the account's quota is {_num(quota)} vCPU"
    )
    if total > quota:
        outcome = Outcome.FAILS
        message = (
            f"{head}. It cannot fit: lower the max task counts or task sizes. "
            f"{_increase_hint(capacity, total, warn_ratio)}."
        )
    elif quota > 0 and total >= warn_ratio * quota:
        outcome = Outcome.WARNS
        message = (
            f"{head} ({total / quota:.0%} of it, warning at {warn_ratio:.0%}); other stacks and "
            f"one-off tasks in this account and region share it. "
            f"{_increase_hint(capacity, total, warn_ratio)}."
        )
    else:
        outcome = Outcome.FITS
        message = f"{head}: fits."
    return CapacityCheck(capacity, total, quota, outcome, message)


def evaluate(
    demands: Sequence[Demand],
    quotas: Mapping[Capacity | str, float],
    *,
    warn_ratio: float = DEFAULT_WARN_RATIO,
    skip: bool = False,
) -> GuardResult:
    """Compare demand with quota per capacity type. Pure: no Pulumi, no AWS.

    ``quotas`` must hold a value for every capacity type that has demand; a missing one is a
    programming error (ValueError), not a pass.
    """
    if not 0 < warn_ratio <= 1:
        raise ValueError(f"warn_ratio {warn_ratio} must be in (0, 1]")
    if skip:
        return GuardResult(Outcome.SKIPPED, (), "vCPU quota check skipped by config.")
    resolved = {Capacity(k): float(v) for k, v in quotas.items()}
    checks: list[CapacityCheck] = []
    for capacity in Capacity:
        mine = [d for d in demands if Capacity(d.capacity) is capacity and d.total_vcpu > 0]
        if not mine:
            continue
        if capacity not in resolved:
            raise ValueError(
                f"no quota value given for {capacity.value} ({QUOTAS[capacity].code}) although "
                f"the stack needs {_num(sum(d.total_vcpu for d in mine))} vCPU there"
            )
        checks.append(_check_one(capacity, mine, resolved[capacity], warn_ratio))
    order = [Outcome.FITS, Outcome.WARNS, Outcome.FAILS]
    worst = max((c.outcome for c in checks), key=order.index, default=Outcome.FITS)
    message = "\n".join(c.message for c in checks) or "No vCPU demand: nothing to check."
    return GuardResult(worst, tuple(checks), message)


QuotaReader = Callable[[Capacity], float]


class QuotaReadError(RuntimeError):
    """A quota could not be read (permission, region...); the message says what to do."""


def read_quota(capacity: Capacity) -> float:
    """Read one vCPU quota with the Service Quotas data source (runs at preview, with the
    provider's credentials and region).

    Needs ``servicequotas:GetServiceQuota`` (and ``GetAWSDefaultServiceQuota``) for whoever
    runs ``pulumi preview``.
    """
    import pulumi_aws as aws  # local import: the pure part above needs no provider

    info = QUOTAS[capacity]
    try:
        result = aws.servicequotas.get_service_quota(
            service_code=info.service_code, quota_code=info.code
        )
    except Exception as err:  # the provider's error text is all there is
        raise QuotaReadError(
            f"could not read the quota '{info.name}' ({info.service_code}/{info.code}): {err}. "
            "The identity running preview needs servicequotas:GetServiceQuota and "
            "servicequotas:GetAWSDefaultServiceQuota; or set quotaGuardSkip: true"
        ) from err
    return float(result.value)


def check_quotas(
    demands: Sequence[Demand],
    *,
    what: str = "vCPU",
    skip: bool = False,
    warn_ratio: float = DEFAULT_WARN_RATIO,
    reader: QuotaReader = read_quota,
) -> GuardResult:
    """Read the quotas the demands need, then fail (ValueError) or warn (pulumi.log.warn).

    ``skip`` comes from stack config for accounts where the caller cannot read Service Quotas.
    """
    if skip:
        result = evaluate(demands, {}, warn_ratio=warn_ratio, skip=True)
        pulumi.log.info(f"{what}: {result.message}")
        return result
    needed = {Capacity(d.capacity) for d in demands if d.total_vcpu > 0}
    quotas = {capacity: reader(capacity) for capacity in Capacity if capacity in needed}
    result = evaluate(demands, quotas, warn_ratio=warn_ratio)
    if result.outcome is Outcome.FAILS:
        raise ValueError(
            f"{what} quota check failed (set the quota guard's skip flag, quotaGuardSkip, in "
            f"stack config to bypass):\n{result.message}"
        )
    if result.outcome is Outcome.WARNS:
        pulumi.log.warn(result.message)
    return result


# The two guards ``__main__.py`` calls: ``check_quotas`` with the name of what is checked, so
# they take (and forward) exactly its arguments.
check_fargate_quotas = partial(check_quotas, what="Fargate vCPU")
check_fargate_quotas.__doc__ = "The Fargate On-Demand and Spot vCPU quotas."
check_gpu_quotas = partial(check_quotas, what="EC2 GPU instance vCPU")
check_gpu_quotas.__doc__ = "The EC2 G/VT (or P) On-Demand and Spot vCPU quotas of the GPU group."


class _GroupLike(Protocol):
    instance_type: str
    max_size: int

    @property
    def sizing_instance_type(self) -> str: ...


class _MarketLike(Protocol):
    spot: bool

    def all_instance_types(self, primary: str) -> list[str]: ...

    def most_instances(self, max_size: int) -> tuple[int, int]: ...


def gpu_instance_demands(name: str, group: _GroupLike, market: _MarketLike) -> list[Demand]:
    """The GPU group at ``max_size``: On-Demand and Spot instances (the mixed instances
    policy's worst case for each quota) times the largest vCPU count among its types.

    G (and VT) and P instances draw on different quotas; a group whose types span both may
    launch all its instances of either kind, so each kind's quotas get the whole count.

    With Spot the group rebalances capacity: it launches a replacement before it terminates an
    at-risk Spot instance and may exceed its maximum to do so, by a 10 % margin (at least one
    instance here), which the Spot quota must also hold."""
    from components.gpu.instance_types import instance_shape

    types = market.all_instance_types(group.instance_type)
    shapes = {t: instance_shape(t) for t in types}
    unknown = sorted(t for t, shape in shapes.items() if shape is None)
    if unknown:
        raise ValueError(
            f"{name}: no vCPU count on record for {unknown}; the GPU quota guard cannot count "
            "them (set quotaGuardSkip: true and check the EC2 quotas by hand)"
        )
    on_demand, spot = market.most_instances(group.max_size)
    demands: list[Demand] = []
    for p_family in (False, True):
        kind = [
            s.vcpus for t, s in shapes.items() if s is not None and t.startswith("p") == p_family
        ]
        if not kind:
            continue
        vcpu, label = max(kind), (" (P types)" if p_family else "")
        on_demand_capacity = Capacity.EC2_P_ON_DEMAND if p_family else Capacity.EC2_G_VT_ON_DEMAND
        spot_capacity = Capacity.EC2_P_SPOT if p_family else Capacity.EC2_G_VT_SPOT
        demands.append(
            Demand(f"{name} On-Demand instances{label}", on_demand_capacity, on_demand, vcpu)
        )
        if spot:
            demands.append(Demand(f"{name} Spot instances{label}", spot_capacity, spot, vcpu))
            demands.append(
                Demand(
                    f"{name} Spot replacements while rebalancing{label}",
                    spot_capacity,
                    rebalancing_margin(group.max_size),
                    vcpu,
                )
            )
    return demands


def rebalancing_margin(max_size: int) -> int:
    """Instances a Spot group may run above ``max_size`` while it rebalances capacity: 10 % of
    it, at least one."""
    return max(1, math.ceil(max_size * REBALANCING_MARGIN))
