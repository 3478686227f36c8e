"""Evaluate the whole policy pack on resources recorded by tests/pulumi_mocks.py.

``check_recorded(mocks.resources)`` returns what ``pulumi preview --policy-pack policy`` would
report for the same program, advisory findings included; ``mandatory(...)`` keeps the blocking
ones. Resources point at each other by value under the mocks (``bucket=b.id`` resolves to
``"<name>-id"``), so each recorded resource's identities are rebuilt from the same mock outputs
the program saw.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from policy.guardrails.evaluate import evaluate, load_stack_config, mandatory
from policy.guardrails.model import StackResource, Violation
from tests.pulumi_mocks import Recorded, RecordingMocks

__all__ = ["check_recorded", "check_stack", "load_stack_config", "mandatory", "to_stack_resource"]

_IDENTITY_KEYS = ("id", "arn", "bucket")


def to_stack_resource(recorded: Recorded) -> StackResource:
    """A recorded mock resource as the pack's stack-level rules see it."""
    identities = {f"{recorded.name}-id"}
    if recorded.options is not None:
        resource_id, outputs = RecordingMocks().new_resource(recorded.options)
        identities.add(resource_id)
        identities.update(
            str(outputs[k]) for k in _IDENTITY_KEYS if isinstance(outputs.get(k), str)
        )
    return StackResource(
        type_=recorded.type_,
        name=recorded.name,
        props=recorded.inputs,
        urn=f"urn:pulumi:test::onnx-ecs-serving::{recorded.type_}::{recorded.name}",
        identities=frozenset(identities),
    )


def check_recorded(
    resources: Iterable[Recorded], config: Mapping[str, Any] | None = None
) -> list[Violation]:
    """Every violation (advisory and mandatory) the pack finds in ``resources``.

    ``config`` is a policy-pack config as in ``policy/config/<stack>.json``; None means the
    pack's defaults.
    """
    return evaluate([to_stack_resource(r) for r in resources], config)


def check_stack(resources: Iterable[Recorded], stack: str) -> list[Violation]:
    """``check_recorded`` with the policy config CI passes for ``stack``."""
    return check_recorded(resources, load_stack_config(stack))
