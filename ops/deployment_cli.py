"""``python -m ops deployment``: has the service's latest deployment completed, or rolled back?

    python -m ops deployment --stack-outputs outputs.json [--wait --timeout 900]

Prints the verdict with the deployment's reason, the stopped tasks' reasons and the service's
recent events. Exit codes: 0 completed, 1 AWS/API error, 2 usage, 6 still in progress (after
``--timeout`` with ``--wait``), 7 failed / rolled back.
"""

from __future__ import annotations

import argparse
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import boto3
from botocore.exceptions import BotoCoreError, ClientError

from ops.deployment import wait_for_deployment
from ops.ecs_task import EXIT_ERROR, EXIT_USAGE
from ops.stack_outputs import StackOutputsError, load_outputs, lookup


def configure(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--stack-outputs", type=Path, help="pulumi stack output --json > FILE")
    parser.add_argument("--cluster", help="cluster name or ARN (output clusterName)")
    parser.add_argument("--service", help="service name (output serviceName)")
    parser.add_argument(
        "--task-definition",
        help="revision that should be running (output taskDefinitionArn); 'latest' judges the "
        "newest deployment whatever its revision",
    )
    parser.add_argument("--wait", action="store_true", help="poll until it completes or fails")
    parser.add_argument("--timeout", type=float, default=900.0, help="seconds, with --wait")
    parser.add_argument("--poll-interval", type=float, default=15.0, help=argparse.SUPPRESS)
    parser.add_argument("--region", help="AWS region (default: from the ARNs, else the profile)")


def execute(args: argparse.Namespace, ecs: Any | None = None, **wait: Any) -> int:
    try:
        outputs = load_outputs(args.stack_outputs) if args.stack_outputs else {}
    except StackOutputsError as exc:
        print(f"error: {exc}")
        return EXIT_USAGE
    cluster = args.cluster or lookup(outputs, "cluster")
    service = args.service or outputs.get("serviceName")
    task_definition = args.task_definition or outputs.get("taskDefinitionArn")
    if not cluster or not service:
        print(
            "error: pass --cluster and --service, or --stack-outputs with clusterName and "
            "serviceName"
        )
        return EXIT_USAGE
    if task_definition == "latest":
        task_definition = None
    region = args.region
    if region is None and str(cluster).startswith("arn:"):
        region = str(cluster).split(":")[3]
    try:
        client = ecs or boto3.client("ecs", region_name=region)
        verdict = wait_for_deployment(
            client,
            str(cluster),
            str(service),
            task_definition,
            timeout=args.timeout if args.wait else 0.0,
            poll_interval=args.poll_interval,
            **wait,
        )
    except (ClientError, BotoCoreError, LookupError) as exc:
        print(f"error: {exc}")
        return EXIT_ERROR
    print(("" if verdict.ok else "error: ") + verdict.headline)
    for line in verdict.details:
        print(f"  {line}")
    return verdict.exit_code


def add_parser(commands: Any) -> None:
    parser = commands.add_parser(
        "deployment",
        help="did the service's deployment complete or roll back (and why)",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    configure(parser)
    parser.set_defaults(handler=execute)


def main(argv: Sequence[str] | None = None, **deps: Any) -> int:
    parser = argparse.ArgumentParser(prog="python -m ops deployment", description=__doc__)
    configure(parser)
    return execute(parser.parse_args(argv), **deps)
