"""Plain data types shared by every rule: no pulumi_policy import, so tests need no engine.

Rule functions see resource properties as plain dicts/lists in the camelCase form the engine
sends. A value the engine cannot know yet (an output of a resource that is still to be
created, during preview) arrives as the ``UNKNOWN`` sentinel: rules skip what they cannot judge,
because the engine runs the same policies again during ``pulumi up`` with the values resolved.
"""

from __future__ import annotations

import enum
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any


class _Unknown:
    """Sentinel for a property value that is not known during preview."""

    _instance: _Unknown | None = None

    def __new__(cls) -> _Unknown:
        if cls._instance is None:
            cls._instance = super().__new__(cls)
        return cls._instance

    def __repr__(self) -> str:
        return "UNKNOWN"

    def __bool__(self) -> bool:
        raise TypeError("UNKNOWN has no truth value: test it with is_unknown() first")


UNKNOWN: Any = _Unknown()
EMPTY: Mapping[str, Any] = {}


def is_unknown(value: Any) -> bool:
    return value is UNKNOWN


class Enforcement(enum.StrEnum):
    """Mirrors pulumi_policy.EnforcementLevel without importing it."""

    ADVISORY = "advisory"
    MANDATORY = "mandatory"
    DISABLED = "disabled"


@dataclass(frozen=True)
class Violation:
    """One finding: which policy, on which resource, how bad, and how to fix it."""

    policy: str
    enforcement: Enforcement
    resource_type: str
    resource_name: str
    message: str

    def __str__(self) -> str:
        return (
            f"[{self.enforcement}] {self.policy}: {self.resource_type} "
            f"{self.resource_name!r}: {self.message}"
        )


@dataclass(frozen=True)
class StackResource:
    """A resource as a stack-level rule sees it.

    ``identities`` are the strings other resources use to point at this one (its id, ARN,
    bucket name, ...); ``dependencies`` maps a property name to the URNs of the resources that
    property was computed from, ``depends_on`` lists them all. During preview the values are
    often unknown but the dependencies are not, so rules match on both (see ``refers_to``).
    """

    type_: str
    name: str
    props: Mapping[str, Any]
    urn: str = ""
    identities: frozenset[str] = frozenset()
    dependencies: Mapping[str, Sequence[str]] = field(default_factory=dict)
    depends_on: Sequence[str] = ()  # URNs of every resource this one depends on


ResourceCheck = Callable[[str, Mapping[str, Any], Mapping[str, Any]], list[str]]
StackCheck = Callable[[Sequence[StackResource], Mapping[str, Any]], list[tuple[StackResource, str]]]


@dataclass(frozen=True)
class ResourceRule:
    """A check of one resource's inputs. ``check(type, props, config)`` returns messages."""

    name: str
    description: str
    enforcement: Enforcement
    resource_types: frozenset[str]
    check: ResourceCheck
    config_schema: Mapping[str, Mapping[str, Any]] = field(default_factory=dict)


@dataclass(frozen=True)
class StackRule:
    """A check across resources (e.g. "every bucket has a public access block")."""

    name: str
    description: str
    enforcement: Enforcement
    check: StackCheck
    config_schema: Mapping[str, Mapping[str, Any]] = field(default_factory=dict)


Rule = ResourceRule | StackRule


# -- helpers for reading engine-shaped props -------------------------------------------------
def as_list(value: Any) -> list[Any]:
    """IAM-style "one or many": a string or mapping becomes a one-element list."""
    if value is None:
        return []
    if isinstance(value, str | bytes | Mapping) or is_unknown(value):
        return [value]
    if isinstance(value, Sequence):
        return list(value)
    return [value]


def get_path(props: Mapping[str, Any], *path: str) -> Any:
    """``props[a][b]...`` or None when a level is missing; UNKNOWN when a level is unknown."""
    current: Any = props
    for key in path:
        if is_unknown(current):
            return UNKNOWN
        if not isinstance(current, Mapping):
            return None
        current = current.get(key)
    return current


def tags_of(props: Mapping[str, Any]) -> dict[str, Any]:
    """Tags set on the resource (``tags``) plus provider default tags (``tagsAll``) if known."""
    merged: dict[str, Any] = {}
    for key in ("tagsAll", "tags"):
        value = props.get(key)
        if isinstance(value, Mapping):
            merged.update(value)
    return merged


def contains_string(value: Any, needles: Iterable[str]) -> bool:
    """Whether any of ``needles`` appears as a whole string anywhere inside ``value``."""
    wanted = set(needles)
    if not wanted:
        return False
    if isinstance(value, str):
        return value in wanted
    if isinstance(value, Mapping):
        return any(contains_string(v, wanted) for v in value.values())
    if isinstance(value, Sequence) and not isinstance(value, bytes):
        return any(contains_string(v, wanted) for v in value)
    return False


def refers_to(source: StackResource, target: StackResource, prop: str | None = None) -> bool:
    """Whether ``source`` points at ``target`` through ``prop`` (or any property if None):
    by a recorded dependency on target's URN, or by a value equal to one of its identities."""
    props = source.props if prop is None else {prop: source.props.get(prop)}
    if prop is None:
        deps = [urn for urns in source.dependencies.values() for urn in urns]
        deps = deps or list(source.depends_on)
    elif prop in source.dependencies:
        deps = list(source.dependencies[prop])
    elif is_unknown(source.props.get(prop)):
        # An engine that sends no per-property dependencies: any dependency may be the one.
        deps = list(source.depends_on)
    else:
        deps = []
    if target.urn and target.urn in deps:
        return True
    return contains_string(props, target.identities)
