"""InferenceService's deploy gate: ``before_deploy`` runs with the cluster ARN and the service
waits for what it returns; the topic exists before the service (its alarms notify it) while
the topic's event rules still watch this service; a failing hook fails fast (the deferred
outputs are resolved, so the program cannot hang on them: pulumi/pulumi#18559)."""

from __future__ import annotations

from typing import Any

import pulumi
import pulumi_aws as aws
import pytest

from components.deployment_alarms import DeploymentAlarmSettings
from components.ecs_service import ServiceSettings
from tests.components.test_ecs_service import CLUSTER_ARN, deploy, service_args


def test_hook_gets_the_cluster_arn_and_the_service_depends_on_its_resources() -> None:
    seen: list[str] = []
    gate_names: list[str] = []

    def before_deploy(cluster_arn: pulumi.Output[str]) -> list[pulumi.Resource]:
        cluster_arn.apply(seen.append)
        gate = aws.sns.Topic("gate")
        gate_names.append("gate")
        return [gate]

    mocks, options = deploy(service_args(before_deploy=before_deploy))
    assert seen == [CLUSTER_ARN]
    service = options["svc-service"]
    depends = [getattr(r, "_name", None) for r in (service.depends_on or [])]
    assert "gate" in depends and "svc-deploy-alarms" in depends
    inputs = mocks.one("aws:ecs/service:Service").inputs
    assert inputs["waitForSteadyState"] is True
    assert inputs["alarms"]["alarmNames"] == [
        "svc-deploy-alarms-5xx-rate",
        "svc-deploy-alarms-latency-p99",
        "svc-deploy-alarms-unhealthy-hosts",
    ]
    assert options["svc-service"].custom_timeouts.create == "40m"


@pytest.mark.timeout(60)  # without the resolution in the except branch, the program hangs
def test_a_failing_hook_fails_the_program_instead_of_hanging() -> None:
    def before_deploy(cluster_arn: pulumi.Output[str]) -> list[Any]:
        raise ValueError("model source is broken")

    with pytest.raises(ValueError, match="model source is broken"):
        deploy(service_args(before_deploy=before_deploy))


def test_bad_alarm_settings_fail_before_the_component_registers_anything() -> None:
    from tests.pulumi_mocks import MOCKS

    settings = ServiceSettings(deployment_alarms=DeploymentAlarmSettings(error_rate_percent=0))
    with pytest.raises(ValueError, match="alarm5xxRatePercent 0"):
        deploy(service_args(settings=settings))
    # only the collaborators the test program builds first exist; nothing of the service
    assert [r.name for r in MOCKS.resources if r.name.startswith("svc")] == []


@pytest.mark.timeout(60)  # the notifications were built outside the guarded block: a hang
def test_a_failing_notification_topic_fails_the_program_instead_of_hanging(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """pulumi/pulumi#18559 ("preview hangs when `deferred_output` can't be resolved, hides
    errors"): the program waits for every deferred output, so each step between creating the
    service's deferred ARN/name and resolving them must resolve them on error, the topic that
    consumes them included."""
    import components.ecs_service.service as service_module

    def broken(*_args: Any, **_kwargs: Any) -> Any:
        raise ValueError("notification e-mail refused")

    monkeypatch.setattr(service_module, "ServiceNotifications", broken)
    with pytest.raises(ValueError, match="notification e-mail refused"):
        deploy(service_args())
