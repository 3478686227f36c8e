"""Container definitions use the exact ECS API field names and types (botocore's ECS model).

ECS drops unknown keys without an error, so a typo such as ``healthcheck`` would deploy a task
without a health check. The checker itself is tested first, so that a passing check means
something.
"""

from __future__ import annotations

import pytest

from components.ecs_service import (
    ContainerHealthCheck,
    Placement,
    ServiceSettings,
    app_container_definition,
)
from components.fargate_service import fargate_placement
from tests.components.helpers import container_definitions
from tests.components.test_ecs_service import deploy, service_args
from tests.ecs_schema import (
    assert_valid_container_definitions,
    container_definition_errors,
    ecs_shape,
)


# -- the checker -------------------------------------------------------------------------------
def test_botocore_model_is_the_real_ecs_container_definition() -> None:
    members = ecs_shape("ContainerDefinition").members
    assert {"healthCheck", "portMappings", "stopTimeout", "firelensConfiguration"} <= set(members)
    assert "healthcheck" not in members


@pytest.mark.parametrize(
    ("definition", "problem"),
    [
        ({"name": "a", "healthcheck": {}}, "'healthcheck' is not a member of ContainerDefinition"),
        ({"name": "a", "stopTimeout": "30"}, "$a.stopTimeout: expected integer, got str"),
        ({"name": "a", "essential": 1}, "$a.essential: expected boolean, got int"),
        ({"name": "a", "cpu": True}, "$a.cpu: expected integer, got bool"),
        (
            {"name": "a", "portMappings": [{"containerPort": 8000, "protcol": "tcp"}]},
            "$a.portMappings[0]: 'protcol' is not a member of PortMapping",
        ),
        (
            {"name": "a", "portMappings": [{"containerPort": 8000, "protocol": "TCP"}]},
            "$a.portMappings[0].protocol: 'TCP' is not one of",
        ),
        (
            {"name": "a", "healthCheck": {"interval": 5}},
            "$a.healthCheck: missing required member 'command' of HealthCheck",
        ),
        (
            {"name": "a", "logConfiguration": {"logDriver": "awsfirelens", "options": []}},
            "$a.logConfiguration.options: expected map",
        ),
        (
            {"name": "a", "environment": {"A": "1"}},
            "$a.environment: expected list, got dict",
        ),
        (
            {"name": "a", "linuxParameters": {"initProcessEnabled": "true"}},
            "$a.linuxParameters.initProcessEnabled: expected boolean",
        ),
    ],
)
def test_checker_reports_typos_types_enums_and_required_members(
    definition: dict, problem: str
) -> None:
    errors = container_definition_errors(definition)
    assert any(problem in e for e in errors), errors
    with pytest.raises(AssertionError, match="do not match the ECS API"):
        assert_valid_container_definitions([definition])


# -- what we emit --------------------------------------------------------------------------------
def test_fargate_task_definition_matches_ecs_api() -> None:
    mocks, _ = deploy()
    definitions = container_definitions(mocks)
    assert [d["name"] for d in definitions] == ["app", "log-router"]
    assert_valid_container_definitions(definitions)


def test_read_only_variant_matches_ecs_api() -> None:
    mocks, _ = deploy(service_args(settings=ServiceSettings(enable_execute_command=False)))
    assert_valid_container_definitions(container_definitions(mocks))


def test_every_optional_app_field_matches_ecs_api() -> None:
    """The app container with every optional branch on (GPU, container cpu/memory)."""
    placement = Placement(
        requires_compatibilities=("EC2",),
        launch_type="EC2",
        container_cpu=1024,
        container_memory_reservation=2048,
        resource_requirements=({"type": "GPU", "value": "1"},),
        environment={"NVIDIA_DRIVER_CAPABILITIES": "all"},
    )
    app = app_container_definition(
        image="img",
        environment={"A": "1"},
        mount_points=[{"sourceVolume": "models", "containerPath": "/models", "readOnly": True}],
        log_configuration={"logDriver": "awsfirelens"},
        log_router_name="log-router",
        stop_timeout_s=30,
        readonly_root=True,
        health=ContainerHealthCheck(),
        placement=placement,
    )
    assert {"resourceRequirements", "cpu", "memoryReservation"} <= set(app)
    assert container_definition_errors(app) == []
    fargate = app_container_definition(
        image="img",
        environment={},
        mount_points=[],
        log_configuration={"logDriver": "awsfirelens"},
        log_router_name="log-router",
        stop_timeout_s=30,
        readonly_root=False,
        health=ContainerHealthCheck(),
        placement=fargate_placement(256, 512),
    )
    assert container_definition_errors(fargate) == []
