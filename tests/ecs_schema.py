"""Check ECS container definitions against botocore's ECS API model.

AWS silently drops unknown keys in ``containerDefinitions`` JSON (a ``healthcheck`` typo means no
health check at all), so tests walk every key we emit, nested too, against the real
``ContainerDefinition`` shape: member names, JSON types, enum values and required members.

Usage::

    from tests.ecs_schema import assert_valid_container_definitions
    assert_valid_container_definitions(json.loads(task_def.inputs["containerDefinitions"]))
"""

from __future__ import annotations

from collections.abc import Mapping
from functools import lru_cache
from typing import Any

import botocore.session
from botocore.model import ListShape, MapShape, Shape, StructureShape

_SCALARS: dict[str, tuple[type, ...]] = {
    "string": (str,),
    "integer": (int,),
    "long": (int,),
    "boolean": (bool,),
    "double": (int, float),
    "float": (int, float),
}


@lru_cache(maxsize=1)
def ecs_shape(name: str = "ContainerDefinition") -> Shape:
    """A shape of the ECS service model shipped with botocore."""
    model = botocore.session.get_session().get_service_model("ecs")
    return model.shape_for(name)


def schema_errors(value: Any, shape: Shape, path: str = "$") -> list[str]:
    """Every mismatch between ``value`` and ``shape``, as 'path: problem' strings."""
    kind = shape.type_name
    if isinstance(shape, StructureShape):
        if not isinstance(value, Mapping):
            return [f"{path}: expected object ({shape.name}), got {type(value).__name__}"]
        errors = [
            f"{path}: missing required member {req!r} of {shape.name}"
            for req in shape.required_members
            if req not in value
        ]
        for key, item in value.items():
            member = shape.members.get(key)
            if member is None:
                errors.append(
                    f"{path}: {key!r} is not a member of {shape.name} "
                    f"(members: {sorted(shape.members)})"
                )
            else:
                errors += schema_errors(item, member, f"{path}.{key}")
        return errors
    if isinstance(shape, ListShape):
        if not isinstance(value, list):
            return [f"{path}: expected list, got {type(value).__name__}"]
        return [
            e for i, v in enumerate(value) for e in schema_errors(v, shape.member, f"{path}[{i}]")
        ]
    if isinstance(shape, MapShape):
        if not isinstance(value, Mapping):
            return [f"{path}: expected map, got {type(value).__name__}"]
        errors = []
        for key, item in value.items():
            errors += schema_errors(key, shape.key, f"{path}<key {key!r}>")
            errors += schema_errors(item, shape.value, f"{path}.{key}")
        return errors
    expected = _SCALARS.get(kind)
    if expected is None:
        return [f"{path}: unsupported shape type {kind} in a JSON container definition"]
    # bool is an int in Python; an integer member must not receive True/False.
    if not isinstance(value, expected) or (kind != "boolean" and isinstance(value, bool)):
        return [f"{path}: expected {kind}, got {type(value).__name__} {value!r}"]
    enum = getattr(shape, "enum", None)
    if enum and value not in enum:
        return [f"{path}: {value!r} is not one of {enum}"]
    return []


def container_definition_errors(definition: Mapping[str, Any]) -> list[str]:
    """Mismatches of one container definition against ECS's ``ContainerDefinition``."""
    return schema_errors(definition, ecs_shape("ContainerDefinition"), f"${definition.get('name')}")


def assert_valid_container_definitions(definitions: list[Mapping[str, Any]]) -> None:
    """Fail with every problem found in a task definition's ``containerDefinitions`` list."""
    assert isinstance(definitions, list) and definitions, "containerDefinitions must be a list"
    errors = [e for d in definitions for e in container_definition_errors(d)]
    assert not errors, "containerDefinitions do not match the ECS API:\n" + "\n".join(errors)
