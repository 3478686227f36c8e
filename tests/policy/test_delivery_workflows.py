"""The delivery workflows keep the guardrails they were written with: pinned actions, least
privilege, the policy pack on every preview and update, every stack previewed, prod behind dev."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
WORKFLOWS = ROOT / ".github" / "workflows"
FILES = sorted(WORKFLOWS.glob("*.yml"))
STACK_FILES = sorted(p.name.split(".")[1] for p in ROOT.glob("Pulumi.*.yaml"))
PINNED = re.compile(r"^[\w.-]+/[\w./-]+@[0-9a-f]{40} # v\d+(\.\d+)*$")
PULUMI_ACTION = "pulumi/actions@"


def load(path: Path) -> dict[str, Any]:
    return yaml.safe_load(path.read_text())


def triggers(workflow: dict[str, Any]) -> dict[str, Any]:
    # YAML 1.1 reads the bare key `on` as the boolean True.
    return workflow.get("on", workflow.get(True)) or {}


def steps(workflow: dict[str, Any]) -> list[dict[str, Any]]:
    return [s for job in workflow["jobs"].values() for s in job.get("steps", [])]


def uses_lines(path: Path) -> list[str]:
    return [
        line.split("uses:", 1)[1].strip()
        for line in path.read_text().splitlines()
        if line.strip().startswith(("uses:", "- uses:"))
    ]


def test_workflows_exist() -> None:
    names = {p.name for p in FILES}
    assert {"pull-request.yml", "deploy.yml", "_pulumi-preview.yml", "_pulumi-up.yml"} <= names


@pytest.mark.parametrize("path", FILES, ids=lambda p: p.name)
def test_no_pull_request_target_and_no_default_permissions(path: Path) -> None:
    workflow = load(path)
    assert "pull_request_target" not in triggers(workflow)
    assert workflow["permissions"] == {}
    for name, job in workflow["jobs"].items():
        assert "permissions" in job, f"{path.name}: job {name} sets no permissions"
        assert "write-all" not in str(job["permissions"])


@pytest.mark.parametrize("path", FILES, ids=lambda p: p.name)
def test_actions_are_pinned_by_commit_with_the_version_noted(path: Path) -> None:
    for spec in uses_lines(path):
        if spec.startswith("./"):
            continue
        assert PINNED.match(spec), f"{path.name}: {spec!r} is not pinned to a commit SHA"


@pytest.mark.parametrize("path", FILES, ids=lambda p: p.name)
def test_checkouts_do_not_persist_credentials(path: Path) -> None:
    for step in steps(load(path)):
        if str(step.get("uses", "")).startswith("actions/checkout@"):
            assert step["with"]["persist-credentials"] is False


def test_every_pulumi_run_uses_the_policy_pack_and_the_stack_policy_config() -> None:
    runs = [
        (path.name, step)
        for path in FILES
        for step in steps(load(path))
        if str(step.get("uses", "")).startswith(PULUMI_ACTION)
    ]
    assert {step["with"]["command"] for _, step in runs} == {"preview", "up"}
    for name, step in runs:
        assert step["with"]["policyPacks"] == "policy", name
        assert step["with"]["policyPackConfigs"] == "policy/config/${{ inputs.stack }}.json"
        assert step["env"]["PULUMI_ACCESS_TOKEN"] == "${{ secrets.PULUMI_ACCESS_TOKEN }}"


def test_pull_requests_preview_every_stack_with_a_comment() -> None:
    preview = load(WORKFLOWS / "pull-request.yml")["jobs"]["preview"]
    stacks = preview["strategy"]["matrix"]["stack"]
    assert set(STACK_FILES) <= set(stacks), "add the new Pulumi.<stack>.yaml to the matrix"
    for stack in stacks:
        assert (ROOT / "policy" / "config" / f"{stack}.json").is_file()
    assert preview["with"]["comment-on-pr"] is True
    assert preview["needs"] == "test"


def test_main_builds_once_then_dev_then_prod_with_the_same_tag() -> None:
    jobs = load(WORKFLOWS / "deploy.yml")["jobs"]
    assert jobs["images"]["needs"] == "test"
    assert jobs["deploy-dev"]["with"] == {
        "stack": "dev",
        "image-tag": "${{ needs.images.outputs.tag }}",
        "smoke": True,
    }
    assert jobs["deploy-prod"]["with"] == {
        "stack": "prod",
        "image-tag": "${{ needs.images.outputs.tag }}",
        "smoke": True,
    }
    assert "deploy-dev" in jobs["preview-prod"]["needs"]
    assert "preview-prod" in jobs["deploy-prod"]["needs"]
    builds = [s for s in jobs["images"]["steps"] if "build-push-action" in str(s.get("uses"))]
    assert [s["with"]["file"] for s in builds] == [
        "service/Dockerfile",
        "service/Dockerfile",
        "log_router/Dockerfile",
    ]
    # the service in both variants (cpu for Fargate, cuda for GPU), each tagged <sha>-<variant>
    tags = [s["with"]["tags"] for s in builds]
    assert tags[0].endswith(":${{ github.sha }}-cpu") and tags[1].endswith(
        ":${{ github.sha }}-cuda"
    )
    assert [s["with"].get("build-args") for s in builds[:2]] == [
        "ORT_VARIANT=cpu",
        "ORT_VARIANT=cuda",
    ]
    assert tags[2].endswith(":${{ github.sha }}")


def test_updates_run_in_the_stack_environment_one_at_a_time() -> None:
    job = load(WORKFLOWS / "_pulumi-up.yml")["jobs"]["up"]
    assert job["environment"]["name"] == "${{ inputs.stack }}"
    assert job["concurrency"] == {
        "group": "pulumi-up-${{ inputs.stack }}",
        "cancel-in-progress": False,
    }
    assert job["permissions"] == {"contents": "read", "id-token": "write"}


def test_aws_access_is_oidc_only() -> None:
    for path in FILES:
        text = path.read_text()
        assert "aws-access-key-id" not in text and "AWS_SECRET_ACCESS_KEY" not in text
        for step in steps(load(path)):
            if "configure-aws-credentials" in str(step.get("uses", "")):
                assert step["with"]["role-to-assume"].startswith("${{ vars"), path.name
