"""The deploy job outlasts the waits `pulumi up` now contains, and so do its AWS credentials.

- GitHub Actions, ``jobs.<job_id>.timeout-minutes``: "The maximum number of minutes to let a job
  run before GitHub automatically cancels it". A ``pulumi up`` cancelled midway leaves the
  stack with pending operations (and, on Pulumi Cloud, a running update to ``pulumi cancel``)
  instead of failing with the reason.
- AWS STS API Reference, AssumeRoleWithWebIdentity, ``DurationSeconds``: "By default, the value
  is set to 3600 seconds"; it can go "up to the maximum session duration setting for the role
  ... If you specify a value higher than this setting, the operation fails". The AWS provider
  gets static session credentials from configure-aws-credentials, so an update longer than the
  session fails on expired credentials.
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

import yaml

from components import deployment_check, model_publish
from components.deployment_alarms import DeploymentAlarmSettings
from ops import smoke

ROOT = Path(__file__).resolve().parents[2]
UP = ROOT / ".github" / "workflows" / "_pulumi-up.yml"
SERVICE_WAIT_S = 40 * 60  # aws.ecs.Service custom_timeouts (components/ecs_service/service.py)
SETUP_S = 10 * 60  # checkout, installs, creating the rest of the stack


def _job() -> dict[str, Any]:
    return yaml.safe_load(UP.read_text())["jobs"]["up"]


def _worst_case_seconds() -> int:
    parser = argparse.ArgumentParser()
    smoke.configure(parser)
    smoke_s = int(parser.parse_args([]).timeout)
    check_s = DeploymentAlarmSettings().deployment_check_timeout(deployment_check.DEFAULT_TIMEOUT_S)
    return model_publish.DEFAULT_TIMEOUT_S + SERVICE_WAIT_S + check_s + smoke_s + SETUP_S


def test_the_job_outlasts_the_waits_of_a_failing_update() -> None:
    assert (
        'custom_timeouts=pulumi.CustomTimeouts(create="40m", update="40m")'
        in (ROOT / "components" / "ecs_service" / "service.py").read_text()
    )
    assert _job()["timeout-minutes"] * 60 >= _worst_case_seconds()


def test_the_aws_session_lasts_as_long_as_the_job_and_the_docs_say_how_to_allow_it() -> None:
    (credentials,) = [
        s for s in _job()["steps"] if "configure-aws-credentials" in str(s.get("uses", ""))
    ]
    duration = int(credentials["with"]["role-duration-seconds"])
    assert duration >= _job()["timeout-minutes"] * 60
    assert duration <= 12 * 3600  # STS's ceiling for any role
    delivery = (ROOT / "docs" / "delivery.md").read_text()
    assert "--max-session-duration" in delivery
