"""Readers for what the Pulumi mocks recorded, shared by the component tests: the container
definitions ECS would receive and the statements of a policy document."""

from __future__ import annotations

import json
from typing import Any

from tests.pulumi_mocks import RecordingMocks

TASK_DEFINITION = "aws:ecs/taskDefinition:TaskDefinition"
ROLE_POLICY = "aws:iam/rolePolicy:RolePolicy"

Json = dict[str, Any]


def container_definitions(mocks: RecordingMocks, task_definition: str | None = None) -> list[Json]:
    """The container definitions of the one (or the named) task definition, in order."""
    task = mocks.one(TASK_DEFINITION, task_definition)
    return json.loads(task.inputs["containerDefinitions"])


def containers(mocks: RecordingMocks, task_definition: str | None = None) -> dict[str, Json]:
    """The same, by container name."""
    return {c["name"]: c for c in container_definitions(mocks, task_definition)}


def policy_statements(mocks: RecordingMocks, type_: str, name: str | None = None) -> list[Json]:
    """The statements of the ``policy`` input of the one (or the named) resource of ``type_``
    (role policy, topic policy, KMS key, ...)."""
    return json.loads(mocks.one(type_, name).inputs["policy"])["Statement"]


def by_sid(found: list[Json]) -> dict[str, Json]:
    """Statements by ``Sid``; a statement without one fails the test (KeyError)."""
    return {s["Sid"]: s for s in found}
