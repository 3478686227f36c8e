"""``ModelPublish``: run the model sync task once during ``pulumi up``, before the service deploys.

Why a Python dynamic provider: the publish must run *during* ``pulumi up`` (never during
``preview``), wait for the task, fail the update with the task's own reason, and run again only
when what it publishes changes. A dynamic provider gives exactly that lifecycle: the engine calls
``create``/``update`` only in an update (a preview stops at ``check``/``diff``), a raised exception
fails the resource (and everything that depends on it, the ECS service first) with its message,
and ``diff`` decides when to run again. It runs in the Pulumi program's own virtualenv, so it
reuses ``ops`` (RunTask, ``failures``, waiting, the verdict) with no second copy and no AWS CLI
or shell on the deploying machine (macOS or Linux alike). pulumi-command would have needed a
shell command whose reruns are keyed on string triggers and whose failure text is whatever the
command prints.

It runs again when the source (URL or content fingerprint), the image or the sync task definition
changes; any other input (timeouts, subnets) changes nothing. Deleting it does nothing: the
published models stay in the store.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import pulumi
import pulumi.dynamic as dynamic

# ecs_client stays importable from here: providers stored in a state before the shared base
# existed reference it as components.model_publish.ecs_client.
from components.deploy_time_provider import (
    DEFAULT_TIMEOUT_S,
    EcsDeployTimeProvider,
    ecs_client,  # noqa: F401
)
from ops.ecs_task import EXIT_TASK_FAILED, Outcome, TaskRequest, run_to_completion
from service.sync import errors as sync_errors

# Inputs whose change means "publish again".
TRIGGERS = ("cluster", "task_definition", "image", "source", "source_version")
POLL_INTERVAL_S = 10.0


def sync_exit_meanings() -> dict[int, str]:
    """Exit code -> meaning, from the publisher's own error classes (service/sync/errors.py)."""
    meanings = {1: "unexpected error (a bug or an interrupted transfer; read the task's log)"}
    for cls in (
        sync_errors.UsageError,
        sync_errors.SourceError,
        sync_errors.VerificationError,
        sync_errors.LockedError,
        sync_errors.DestinationError,
    ):
        doc = (cls.__doc__ or "").strip().splitlines()[0].rstrip(".")
        meanings[cls.exit_code] = doc
    return meanings


def _container_exit(task: Mapping[str, Any] | None, container: str) -> int | None:
    for c in (task or {}).get("containers", []):
        if c.get("name") == container:
            code = c.get("exitCode")
            return int(code) if code is not None else None
    return None


def failure_message(outcome: Outcome, container: str, task_definition: str) -> str:
    """The update's error: what happened, why (the sync's exit-code meaning), where to look."""
    lines = [
        f"model publish failed: {outcome.headline}",
        f"  task definition: {task_definition}",
    ]
    if outcome.task_arn:
        lines.append(f"  task: {outcome.task_arn}")
    lines += [f"  {d}" for d in outcome.details]
    code = _container_exit(outcome.task, container)
    if outcome.exit_code == EXIT_TASK_FAILED and code is not None:
        meaning = sync_exit_meanings().get(code, "unknown exit code")
        lines.append(f"  model sync exit code {code}: {meaning} (docs/operations.md, Exit codes)")
    lines.append(
        "  the ECS service is not deployed until the publish succeeds; fix the cause and run "
        "`pulumi up` again"
    )
    return "\n".join(lines)


class ModelPublishProvider(EcsDeployTimeProvider):
    """create/update run the sync task and wait; diff decides whether to run again."""

    triggers = TRIGGERS
    default_poll_interval = POLL_INTERVAL_S

    def resource_id(self, outs: dict[str, Any]) -> str:
        return outs["task_arn"].rsplit("/", 1)[-1]

    def run(self, props: dict[str, Any]) -> dict[str, Any]:
        request = TaskRequest(
            cluster=props["cluster"],
            task_definition=props["task_definition"],
            subnets=list(props["subnets"]),
            security_groups=list(props["security_groups"]),
            container=props["container"],
            started_by="pulumi-model-publish",
        )
        outcome = run_to_completion(
            self.ecs(props),
            request,
            timeout=self.timeout(props),
            poll_interval=self.poll_interval(props),
            stop_on_timeout=True,
            sleep=self.sleep,
            clock=self.clock,
        )
        if not outcome.ok:
            raise RuntimeError(
                failure_message(outcome, props["container"], props["task_definition"])
            )
        return {
            **props,
            "task_arn": outcome.task_arn,
            "elapsed_seconds": round(outcome.elapsed, 1),
        }


@dataclass
class ModelPublishArgs:
    """What to run (the sync job's task definition) and what makes it run again."""

    cluster: pulumi.Input[str]
    task_definition: pulumi.Input[str]  # revision ARN: changes with the image and environment
    subnets: pulumi.Input[Sequence[pulumi.Input[str]]]
    security_groups: Sequence[pulumi.Input[str]]
    container: str
    region: pulumi.Input[str]
    image: pulumi.Input[str]
    source: pulumi.Input[str]  # s3://bucket/prefix
    source_version: pulumi.Input[str] = ""  # content fingerprint (e.g. the demo model's ETag)
    timeout_seconds: int = DEFAULT_TIMEOUT_S


class ModelPublish(dynamic.Resource):
    """One run of the model sync task during ``pulumi up`` (module docstring)."""

    task_arn: pulumi.Output[str]

    def __init__(
        self,
        name: str,
        args: ModelPublishArgs,
        opts: pulumi.ResourceOptions | None = None,
        provider: ModelPublishProvider | None = None,
    ) -> None:
        if not 60 <= args.timeout_seconds <= 7200:
            raise ValueError(f"model publish timeout {args.timeout_seconds}s: use 60-7200 seconds")
        props = {
            "cluster": args.cluster,
            "task_definition": args.task_definition,
            "subnets": args.subnets,
            "security_groups": list(args.security_groups),
            "container": args.container,
            "region": args.region,
            "image": args.image,
            "source": args.source,
            "source_version": args.source_version,
            "timeout_seconds": args.timeout_seconds,
            "task_arn": None,
            "elapsed_seconds": None,
        }
        super().__init__(provider or ModelPublishProvider(), name, props, opts)
