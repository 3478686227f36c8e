"""The deploy pipeline smoke-tests every stack after its `pulumi up`, and prod waits for dev's."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

WORKFLOWS = Path(__file__).resolve().parents[2] / ".github" / "workflows"


def load(name: str) -> dict[str, Any]:
    return yaml.safe_load((WORKFLOWS / name).read_text())


def needs(job: dict[str, Any]) -> set[str]:
    value = job.get("needs", [])
    return {value} if isinstance(value, str) else set(value)


def test_prod_deploy_needs_the_dev_job_that_ran_the_smoke_test() -> None:
    jobs = load("deploy.yml")["jobs"]
    dev = jobs["deploy-dev"]
    assert dev["uses"] == "./.github/workflows/_pulumi-up.yml"
    assert (dev["with"]["stack"], dev["with"]["smoke"]) == ("dev", True)
    assert "deploy-dev" in needs(jobs["deploy-prod"])  # directly, not only through the preview
    assert "deploy-dev" in needs(jobs["preview-prod"])  # reviewers see prod only after dev served
    assert (jobs["deploy-prod"]["with"]["stack"], jobs["deploy-prod"]["with"]["smoke"]) == (
        "prod",
        True,
    )


def test_the_up_workflow_smoke_tests_after_the_update() -> None:
    workflow = load("_pulumi-up.yml")
    smoke_input = workflow[True]["workflow_call"]["inputs"]["smoke"]  # `on:` parses as True
    assert (smoke_input["type"], smoke_input["default"]) == ("boolean", True)
    steps = workflow["jobs"]["up"]["steps"]
    names = [s.get("id") or s.get("name") for s in steps]
    up = names.index("pulumi")
    smoke = next(i for i, s in enumerate(steps) if "python -m ops smoke" in s.get("run", ""))
    assert smoke > up
    step = steps[smoke]
    assert step["if"] == "inputs.smoke"
    assert "pulumi stack output --json" in step["run"]
    assert "--stack-outputs outputs.json" in step["run"]
    assert "${{" not in step["run"]  # values reach the script through env only (zizmor)
