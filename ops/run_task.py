"""``python -m ops run-task``: run one ECS task from a stack's task definition and wait for it.

    python -m ops run-task --stack-outputs outputs.json \\
        --container app --command "python -m service.sync"

Settings come from explicit flags, else from ``pulumi stack output --json`` saved to a file.
Exit codes: 0 task exited 0 (or started, with --no-wait), 1 AWS/API error, 2 usage,
3 RunTask placed nothing (``failures``), 4 task failed to start, 5 a container exited
non-zero, 6 timed out waiting (the task may still be running).
"""

from __future__ import annotations

import argparse
import shlex
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import boto3
from botocore.config import Config
from botocore.exceptions import BotoCoreError, ClientError
from rich.console import Console

from ops.ecs_task import (
    EXIT_ERROR,
    EXIT_NOT_PLACED,
    EXIT_OK,
    EXIT_TIMEOUT,
    EXIT_USAGE,
    FARGATE,
    Outcome,
    TaskRequest,
    placement_failures,
    run_to_completion,
)
from ops.links import (
    TaskArn,
    log_group_console_url,
    logs_tail_command,
    stop_command,
    task_console_url,
)
from ops.stack_outputs import (
    DEFAULT_TASK_DEFINITION_KEY,
    StackOutputsError,
    as_list,
    load_outputs,
    lookup,
)


class UsageProblem(ValueError):
    """A missing or contradictory setting, reported with exit code 2."""


def configure(parser: argparse.ArgumentParser) -> None:
    """The run-task flags (shared by ``python -m ops run-task`` and ``main`` below)."""
    where = parser.add_argument_group("what and where (flags win over --stack-outputs)")
    where.add_argument("--stack-outputs", type=Path, help="pulumi stack output --json > FILE")
    where.add_argument("--cluster", help="cluster name or ARN (output clusterName)")
    where.add_argument("--task-definition", help="family[:revision] or ARN")
    where.add_argument(
        "--task-definition-key",
        default=DEFAULT_TASK_DEFINITION_KEY,
        help="stack output holding the task definition (default taskDefinitionArn)",
    )
    where.add_argument("--subnets", help="comma-separated subnet IDs (output privateSubnetIds)")
    where.add_argument(
        "--security-groups", help="comma-separated SG IDs (output taskSecurityGroupId)"
    )
    where.add_argument(
        "--assign-public-ip", action="store_true", help="give the task a public IP (default off)"
    )
    where.add_argument(
        "--capacity",
        help="FARGATE (default), FARGATE_SPOT or a capacity provider name (e.g. the GPU one)",
    )
    where.add_argument("--region", help="AWS region (default: from the ARNs, else the profile)")
    what = parser.add_argument_group("container overrides")
    what.add_argument("--container", help="container to override (needed with --command/--env)")
    what.add_argument("--command", help='command to run instead, e.g. "python -m service.sync"')
    what.add_argument(
        "--env", action="append", default=[], metavar="KEY=VALUE", help="extra environment"
    )
    wait = parser.add_argument_group("waiting")
    wait.add_argument("--no-wait", action="store_true", help="start the task, print its ARN")
    wait.add_argument(
        "--timeout", type=float, default=900.0, help="seconds to wait for STOPPED (default 900)"
    )
    wait.add_argument("--poll-interval", type=float, default=6.0, help=argparse.SUPPRESS)
    wait.add_argument(
        "--stop-on-timeout", action="store_true", help="stop the task when the wait times out"
    )
    wait.add_argument("--log-group", help="log group to point at (output errorLogGroupName)")


def _environment(pairs: list[str]) -> dict[str, str]:
    env: dict[str, str] = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep or not key:
            raise UsageProblem(f"--env {pair!r}: expected KEY=VALUE")
        env[key] = value
    return env


def build_request(args: argparse.Namespace, outputs: dict[str, Any]) -> TaskRequest:
    """Merge flags and stack outputs into a RunTask request, failing early on gaps."""
    cluster = args.cluster or lookup(outputs, "cluster")
    task_definition = args.task_definition or outputs.get(args.task_definition_key)
    if not cluster:
        raise UsageProblem("no cluster: pass --cluster, or --stack-outputs with clusterName")
    if not task_definition:
        raise UsageProblem(
            "no task definition: pass --task-definition, or --stack-outputs with "
            f"{args.task_definition_key}"
        )
    subnets = as_list(args.subnets) or as_list(lookup(outputs, "subnets"))
    groups = as_list(args.security_groups) or as_list(lookup(outputs, "security_groups"))
    capacity = args.capacity or lookup(outputs, "capacity") or FARGATE
    if capacity.startswith(FARGATE) and not subnets:
        raise UsageProblem(
            f"{capacity} tasks need subnets: pass --subnets, or --stack-outputs with "
            "privateSubnetIds"
        )
    if (args.command is not None or args.env) and not args.container:
        raise UsageProblem("--command and --env need --container (the container to override)")
    try:
        command = shlex.split(args.command) if args.command is not None else None
    except ValueError as exc:
        raise UsageProblem(f"--command {args.command!r}: {exc}") from exc
    if command == []:
        raise UsageProblem("--command is empty")
    return TaskRequest(
        cluster=str(cluster),
        task_definition=str(task_definition),
        subnets=subnets,
        security_groups=groups,
        assign_public_ip=args.assign_public_ip,
        capacity=str(capacity),
        container=args.container,
        command=command,
        environment=_environment(args.env),
    )


def _region_of(*candidates: str) -> str | None:
    for value in candidates:
        parts = value.split(":")
        if value.startswith("arn:") and len(parts) > 3 and parts[3]:
            return parts[3]
    return None


def _elapsed(seconds: float) -> str:
    minutes, secs = divmod(int(seconds), 60)
    return f"{minutes}:{secs:02d}"


class StatusLine:
    """A live status line on a terminal, and one line per status change everywhere."""

    def __init__(self, console: Console, task_id: str) -> None:
        self.console = console
        self.task_id = task_id
        self.last: str | None = None
        self._live = console.status("starting…") if console.is_terminal else None

    def __enter__(self) -> StatusLine:
        if self._live is not None:
            self._live.start()
        return self

    def __exit__(self, *exc: object) -> None:
        if self._live is not None:
            self._live.stop()

    def __call__(self, task: dict[str, Any] | None, elapsed: float) -> None:
        """Called after every DescribeTasks poll (``task`` is None while ECS says MISSING)."""
        state = task.get("lastStatus", "UNKNOWN") if task else "MISSING"
        desired = task.get("desiredStatus", "?") if task else "?"
        if self._live is not None:
            self._live.update(
                f"task {self.task_id}: [bold]{state}[/] (desired {desired}) · "
                f"{_elapsed(elapsed)} elapsed"
            )
        if state != self.last:
            self.last = state
            self.console.print(f"[{_elapsed(elapsed)}] {state}", markup=False, highlight=False)


class RunTask:
    """The command, with its AWS client, consoles, sleep and clock injectable for tests."""

    def __init__(
        self,
        ecs: Any | None = None,
        *,
        console: Console | None = None,
        out: Console | None = None,
        sleep: Callable[[float], None] = time.sleep,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.ecs = ecs
        self.err = console or Console(stderr=True)
        self.out = out or Console(soft_wrap=True)
        self.sleep = sleep
        self.clock = clock

    def _say(self, text: str) -> None:
        self.err.print(text, markup=False, highlight=False, soft_wrap=True)

    def _client(self, request: TaskRequest, region: str | None) -> Any:
        if self.ecs is not None:
            return self.ecs
        region = region or _region_of(request.cluster, request.task_definition)
        retries = Config(retries={"mode": "standard", "max_attempts": 10})
        return boto3.client("ecs", region_name=region, config=retries)

    def _pointers(self, task_arn: str, request: TaskRequest, log_group: str | None) -> None:
        try:
            arn = TaskArn.parse(task_arn)
        except ValueError:
            return
        self._say(f"task page: {task_console_url(arn, request.cluster)}")
        if log_group:
            self._say(f"log group {log_group}: {log_group_console_url(arn, log_group)}")
            self._say(f"log lines: {logs_tail_command(arn, log_group)}")

    def execute(self, args: argparse.Namespace) -> int:
        """Start, wait, judge; returns the exit code."""
        try:
            outputs = load_outputs(args.stack_outputs) if args.stack_outputs else {}
            request = build_request(args, outputs)
        except (UsageProblem, StackOutputsError) as exc:
            self._say(f"error: {exc}")
            return EXIT_USAGE
        log_group = args.log_group or lookup(outputs, "log_group")
        if request.subnets and not request.security_groups:
            self._say("warning: no security group given; the VPC's default group applies")
        try:
            ecs = self._client(request, args.region)
        except (ClientError, BotoCoreError) as exc:
            self._say(f"error: RunTask refused: {exc}")
            return EXIT_ERROR
        if args.no_wait:
            return self._start_only(ecs, request, log_group)
        return self._run(ecs, request, args, log_group)

    def _placement_failed(self, headline: str, details: list[str]) -> int:
        self._say(f"error: {headline}:")
        for line in details:
            self._say(f"  - {line}")
        return EXIT_NOT_PLACED

    def _start_only(self, ecs: Any, request: TaskRequest, log_group: str | None) -> int:
        """--no-wait: RunTask, its failures, the ARN; nothing else."""
        try:
            answer = ecs.run_task(**request.params())
        except (ClientError, BotoCoreError) as exc:
            self._say(f"error: RunTask refused: {exc}")
            return EXIT_ERROR
        failures = placement_failures(answer)
        tasks = answer.get("tasks") or []
        if failures or not tasks:
            return self._placement_failed(
                f"RunTask answered 200 but placed no task ({len(failures)} failure(s))",
                [str(f) for f in failures],
            )
        task_arn = tasks[0]["taskArn"]
        self._started(task_arn, request)
        self._pointers(task_arn, request, log_group)
        self._say(
            "not waiting; follow it with: aws ecs describe-tasks "
            f"--cluster {shlex.quote(request.cluster)} --tasks {task_arn}"
        )
        return EXIT_OK

    def _started(self, task_arn: str, request: TaskRequest) -> None:
        self.out.print(task_arn, markup=False, highlight=False)
        task_id = task_arn.rsplit("/", 1)[-1]
        self._say(f"started task {task_id} on {request.cluster} ({request.capacity})")

    def _run(
        self,
        ecs: Any,
        request: TaskRequest,
        args: argparse.Namespace,
        log_group: str | None,
    ) -> int:
        """Start, wait and judge through :func:`ops.ecs_task.run_to_completion`."""
        started: list[str] = []
        status = StatusLine(self.err, "")

        def on_started(task_arn: str) -> None:
            started.append(task_arn)
            status.task_id = task_arn.rsplit("/", 1)[-1]
            self._started(task_arn, request)

        try:
            with status:
                outcome = run_to_completion(
                    ecs,
                    request,
                    timeout=args.timeout,
                    poll_interval=args.poll_interval,
                    stop_on_timeout=False,  # the CLI reports and stops it itself (below)
                    sleep=self.sleep,
                    clock=self.clock,
                    on_status=status,
                    on_started=on_started,
                )
        except (ClientError, BotoCoreError) as exc:
            if not started:
                self._say(f"error: RunTask refused: {exc}")
                return EXIT_ERROR
            region = _region_of(started[0]) or ecs.meta.region_name
            self._say(f"error: DescribeTasks failed: {exc}")
            self._say(
                "the task may still be running; stop it with:\n  "
                f"{stop_command(started[0], request.cluster, region)}"
            )
            return EXIT_ERROR
        if outcome.exit_code == EXIT_NOT_PLACED:
            return self._placement_failed(outcome.headline, outcome.details)
        assert outcome.task_arn is not None
        if outcome.exit_code == EXIT_TIMEOUT:
            return self._timed_out(ecs, outcome, request, args, log_group)
        prefix = "" if outcome.exit_code == EXIT_OK else "error: "
        self._say(f"{prefix}{outcome.headline} after {_elapsed(outcome.elapsed)}")
        for line in outcome.details:
            self._say(f"  {line}")
        self._pointers(outcome.task_arn, request, log_group)
        return outcome.exit_code

    def _timed_out(
        self,
        ecs: Any,
        outcome: Outcome,
        request: TaskRequest,
        args: argparse.Namespace,
        log_group: str | None,
    ) -> int:
        task_arn = outcome.task_arn or ""
        region = _region_of(task_arn) or ecs.meta.region_name
        stop = stop_command(task_arn, request.cluster, region)
        state = (outcome.task or {}).get("lastStatus", "MISSING")
        self._say(f"timeout: {outcome.headline} (last status {state}); it may still be running")
        if args.stop_on_timeout:
            try:
                ecs.stop_task(cluster=request.cluster, task=task_arn, reason="run-task timeout")
                self._say("asked ECS to stop it (--stop-on-timeout)")
            except (ClientError, BotoCoreError) as exc:
                self._say(f"could not stop it ({exc}); stop it with:\n  {stop}")
        else:
            self._say(f"stop it with:\n  {stop}")
        self._pointers(task_arn, request, log_group)
        return EXIT_TIMEOUT


def add_parser(commands: Any) -> None:
    """Register ``run-task`` on the ``python -m ops`` sub-command parser."""
    parser = commands.add_parser(
        "run-task",
        help="run a one-off ECS task and wait for it",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    configure(parser)
    parser.set_defaults(handler=lambda args: RunTask().execute(args))


def main(argv: Sequence[str] | None = None, **deps: Any) -> int:
    """Parse run-task flags and run it; ``deps`` go to RunTask (client, consoles, clock)."""
    parser = argparse.ArgumentParser(prog="python -m ops run-task", description=__doc__)
    configure(parser)
    return RunTask(**deps).execute(parser.parse_args(argv))
