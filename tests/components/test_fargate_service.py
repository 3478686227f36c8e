"""FargateInferenceService: cluster, Fargate placement and size validation."""

from __future__ import annotations

import json
import re
from typing import Any

import pytest

from components.ecs_service import ServiceSettings
from components.efs_model_store import EfsModelStore, EfsModelStoreArgs
from components.fargate_service import (
    FargateInferenceService,
    FargateInferenceServiceArgs,
    cluster_name_from,
    fargate_placement,
)
from components.fargate_sizes import FARGATE_MEMORY_BY_CPU, validate_fargate_size
from components.log_router import LogRouter, LogRouterArgs
from tests import pulumi_mocks
from tests.components.helpers import container_definitions, containers
from tests.components.test_ecs_service import APP_IMAGE, NETWORK, ROUTER_IMAGE
from tests.ecs_schema import assert_valid_container_definitions
from tests.pulumi_mocks import ACCOUNT, RecordingMocks, run

SERVICE = "aws:ecs/service:Service"
TASK = "aws:ecs/taskDefinition:TaskDefinition"
CLUSTER = "aws:ecs/cluster:Cluster"


def deploy(**overrides: Any) -> RecordingMocks:
    def program() -> None:
        FargateInferenceService(
            "api",
            FargateInferenceServiceArgs(
                network=NETWORK,
                image=APP_IMAGE,
                model_store=EfsModelStore(
                    "models", EfsModelStoreArgs(vpc_id="vpc-0abc", subnet_ids=["s-a", "s-b"])
                ),
                log_router=LogRouter("logs", LogRouterArgs(image=ROUTER_IMAGE)),
                **overrides,
            ),
        )

    return run(program)


def test_default_is_two_vcpu_four_gib_linux_x86_on_fargate() -> None:
    mocks = deploy()
    task = mocks.one(TASK).inputs
    assert (task["cpu"], task["memory"]) == ("2048", "4096")
    assert task["requiresCompatibilities"] == ["FARGATE"]
    assert task["runtimePlatform"] == {
        "operatingSystemFamily": "LINUX",
        "cpuArchitecture": "X86_64",
    }
    svc = mocks.one(SERVICE).inputs
    # its own cluster has FARGATE/FARGATE_SPOT: a strategy, so Spot can be turned on in place
    assert "launchType" not in svc
    assert svc["capacityProviderStrategies"] == [
        {"capacityProvider": "FARGATE", "base": 0, "weight": 1}
    ]
    assert svc["forceNewDeployment"] is True
    assert svc["platformVersion"] == "LATEST"
    app = containers(mocks)["app"]
    assert {"name": "EXECUTION_PROVIDER", "value": "cpu"} in app["environment"]
    assert app["stopTimeout"] <= 120
    assert_valid_container_definitions(container_definitions(mocks))


def test_arm64_and_other_valid_sizes_are_passed_through() -> None:
    mocks = deploy(cpu=4096, memory=12288, architecture="ARM64")
    task = mocks.one(TASK).inputs
    assert (task["cpu"], task["memory"]) == ("4096", "12288")
    assert task["runtimePlatform"]["cpuArchitecture"] == "ARM64"


def test_creates_cluster_with_container_insights_and_runs_the_service_on_it() -> None:
    mocks = deploy()
    cluster = mocks.one(CLUSTER)
    assert cluster.name == "api-cluster"
    assert cluster.inputs["settings"] == [{"name": "containerInsights", "value": "enabled"}]
    assert mocks.one(SERVICE).inputs["cluster"] == f"arn:aws:ecs:us-east-1:{ACCOUNT}:api-cluster"
    target = mocks.one("aws:appautoscaling/target:Target").inputs
    assert target["resourceId"] == "service/api-cluster/api-service"


def test_enhanced_container_insights() -> None:
    mocks = deploy(container_insights="enhanced")
    assert mocks.one(CLUSTER).inputs["settings"] == [
        {"name": "containerInsights", "value": "enhanced"}
    ]


@pytest.mark.parametrize(
    "cluster",
    ["shared", f"arn:aws:ecs:us-east-1:{ACCOUNT}:cluster/shared"],
)
def test_existing_cluster_by_name_or_arn_creates_no_cluster(cluster: str) -> None:
    mocks = deploy(cluster=cluster)
    assert mocks.of_type(CLUSTER) == []
    assert mocks.one(SERVICE).inputs["cluster"] == f"arn:aws:ecs:us-east-1:{ACCOUNT}:cluster/shared"
    target = mocks.one("aws:appautoscaling/target:Target").inputs
    assert target["resourceId"] == "service/shared/api-service"
    rule = mocks.one("aws:cloudwatch/eventRule:EventRule", "api-notify-task-failed")
    assert json.loads(rule.inputs["eventPattern"])["detail"]["clusterArn"] == [
        f"arn:aws:ecs:us-east-1:{ACCOUNT}:cluster/shared"
    ]


def test_cluster_name_from_arn() -> None:
    assert cluster_name_from("arn:aws:ecs:eu-west-1:1:cluster/x-y") == "x-y"
    assert cluster_name_from("plain") == "plain"
    with pytest.raises(ValueError, match="not an ECS cluster ARN"):
        cluster_name_from("arn:aws:ecs:eu-west-1:1:service/x")


# -- preview-time validation ------------------------------------------------------------------
@pytest.mark.parametrize(
    ("cpu", "memory", "valid"),
    [
        (
            2048,
            2048,
            "4096, 5120, 6144, 7168, 8192, 9216, 10240, 11264, 12288, 13312, 14336, 15360, 16384",
        ),
        (256, 4096, "512, 1024, 2048"),
        (512, 512, "1024, 2048, 3072, 4096"),
        (1024, 9216, "2048, 3072, 4096, 5120, 6144, 7168, 8192"),
        (8192, 17408, "16384, 20480, 24576"),
        (16384, 30720, "32768, 40960, 49152"),
    ],
)
def test_invalid_size_names_the_valid_memory_values(cpu: int, memory: int, valid: str) -> None:
    with pytest.raises(ValueError, match=re.escape(f"for cpu {cpu}")) as err:
        deploy(cpu=cpu, memory=memory)
    assert valid in str(err.value)
    assert f"memory {memory} MiB is not valid" in str(err.value)


def test_unknown_cpu_lists_the_valid_cpus() -> None:
    with pytest.raises(ValueError, match=re.escape("[256, 512, 1024, 2048, 4096, 8192, 16384]")):
        deploy(cpu=3072, memory=8192)


@pytest.mark.parametrize(
    ("cpu", "low", "high", "step"),
    [
        (512, 1024, 4096, 1024),
        (1024, 2048, 8192, 1024),
        (2048, 4096, 16384, 1024),
        (4096, 8192, 30720, 1024),
        (8192, 16384, 61440, 4096),
        (16384, 32768, 122880, 8192),
    ],
)
def test_size_table_matches_aws_documentation(cpu: int, low: int, high: int, step: int) -> None:
    allowed = FARGATE_MEMORY_BY_CPU[cpu]
    assert allowed == tuple(range(low, high + 1, step))
    validate_fargate_size(cpu, low)
    validate_fargate_size(cpu, high)
    for bad in (low - step, high + step, low + step // 2):
        with pytest.raises(ValueError):
            validate_fargate_size(cpu, bad)
    assert FARGATE_MEMORY_BY_CPU[256] == (512, 1024, 2048)


def test_invalid_architecture_and_container_insights_and_stop_timeout() -> None:
    with pytest.raises(ValueError, match="cpu architecture 'arm'"):
        deploy(architecture="arm")
    with pytest.raises(
        ValueError, match="container_insights 'on' must be one of enabled, enhanced, disabled"
    ):
        deploy(container_insights="on")
    with pytest.raises(ValueError, match="stop timeout 150s: use 2-120"):
        deploy(settings=ServiceSettings(stop_timeout_s=150))


def test_validation_happens_before_any_resource() -> None:
    recorded: list[str] = []

    def program() -> None:
        try:
            FargateInferenceService(
                "api",
                FargateInferenceServiceArgs(
                    network=NETWORK,
                    image=APP_IMAGE,
                    model_store=None,  # type: ignore[arg-type]  # never reached
                    log_router=None,  # type: ignore[arg-type]
                    cpu=1024,
                    memory=1024,
                ),
            )
        except ValueError:
            recorded.extend(r.name for r in pulumi_mocks.MOCKS.resources)
            raise

    with pytest.raises(ValueError, match="valid memory values for cpu 1024: 2048"):
        run(program)
    assert recorded == []


def test_fargate_placement_is_fargate_only() -> None:
    placement = fargate_placement(256, 512)
    assert placement.launch_type == "FARGATE"
    assert placement.capacity_provider_strategies == ()
    assert placement.max_stop_timeout_s == 120
