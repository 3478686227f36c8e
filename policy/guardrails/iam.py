"""IAM identity policies: no ``Action: "*"`` and no ``iam:PassRole`` on every role.

Policy documents reach the engine as JSON strings (``policy_json`` / ``json.dumps``) but may be
objects when a program passes a dict; ``Statement`` may be one object or a list, and
``Action``/``Resource`` a string or a list. All shapes are handled.
"""

from __future__ import annotations

import fnmatch
import json
from collections.abc import Iterator, Mapping
from typing import Any

from .model import EMPTY, as_list, is_unknown

POLICY = "aws:iam/policy:Policy"
ROLE_POLICY = "aws:iam/rolePolicy:RolePolicy"
USER_POLICY = "aws:iam/userPolicy:UserPolicy"
GROUP_POLICY = "aws:iam/groupPolicy:GroupPolicy"
ROLE = "aws:iam/role:Role"
POLICY_TYPES = frozenset({POLICY, ROLE_POLICY, USER_POLICY, GROUP_POLICY, ROLE})

_ALL_ACTIONS = {"*", "*:*"}


def _documents(resource_type: str, props: Mapping[str, Any]) -> Iterator[tuple[str, Any]]:
    """(label, document) pairs of every identity policy the resource carries."""
    if resource_type == ROLE:
        inline = props.get("inlinePolicies")
        if is_unknown(inline):
            return
        for index, item in enumerate(as_list(inline)):
            if isinstance(item, Mapping) and "policy" in item:
                yield f"inlinePolicies[{item.get('name', index)}]", item.get("policy")
        return
    if "policy" in props:
        yield "policy", props.get("policy")


def _parse(document: Any) -> Mapping[str, Any] | None:
    if isinstance(document, str):
        try:
            document = json.loads(document)
        except ValueError:
            return None
    return document if isinstance(document, Mapping) else None


def _statements(document: Mapping[str, Any]) -> list[Mapping[str, Any]]:
    statements = document.get("Statement")
    if is_unknown(statements):
        return []
    return [s for s in as_list(statements) if isinstance(s, Mapping)]


def _strings(value: Any) -> list[str]:
    return [v for v in as_list(value) if isinstance(v, str)]


def _grants(patterns: list[str], action: str) -> bool:
    """IAM action matching: case-insensitive, ``*`` and ``?`` wildcards."""
    return any(fnmatch.fnmatchcase(action.lower(), p.lower()) for p in patterns)


def no_wildcard_iam(
    resource_type: str, props: Mapping[str, Any], config: Mapping[str, Any] = EMPTY
) -> list[str]:
    """Allow statements must name actions; PassRole must name the roles it may pass."""
    if resource_type not in POLICY_TYPES:
        return []
    messages: list[str] = []
    for label, raw in _documents(resource_type, props):
        if is_unknown(raw):
            continue
        document = _parse(raw)
        if document is None:
            messages.append(f"{label} is not a JSON policy document: {str(raw)[:80]!r}")
            continue
        for index, statement in enumerate(_statements(document)):
            if statement.get("Effect") != "Allow":
                continue
            where = f"{label} Statement[{statement.get('Sid') or index}]"
            actions = _strings(statement.get("Action"))
            resources = _strings(statement.get("Resource"))
            if any(a in _ALL_ACTIONS for a in actions):
                messages.append(
                    f"{where} allows Action '*'. List the actions the workload calls "
                    "(e.g. 'logs:PutLogEvents') and scope Resource to ARNs."
                )
            elif "NotAction" in statement and not is_unknown(statement.get("NotAction")):
                messages.append(
                    f"{where} is Allow with NotAction, which grants every other action. "
                    "Use an Allow list of actions instead."
                )
            elif _grants(actions, "iam:PassRole") and "*" in resources:
                messages.append(
                    f"{where} allows iam:PassRole on Resource '*', which lets the holder hand "
                    "any role (admin included) to a service. Scope Resource to the role ARNs it "
                    "must pass and add Condition StringEquals iam:PassedToService "
                    "(e.g. ecs-tasks.amazonaws.com)."
                )
    return messages
