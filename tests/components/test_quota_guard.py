"""Fargate vCPU quota guard: the pure verdict and the Pulumi wrapper under mocks."""

from __future__ import annotations

from typing import Any

import pulumi
import pytest

from components import quota_guard
from components.quota_guard import Capacity, Demand, Outcome, check_fargate_quotas, evaluate
from tests.pulumi_mocks import install

QUOTA_TOKEN = "aws:servicequotas/getServiceQuota:getServiceQuota"

API = Demand("api", "FARGATE", max_tasks=10, vcpu=2)  # 20 vCPU
JOB = Demand.from_cpu_units("nightly", "FARGATE", max_tasks=1, cpu_units=4096)  # 4 vCPU
SPOT = Demand("batch", "FARGATE_SPOT", max_tasks=4, vcpu=0.5)  # 2 vCPU


def test_fits_when_well_below_quota() -> None:
    result = evaluate([API, JOB], {"FARGATE": 100.0})
    assert result.outcome is Outcome.FITS
    (check,) = result.checks
    assert check.demand_vcpu == 24
    assert check.quota_vcpu == 100


def test_warns_at_eighty_percent() -> None:
    result = evaluate([API, JOB], {"FARGATE": 30.0})  # 24 / 30 = 80 %
    assert result.outcome is Outcome.WARNS
    assert "80%" in result.message
    assert "L-3032A538" in result.message
    # the increase it suggests lands below the warning threshold: 24 / 0.8 = 30
    assert "--desired-value 30" in result.message


def test_fails_when_demand_exceeds_quota_and_says_what_to_do() -> None:
    result = evaluate([API, JOB], {"FARGATE": 16.0})
    assert result.outcome is Outcome.FAILS
    msg = result.message
    assert "24 vCPU" in msg and "16 vCPU" in msg
    assert "api: 10 x 2 vCPU = 20" in msg and "nightly: 1 x 4 vCPU = 4" in msg
    assert "Fargate On-Demand vCPU resource count" in msg
    assert "request-service-quota-increase --service-code fargate --quota-code L-3032A538" in msg


def test_spot_and_on_demand_are_separate_quotas() -> None:
    # Plenty of On-Demand does not help Spot, and the Spot quota code is named.
    result = evaluate([API, SPOT], {"FARGATE": 1000.0, "FARGATE_SPOT": 1.5})
    assert result.outcome is Outcome.FAILS
    by_cap = {c.capacity: c for c in result.checks}
    assert by_cap[Capacity.FARGATE].outcome is Outcome.FITS
    assert by_cap[Capacity.FARGATE_SPOT].outcome is Outcome.FAILS
    assert by_cap[Capacity.FARGATE_SPOT].demand_vcpu == 2
    assert "L-36FBB829" in by_cap[Capacity.FARGATE_SPOT].message


def test_fractional_quota_values() -> None:
    assert evaluate([SPOT], {"FARGATE_SPOT": 2.5}).outcome is Outcome.WARNS
    assert evaluate([SPOT], {"FARGATE_SPOT": 1.75}).outcome is Outcome.FAILS
    assert "1.75 vCPU" in evaluate([SPOT], {"FARGATE_SPOT": 1.75}).message


def test_skip_returns_skipped_without_quotas() -> None:
    result = evaluate([API], {}, skip=True)
    assert result.outcome is Outcome.SKIPPED
    assert result.checks == ()


def test_missing_quota_value_is_an_error_not_a_pass() -> None:
    with pytest.raises(ValueError, match="L-36FBB829"):
        evaluate([SPOT], {"FARGATE": 100.0})


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"capacity": "EC2"}, "has no vCPU quota known"),
        ({"max_tasks": -1}, "max_tasks -1"),
        ({"vcpu": 0}, "vcpu 0"),
    ],
)
def test_demand_validation(kwargs: dict[str, Any], match: str) -> None:
    base: dict[str, Any] = {"name": "x", "capacity": "FARGATE", "max_tasks": 1, "vcpu": 1}
    with pytest.raises(ValueError, match=match):
        Demand(**{**base, **kwargs})


# -- the Pulumi wrapper --------------------------------------------------------------------


def _quota_handler(values: dict[str, float]) -> Any:
    def handler(inputs: dict[str, Any]) -> dict[str, Any]:
        code = inputs["quotaCode"]
        assert inputs["serviceCode"] == "fargate"
        return {
            "adjustable": True,
            "arn": f"arn:aws:servicequotas:us-east-1:123456789012:fargate/{code}",
            "defaultValue": values[code],
            "globalQuota": False,
            "id": code,
            "quotaCode": code,
            "quotaName": "n",
            "region": "us-east-1",
            "serviceCode": "fargate",
            "serviceName": "AWS Fargate",
            "usageMetrics": [],
            "value": values[code],
        }

    return handler


def _run_wrapper(values: dict[str, float], demands: list[Demand], **kwargs: Any) -> Any:
    mocks = install()
    mocks.call_handlers[QUOTA_TOKEN] = _quota_handler(values)  # run() would clear it
    box: dict[str, Any] = {}

    @pulumi.runtime.test
    def program() -> None:
        box["result"] = check_fargate_quotas(demands, **kwargs)

    program()
    return box["result"], mocks


def test_wrapper_reads_only_needed_quotas_and_fits() -> None:
    result, mocks = _run_wrapper({"L-3032A538": 100.0}, [API])
    assert result.outcome is Outcome.FITS
    codes = [c[1]["quotaCode"] for c in mocks.calls if c[0] == QUOTA_TOKEN]
    assert codes == ["L-3032A538"]  # no Spot demand -> Spot quota not read


def test_wrapper_warns_through_pulumi_log(monkeypatch: pytest.MonkeyPatch) -> None:
    warnings: list[str] = []
    monkeypatch.setattr(quota_guard.pulumi.log, "warn", lambda msg, *a, **k: warnings.append(msg))
    result, _ = _run_wrapper({"L-3032A538": 30.0, "L-36FBB829": 100.0}, [API, JOB, SPOT])
    assert result.outcome is Outcome.WARNS
    assert len(warnings) == 1 and "Fargate On-Demand" in warnings[0]


def test_wrapper_fails_preview_with_clear_message() -> None:
    with pytest.raises(ValueError, match=r"(?s)quota check failed.*L-36FBB829"):
        _run_wrapper({"L-3032A538": 100.0, "L-36FBB829": 1.0}, [API, SPOT])


def test_wrapper_skip_reads_nothing() -> None:
    result, mocks = _run_wrapper({}, [API, SPOT], skip=True)
    assert result.outcome is Outcome.SKIPPED
    assert not [c for c in mocks.calls if c[0] == QUOTA_TOKEN]
