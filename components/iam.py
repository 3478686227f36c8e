"""Small helpers for IAM JSON documents, so every component writes policies the same way."""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any

import pulumi

Statement = dict[str, Any]


def policy_json(statements: Sequence[Statement | pulumi.Output[Statement]]) -> pulumi.Output[str]:
    """A policy document (Version 2012-10-17) from statements that may hold Outputs."""
    return pulumi.Output.all(*statements).apply(
        lambda resolved: json.dumps({"Version": "2012-10-17", "Statement": list(resolved)})
    )


def assume_role_policy(service: str, conditions: dict[str, Any] | None = None) -> str:
    """Trust policy letting one AWS service principal (e.g. ``ecs-tasks.amazonaws.com``) assume
    the role, optionally narrowed by conditions (aws:SourceAccount, aws:SourceArn)."""
    statement: Statement = {
        "Effect": "Allow",
        "Principal": {"Service": service},
        "Action": "sts:AssumeRole",
    }
    if conditions:
        statement["Condition"] = conditions
    return json.dumps({"Version": "2012-10-17", "Statement": [statement]})
