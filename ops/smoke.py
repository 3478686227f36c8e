"""``python -m ops smoke``: prove that a deployed stack answers inference requests.

    pulumi stack output --json > outputs.json
    python -m ops smoke --stack-outputs outputs.json

The load balancer is internal, so the probe (ops/smoke_probe.py) runs inside the VPC: as a
one-off Fargate task of the stack's smoke task definition (service image, its own security
group, the model store mounted read-only to list the models), started and followed with
``ops.ecs_task.run_to_completion``. Its report (readiness, then per model the verdict and
latency) is read back from the task's log stream and printed; its exit code is this command's.
``--direct --url http://127.0.0.1:8000 --model recommender`` runs the probe here instead (through
SSM port forwarding, or against a local service).

Exit codes: 0 every model answered; 1 AWS/API error; 2 usage; 3 the service never became ready;
4 a model failed to answer (metadata or inference); 5 a model not ready, or no model at all;
6 the service could not be reached; 7 the service is scaled to zero (its off-hours schedule, or
a desired count of 0): nothing to probe, and the schedule is printed (``--allow-scaled-to-zero``
makes that exit 0); 10 the probe task itself did not run to the end (not placed, failed to start,
timed out: the reason is printed).
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any, TextIO

from ops import smoke_probe
from ops.ecs_task import EXIT_OK, EXIT_TASK_FAILED, TaskRequest, run_to_completion
from ops.stack_outputs import StackOutputsError, as_list, load_outputs, lookup

EXIT_ERROR = 1
EXIT_USAGE = 2
EXIT_SCALED_TO_ZERO = 7
EXIT_PROBE_DID_NOT_RUN = 10
PROBE_CODES = {
    smoke_probe.EXIT_NOT_READY,
    smoke_probe.EXIT_INFER_FAILED,
    smoke_probe.EXIT_MODEL_NOT_READY,
    smoke_probe.EXIT_UNREACHABLE,
    smoke_probe.EXIT_USAGE,
}
OUTPUT_KEYS = ("smokeTaskDefinitionArn", "smokeSecurityGroupId", "smokeLogGroupName")


def configure(parser: argparse.ArgumentParser) -> None:
    smoke_probe.configure(parser)
    parser.add_argument("--stack-outputs", type=Path, help="pulumi stack output --json > FILE")
    parser.add_argument(
        "--direct", action="store_true", help="run the probe here against --url (no ECS task)"
    )
    parser.add_argument(
        "--timeout", type=float, default=600.0, help="seconds to wait for the probe task"
    )
    parser.add_argument("--poll-interval", type=float, default=6.0, help=argparse.SUPPRESS)
    parser.add_argument(
        "--allow-scaled-to-zero",
        action="store_true",
        help="exit 0 (not 7) when the service is scaled to zero, e.g. in its off-hours",
    )
    parser.add_argument("--region", help="AWS region (default: from the ARNs, else the profile)")


def probe_command(args: argparse.Namespace) -> list[str]:
    """The probe's arguments inside the task (the URL defaults to the task's SMOKE_URL)."""
    command = [
        "--ready-timeout",
        f"{args.ready_timeout:g}",
        "--request-timeout",
        f"{args.request_timeout:g}",
    ]
    if args.url:
        command += ["--url", args.url]
    for model in args.model:
        command += ["--model", model]
    return command


class Smoke:
    """The launcher, with AWS clients injectable for tests."""

    def __init__(
        self,
        ecs: Any | None = None,
        logs: Any | None = None,
        out: TextIO = sys.stdout,
        **wait: Any,
    ) -> None:
        self.ecs = ecs
        self.logs = logs
        self.out = out
        self.wait = wait

    def say(self, text: str) -> None:
        print(text, file=self.out, flush=True)

    def execute(self, args: argparse.Namespace) -> int:
        if args.direct:
            return smoke_probe.probe_main(args, out=self.out)
        try:
            outputs = load_outputs(args.stack_outputs) if args.stack_outputs else {}
        except StackOutputsError as exc:
            self.say(f"error: {exc}")
            return EXIT_USAGE
        missing = [k for k in ("clusterName", *OUTPUT_KEYS) if not outputs.get(k)]
        subnets = as_list(lookup(outputs, "subnets"))
        if missing or not subnets:
            self.say(
                "error: --stack-outputs must hold the stack's outputs (missing: "
                f"{', '.join(missing + ([] if subnets else ['privateSubnetIds']))}); "
                "or use --direct --url URL"
            )
            return EXIT_USAGE
        cluster = str(lookup(outputs, "cluster"))
        request = TaskRequest(
            cluster=cluster,
            task_definition=outputs["smokeTaskDefinitionArn"],
            subnets=subnets,
            security_groups=[outputs["smokeSecurityGroupId"]],
            container=smoke_probe.CONTAINER_NAME,
            command=probe_command(args),
            started_by="ops-smoke",
        )
        region = args.region or _region_of(outputs)
        from botocore.exceptions import BotoCoreError, ClientError

        try:
            ecs = self.ecs or _client("ecs", region)
            scaled_to_zero = self._scaled_to_zero(ecs, cluster, outputs)
            if scaled_to_zero:
                self.say(scaled_to_zero)
                return EXIT_OK if args.allow_scaled_to_zero else EXIT_SCALED_TO_ZERO
            self.say(f"probing {outputs.get('url', 'the service')} from inside the VPC…")
            outcome = run_to_completion(
                ecs,
                request,
                timeout=args.timeout,
                poll_interval=args.poll_interval,
                **self.wait,
            )
            if outcome.task_arn:
                self._print_report(outputs["smokeLogGroupName"], outcome.task_arn, region)
        except (ClientError, BotoCoreError) as exc:
            self.say(f"error: {exc}")
            return EXIT_ERROR
        if outcome.exit_code == EXIT_OK:
            return EXIT_OK
        code = _probe_exit(outcome.task)
        if outcome.exit_code == EXIT_TASK_FAILED and code in PROBE_CODES:
            return code
        self.say(f"error: the probe task did not run to the end: {outcome.headline}")
        for line in outcome.details:
            self.say(f"  {line}")
        return EXIT_PROBE_DID_NOT_RUN

    @staticmethod
    def _scaled_to_zero(ecs: Any, cluster: str, outputs: dict[str, Any]) -> str | None:
        """Why there is nothing to probe, when the service runs no task and wants none.

        Off-hours (components/off_hours.py) set the service's desired count to 0: the load
        balancer then answers 503 and a probe would fail for a reason that is no fault.
        """
        service = outputs.get("serviceName")
        if not service:
            return None
        found = ecs.describe_services(cluster=cluster, services=[service]).get("services", [])
        if not found or found[0].get("desiredCount", 1) != 0:
            return None
        schedule = outputs.get("offHours")
        why = (
            f"its off-hours schedule runs it {schedule}"
            if schedule
            else "its desired count is 0 (minCount 0, or scaled in)"
        )
        return (
            f"nothing to probe: the service {service} is scaled to zero ({why}); the load "
            "balancer answers 503 meanwhile. Probe again once it runs tasks."
        )

    def _print_report(self, log_group: str, task_arn: str, region: str | None) -> None:
        """The probe's lines, from its awslogs stream ``smoke/smoke/<task id>``."""
        task_id = task_arn.rsplit("/", 1)[-1]
        stream = f"{smoke_probe.LOG_STREAM_PREFIX}/{smoke_probe.CONTAINER_NAME}/{task_id}"
        logs = self.logs or _client("logs", region)
        try:
            events = logs.get_log_events(
                logGroupName=log_group, logStreamName=stream, startFromHead=True
            ).get("events", [])
        except Exception as exc:  # the verdict still stands on the exit code
            self.say(f"(could not read the probe's log stream {log_group}/{stream}: {exc})")
            return
        for event in events:
            self.say(event.get("message", "").rstrip())


def _probe_exit(task: dict[str, Any] | None) -> int | None:
    for container in (task or {}).get("containers", []):
        if container.get("exitCode") is not None:
            return int(container["exitCode"])
    return None


def _region_of(outputs: dict[str, Any]) -> str | None:
    for key in ("clusterArn", "smokeTaskDefinitionArn"):
        value = str(outputs.get(key) or "")
        if value.startswith("arn:") and len(value.split(":")) > 3:
            return value.split(":")[3]
    return None


def _client(service: str, region: str | None) -> Any:
    import boto3
    from botocore.config import Config

    retries = Config(retries={"mode": "standard", "max_attempts": 10})
    return boto3.client(service, region_name=region, config=retries)


def add_parser(commands: Any) -> None:
    parser = commands.add_parser(
        "smoke",
        help="probe a deployed stack from inside its VPC: readiness + one inference per model",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    configure(parser)
    parser.set_defaults(handler=lambda args: Smoke().execute(args))


def main(argv: Sequence[str] | None = None, **deps: Any) -> int:
    parser = argparse.ArgumentParser(prog="python -m ops smoke", description=__doc__)
    configure(parser)
    return Smoke(**deps).execute(parser.parse_args(argv))
