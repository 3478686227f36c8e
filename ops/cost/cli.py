"""``python -m ops cost --stack dev``: the monthly estimate, and what Spot and off-hours save."""

from __future__ import annotations

import argparse
import json
import sys
from dataclasses import asdict
from typing import Any, TextIO

from components.quota_guard import QuotaReadError
from ops.cost.estimate import Estimate, LineItem, Usage, estimate
from ops.cost.prices import PriceError, get_prices, write_snapshot
from ops.cost.stack_file import StackFileError, load_stack


def add_parser(commands: Any) -> None:
    parser = commands.add_parser(
        "cost",
        help="estimate a stack's monthly cost from Pulumi.<stack>.yaml",
        description=__doc__,
    )
    parser.add_argument("--stack", required=True, help="stack name: reads Pulumi.<stack>.yaml")
    parser.add_argument(
        "--offline",
        action="store_true",
        help="prices from the dated snapshot in ops/cost/price_snapshot.json (no AWS calls)",
    )
    parser.add_argument("--refresh", action="store_true", help="ignore the price cache")
    parser.add_argument(
        "--write-snapshot",
        action="store_true",
        help="store the live prices read for this stack's region in the snapshot file",
    )
    parser.add_argument("--format", choices=["text", "markdown", "json"], default="text")
    parser.add_argument(
        "--check-quotas",
        action="store_true",
        help="also read the vCPU quotas the preview checks (needs servicequotas:GetServiceQuota)",
    )
    defaults = Usage()
    for name, help_text in (
        ("nat_gb", "GB through NAT per month"),
        ("log_ingest_gb", "GB of logs into CloudWatch per month"),
        ("efs_gb", "GB of models in EFS"),
        ("archive_gb", "GB of archived logs in S3"),
        ("alb_lcu", "average load balancer capacity units"),
        ("sync_minutes", "minutes per model sync run"),
    ):
        parser.add_argument(
            f"--{name.replace('_', '-')}",
            type=float,
            default=getattr(defaults, name),
            help=f"{help_text} (default {getattr(defaults, name):g})",
        )
    parser.set_defaults(handler=run)


NOT_INCLUDED = (
    "not included: data transfer out, ECR storage, KMS keys, Container Insights, "
    "target-tracking alarms, Step Functions/EventBridge/S3 requests"
)


def money(value: float) -> str:
    return f"${value:,.2f}"


def render_markdown(result: Estimate) -> str:
    """The report as a Markdown table (the README's tables are this output)."""
    names = list(dict.fromkeys(i.name for i in [*result.at_maximum, *result.at_minimum]))
    low = {i.name: i for i in result.at_minimum}
    high = {i.name: i for i in result.at_maximum}

    def cell(items: dict[str, LineItem], name: str) -> str:
        return money(items[name].monthly) if name in items else "-"

    lines = [
        f"**{result.stack}** ({result.region}), USD per month; prices: {result.prices.source}, "
        f"as of {result.prices.as_of}",
        "",
        "| Item | At minimum | At maximum | Basis (at minimum) |",
        "| --- | ---: | ---: | --- |",
    ]
    for name in names:
        basis = (low.get(name) or high[name]).detail
        lines.append(f"| {name} | {cell(low, name)} | {cell(high, name)} | {basis} |")
    lines.append(
        f"| **Total** | **{money(Estimate.total(result.at_minimum))}** | "
        f"**{money(Estimate.total(result.at_maximum))}** | |"
    )
    for label, (saved_low, saved_high) in result.savings.items():
        if saved_low or saved_high:
            lines.append(
                f"| {label} saves | {money(saved_low)} | {money(saved_high)} | vs. the same "
                f"stack without {label} |"
            )
    lines.append("")
    for note in [*result.notes, NOT_INCLUDED]:
        lines.append(f"- {note}")
    usage = result.usage
    lines.append(
        f"- usage assumed: {usage.nat_gb:g} GB NAT, {usage.log_ingest_gb:g} GB logs, "
        f"{usage.efs_gb:g} GB models, {usage.archive_gb:g} GB archive, {usage.alb_lcu:g} LCU, "
        f"{usage.sync_minutes:g} min per sync"
    )
    return "\n".join(lines)


def run(args: argparse.Namespace, out: TextIO | None = None, session: Any | None = None) -> int:
    out = out or sys.stdout
    try:
        cfg, region = load_stack(args.stack)
        types = []
        if cfg.capacity == "gpu":
            types = cfg.gpu_cluster_args("vpc", ["subnet"]).market.all_instance_types(
                cfg.gpu_instance_type
            )
        prices = get_prices(
            region, types, offline=args.offline, refresh=args.refresh, session=session
        )
        usage = Usage(
            nat_gb=args.nat_gb,
            log_ingest_gb=args.log_ingest_gb,
            efs_gb=args.efs_gb,
            archive_gb=args.archive_gb,
            alb_lcu=args.alb_lcu,
            sync_minutes=args.sync_minutes,
        )
        result = estimate(cfg, args.stack, prices, usage)
        if args.write_snapshot:
            if args.offline:
                raise PriceError("--write-snapshot needs live prices: drop --offline")
            print(f"wrote {write_snapshot(prices)}", file=sys.stderr)
        quota_lines: list[str] = []
        if args.check_quotas:
            import boto3

            from ops.cost.quotas import check_stack_quotas

            client = (session or boto3.session.Session()).client(
                "service-quotas", region_name=region
            )
            for verdict in check_stack_quotas(cfg, f"onnx-{args.stack}", client):
                quota_lines.append(f"[{verdict.outcome.value}] {verdict.message}")
    except (StackFileError, PriceError, QuotaReadError, ValueError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    if args.format == "json":
        payload = asdict(result)
        payload["total_at_minimum"] = Estimate.total(result.at_minimum)
        payload["total_at_maximum"] = Estimate.total(result.at_maximum)
        payload["quotas"] = quota_lines
        print(json.dumps(payload, indent=2), file=out)
        return 0
    print(render_markdown(result), file=out)
    for line in quota_lines:
        print(line, file=out)
    return 0
