"""Wire the plain rules into pulumi_policy objects (the only module that imports the SDK).

The engine hands props wrapped in proxies that raise ``UnknownValueError`` when a value is not
known during preview. Left alone, one such access aborts the whole policy with a generic
"can't run policy during preview" note; ``plain()`` turns each unknown into ``UNKNOWN`` instead,
so the rule still judges everything it can see.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from pulumi_policy import (
    EnforcementLevel,
    Policy,
    PolicyConfigSchema,
    ReportViolation,
    ResourceValidationArgs,
    ResourceValidationPolicy,
    StackValidationArgs,
    StackValidationPolicy,
)
from pulumi_policy.proxy import UnknownValueError

from .model import UNKNOWN, Enforcement, ResourceRule, Rule, StackResource, StackRule
from .registry import RULES

PACK_NAME = "onnx-ecs-guardrails"

_LEVELS = {
    Enforcement.ADVISORY: EnforcementLevel.ADVISORY,
    Enforcement.MANDATORY: EnforcementLevel.MANDATORY,
    Enforcement.DISABLED: EnforcementLevel.DISABLED,
}


def plain(value: Any) -> Any:
    """A deep copy of engine props as dicts/lists, with unknown values replaced by UNKNOWN."""
    if isinstance(value, str | bytes):
        return value
    if isinstance(value, Mapping):
        out: dict[str, Any] = {}
        for key in value:
            try:
                out[key] = plain(value[key])
            except UnknownValueError:
                out[key] = UNKNOWN
        return out
    if isinstance(value, Sequence):
        items: list[Any] = []
        for index in range(len(value)):
            try:
                items.append(plain(value[index]))
            except UnknownValueError:
                items.append(UNKNOWN)
        return items
    return value


def _identities(props: Mapping[str, Any]) -> frozenset[str]:
    """Strings other resources use to point at this one. Stack props are outputs: an ARN ends
    in the id (``.../sg-0abc``), a bucket's id is its name."""
    found: set[str] = set()
    for key in ("id", "arn", "bucket"):
        value = props.get(key)
        if isinstance(value, str) and value:
            found.add(value)
            if key == "arn":
                found.add(value.rsplit("/", 1)[-1])
    return frozenset(found)


def stack_resource(resource: Any) -> StackResource:
    """A pulumi_policy.PolicyResource as the plain rules see it."""
    props = plain(resource.props)
    return StackResource(
        type_=resource.resource_type,
        name=resource.name,
        props=props,
        urn=resource.urn,
        identities=_identities(props),
        dependencies={
            prop: tuple(dep.urn for dep in deps)
            for prop, deps in resource.property_dependencies.items()
        },
        depends_on=tuple(dep.urn for dep in resource.dependencies),
    )


def _schema(rule: Rule) -> PolicyConfigSchema | None:
    return PolicyConfigSchema(properties=dict(rule.config_schema)) if rule.config_schema else None


def _config(rule: Rule, config: Mapping[str, Any]) -> dict[str, Any]:
    merged = {k: v["default"] for k, v in rule.config_schema.items() if "default" in v}
    merged.update(config)
    return merged


def resource_policy(rule: ResourceRule) -> ResourceValidationPolicy:
    def validate(args: ResourceValidationArgs, report_violation: ReportViolation) -> None:
        if args.resource_type not in rule.resource_types:
            return
        props = plain(args.props)
        for message in rule.check(args.resource_type, props, _config(rule, args.get_config())):
            report_violation(message, None)

    return ResourceValidationPolicy(
        name=rule.name,
        description=rule.description,
        validate=validate,
        enforcement_level=_LEVELS[rule.enforcement],
        config_schema=_schema(rule),
    )


def stack_policy(rule: StackRule) -> StackValidationPolicy:
    def validate(args: StackValidationArgs, report_violation: ReportViolation) -> None:
        resources = [stack_resource(r) for r in args.resources]
        for resource, message in rule.check(resources, _config(rule, args.get_config())):
            report_violation(f"{resource.type_} {resource.name!r}: {message}", resource.urn or None)

    return StackValidationPolicy(
        name=rule.name,
        description=rule.description,
        validate=validate,
        enforcement_level=_LEVELS[rule.enforcement],
        config_schema=_schema(rule),
    )


def build_policies() -> list[Policy]:
    """One pulumi_policy object per rule, in registry order."""
    return [
        resource_policy(rule) if isinstance(rule, ResourceRule) else stack_policy(rule)
        for rule in RULES
    ]
