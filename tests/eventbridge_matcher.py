"""A small EventBridge event-pattern matcher for tests (moto's cannot match arrays of objects,
and its test_event_pattern is not implemented).

Semantics as the EventBridge User Guide states them ("Creating event patterns" and "Content
filtering in Amazon EventBridge event patterns",
https://docs.aws.amazon.com/eventbridge/latest/userguide/eb-create-pattern-operators.html):

- every field of the pattern must match (AND); the values listed for a field are alternatives
  (OR); ``$or`` lists alternative sub-patterns;
- an array in the event matches when any of its values matches; arrays of objects are flattened,
  so ``{"containers": {"exitCode": [...]}}`` matches when any container's exit code does;
- a matcher other than ``{"exists": false}`` never matches a field the event does not have
  (``anything-but`` included);
- ``exists``, ``prefix``, ``suffix``, ``anything-but`` (a value, a list, or a ``prefix`` /
  ``suffix``), ``equals-ignore-case`` and ``numeric`` are supported; anything else raises, so a
  pattern this matcher does not understand fails its test instead of passing.
"""

from __future__ import annotations

from typing import Any

Json = dict[str, Any]


def matches(pattern: Json, event: Json) -> bool:
    """True when EventBridge would deliver ``event`` to a rule with ``pattern``."""
    return _match_object(pattern, [event])


def _match_object(pattern: Json, nodes: list[Any]) -> bool:
    for key, spec in pattern.items():
        if key == "$or":
            if not any(_match_object(alternative, nodes) for alternative in spec):
                return False
            continue
        children: list[Any] = []
        for node in nodes:
            if isinstance(node, dict) and key in node:
                value = node[key]
                children.extend(value if isinstance(value, list) else [value])
        if isinstance(spec, dict):
            if not _match_object(spec, [c for c in children if isinstance(c, dict)]):
                return False
        elif isinstance(spec, list):
            leaves = [c for c in children if not isinstance(c, dict)]
            if not _match_leaf(spec, leaves, present=bool(leaves)):
                return False
        else:
            raise ValueError(f"pattern field {key!r} must be an object or a list, not {spec!r}")
    return True


def _same(value: Any, literal: Any) -> bool:
    if isinstance(value, bool) or isinstance(literal, bool):
        return type(value) is type(literal) and value == literal
    if isinstance(value, (int, float)) and isinstance(literal, (int, float)):
        return float(value) == float(literal)
    return type(value) is type(literal) and value == literal


def _numeric(value: Any, conditions: list[Any]) -> bool:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return False
    ops = {
        "<": lambda a, b: a < b,
        "<=": lambda a, b: a <= b,
        "=": lambda a, b: a == b,
        ">": lambda a, b: a > b,
        ">=": lambda a, b: a >= b,
    }
    pairs = zip(conditions[::2], conditions[1::2], strict=True)
    return all(ops[op](value, bound) for op, bound in pairs)


def _anything_but(value: Any, arg: Any) -> bool:
    if isinstance(arg, dict):
        ((op, text),) = arg.items()
        if op == "prefix":
            return isinstance(value, str) and not value.startswith(text)
        if op == "suffix":
            return isinstance(value, str) and not value.endswith(text)
        raise ValueError(f"anything-but {op!r} is not supported by this matcher")
    forbidden = arg if isinstance(arg, list) else [arg]
    return not any(_same(value, f) for f in forbidden)


def _match_leaf(matchers: list[Any], values: list[Any], *, present: bool) -> bool:
    for matcher in matchers:
        if not isinstance(matcher, dict):
            if any(_same(v, matcher) for v in values):
                return True
            continue
        ((op, arg),) = matcher.items()
        if op == "exists":
            if arg == present:
                return True
            continue
        if op == "prefix":
            hit = any(isinstance(v, str) and v.startswith(arg) for v in values)
        elif op == "suffix":
            hit = any(isinstance(v, str) and v.endswith(arg) for v in values)
        elif op == "equals-ignore-case":
            hit = any(isinstance(v, str) and v.lower() == arg.lower() for v in values)
        elif op == "anything-but":
            hit = any(_anything_but(v, arg) for v in values)
        elif op == "numeric":
            hit = any(_numeric(v, arg) for v in values)
        else:
            raise ValueError(f"matcher {op!r} is not supported by this matcher")
        if hit:
            return True
    return False
