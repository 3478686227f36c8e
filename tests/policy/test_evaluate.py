"""The offline evaluator: enforcement levels and properties from policy config files, as the
engine applies them, and the per-stack config files CI passes."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from policy.guardrails.evaluate import (
    CONFIG_DIR,
    evaluate,
    load_stack_config,
    mandatory,
    resolve,
)
from policy.guardrails.model import Enforcement, StackResource
from policy.guardrails.registry import RULES, RULES_BY_NAME

PUBLIC_LB = StackResource(
    "aws:lb/loadBalancer:LoadBalancer",
    "alb",
    {"internal": False, "enableDeletionProtection": False},
)
OPEN_LOG_GROUP = StackResource("aws:cloudwatch/logGroup:LogGroup", "logs", {"name": "/x"})


def test_rule_names_are_unique_and_kebab_case() -> None:
    names = [rule.name for rule in RULES]
    assert len(names) == len(set(names))
    assert all(n == n.lower() and " " not in n and n != "all" for n in names)


def test_brief_mandatory_rules_are_mandatory() -> None:
    expected = {
        "efs-encrypted",
        "ecs-efs-transit-encryption",
        "no-world-ingress",
        "imdsv2-required",
        "log-group-retention",
        "ecs-circuit-breaker",
        "ecs-deployment-safety",
        "iam-no-wildcards",
        "s3-public-access-blocked",
        "lb-internal",
        "cost-allocation-tags",  # issue 13: required keys from policy/config/<stack>.json
    }
    levels = {rule.name: rule.enforcement for rule in RULES}
    assert {n for n, level in levels.items() if level is Enforcement.MANDATORY} == expected


def test_defaults_report_public_lb_as_mandatory_and_hide_deletion_protection() -> None:
    found = {(v.policy, v.enforcement) for v in evaluate([PUBLIC_LB])}
    assert found == {("lb-internal", Enforcement.MANDATORY)}


def test_rule_entry_sets_properties_and_level() -> None:
    config = {
        "lb-internal": {"allowPublicLoadBalancers": True},
        "lb-deletion-protection": "advisory",
        "log-group-retention": {"enforcementLevel": "advisory"},
    }
    found = {(v.policy, v.enforcement) for v in evaluate([PUBLIC_LB, OPEN_LOG_GROUP], config)}
    assert found == {
        ("lb-deletion-protection", Enforcement.ADVISORY),
        ("log-group-retention", Enforcement.ADVISORY),
    }
    assert mandatory(evaluate([PUBLIC_LB, OPEN_LOG_GROUP], config)) == []


def test_all_sets_every_level_and_rule_entries_win() -> None:
    level, props = resolve(RULES_BY_NAME["lb-internal"], {"all": "advisory"})
    assert level is Enforcement.ADVISORY and props == {"allowPublicLoadBalancers": False}
    level, _ = resolve(
        RULES_BY_NAME["lb-internal"], {"all": "advisory", "lb-internal": "mandatory"}
    )
    assert level is Enforcement.MANDATORY
    level, _ = resolve(RULES_BY_NAME["lb-internal"], {"all": {"enforcementLevel": "disabled"}})
    assert level is Enforcement.DISABLED
    assert evaluate([PUBLIC_LB], {"all": "disabled"}) == []


def test_remediate_counts_as_mandatory() -> None:
    level, _ = resolve(RULES_BY_NAME["ecs-exec-enabled"], {"ecs-exec-enabled": "remediate"})
    assert level is Enforcement.MANDATORY


def test_bad_config_is_refused_with_the_bad_value_named() -> None:
    with pytest.raises(ValueError, match="lb-internl"):
        evaluate([PUBLIC_LB], {"lb-internl": {"allowPublicLoadBalancers": True}})
    with pytest.raises(ValueError, match="'strict'"):
        evaluate([PUBLIC_LB], {"lb-internal": "strict"})


def test_each_checked_in_stack_config_is_valid() -> None:
    files = sorted(CONFIG_DIR.glob("*.json"))
    assert {f.stem for f in files} >= {"dev", "prod"}
    for path in files:
        evaluate([PUBLIC_LB, OPEN_LOG_GROUP], load_stack_config(path.stem))


def test_prod_config_turns_on_deletion_protection_advice() -> None:
    found = {v.policy for v in evaluate([PUBLIC_LB], load_stack_config("prod"))}
    assert "lb-deletion-protection" in found


def test_missing_stack_config_says_what_to_create(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match=r"staging\.json"):
        load_stack_config("staging", tmp_path)
    (tmp_path / "list.json").write_text(json.dumps([1]))
    with pytest.raises(ValueError, match="JSON object"):
        load_stack_config("list", tmp_path)
