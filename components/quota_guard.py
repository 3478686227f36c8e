"""Preview-time guard: can this stack scale out within the account's Fargate vCPU quotas?

Fargate On-Demand and Fargate Spot vCPU are two separate Service Quotas (service code
``fargate``), and neither shows up when you search the console for "ECS". A stack whose
autoscaling maximum does not fit gets no error at deploy time: RunTask and the service scheduler
simply fail to place tasks later, under load (seed 003). So we compare, per capacity type, what
the stack can scale to (sum over services and jobs of max tasks x vCPU) with the quota, and fail
the preview when it cannot fit, or warn when it uses 80 % or more of it.

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

import pulumi

SERVICE_CODE = "fargate"
DEFAULT_WARN_RATIO = 0.8


class Capacity(enum.StrEnum):
    """The two Fargate capacity types that have their own vCPU quota."""

    FARGATE = "FARGATE"
    FARGATE_SPOT = "FARGATE_SPOT"


@dataclass(frozen=True)
class QuotaInfo:
    """Which Service Quota limits a capacity type."""

    code: str
    name: str


QUOTAS: Mapping[Capacity, QuotaInfo] = {
    Capacity.FARGATE: QuotaInfo("L-3032A538", "Fargate On-Demand vCPU resource count"),
    Capacity.FARGATE_SPOT: QuotaInfo("L-36FBB829", "Fargate Spot vCPU resource count"),
}


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
                f"demand {self.name!r}: capacity {self.capacity!r} has no Fargate vCPU quota; "
                f"use one of {[c.value for c in Capacity]} (EC2 capacity is limited by EC2 "
                "instance quotas, which this guard does not check)"
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
        f"Request an increase in the Service Quotas console (AWS services > AWS Fargate > "
        f"'{info.name}') or with: aws service-quotas request-service-quota-increase "
        f"--service-code {SERVICE_CODE} --quota-code {info.code} --desired-value {desired}"
    )


def _check_one(
    capacity: Capacity, demands: Sequence[Demand], quota: float, warn_ratio: float
) -> CapacityCheck:
    info = QUOTAS[capacity]
    total = sum(d.total_vcpu for d in demands)
    head = (
        f"{info.name} ({SERVICE_CODE}/{info.code}): this stack can scale to {_num(total)} vCPU "
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
        return GuardResult(Outcome.SKIPPED, (), "Fargate vCPU quota check skipped by config.")
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
    message = "\n".join(c.message for c in checks) or "No Fargate demand: nothing to check."
    return GuardResult(worst, tuple(checks), message)


QuotaReader = Callable[[Capacity], float]


def read_quota(capacity: Capacity) -> float:
    """Read one Fargate vCPU quota with the Service Quotas data source (runs at preview).

    Needs ``servicequotas:GetServiceQuota`` (and ``GetAWSDefaultServiceQuota``) for whoever
    runs ``pulumi preview``.
    """
    import pulumi_aws as aws  # local import: the pure part above needs no provider

    result = aws.servicequotas.get_service_quota(
        service_code=SERVICE_CODE, quota_code=QUOTAS[capacity].code
    )
    return float(result.value)


def check_fargate_quotas(
    demands: Sequence[Demand],
    *,
    skip: bool = False,
    warn_ratio: float = DEFAULT_WARN_RATIO,
    reader: QuotaReader = read_quota,
) -> GuardResult:
    """Read the quotas the demands need, then fail (ValueError) or warn (pulumi.log.warn).

    Call it from the program (``__main__.py``) with every Fargate service and job of the stack;
    ``skip`` comes from stack config for accounts where the caller cannot read Service Quotas.
    """
    if skip:
        result = evaluate(demands, {}, warn_ratio=warn_ratio, skip=True)
        pulumi.log.info(result.message)
        return result
    needed = {Capacity(d.capacity) for d in demands if d.total_vcpu > 0}
    quotas = {capacity: reader(capacity) for capacity in Capacity if capacity in needed}
    result = evaluate(demands, quotas, warn_ratio=warn_ratio)
    if result.outcome is Outcome.FAILS:
        raise ValueError(
            "Fargate vCPU quota check failed (set the quota guard's skip flag in stack config "
            f"to bypass):\n{result.message}"
        )
    if result.outcome is Outcome.WARNS:
        pulumi.log.warn(result.message)
    return result
