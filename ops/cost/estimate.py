"""The monthly estimate: the stack's config x unit prices x stated usage assumptions. Pure.

Two columns: **at minimum** (the floor the stack always pays for: minimum tasks or instances,
the load balancer, NAT gateways...) and **at maximum** (autoscaling at its maximum through every
running hour). Off-hours (components/off_hours.py) scale compute to zero outside the running
window; the load balancer, NAT gateways and storage keep billing. Savings are the difference to
the same stack without Spot, or without off-hours, priced the same way.

Usage that the config does not determine (NAT traffic, log volume, stored model and archive
bytes, load balancer LCUs, sync run time) comes from :class:`Usage`, printed with the report.
Not included: data transfer out of AWS, ECR storage, KMS keys ($1 each per month), Container
Insights metrics, the alarms target tracking creates, Step Functions and EventBridge requests,
S3 requests, CloudWatch API calls.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field, replace

from components.fargate_capacity import FargateSpotSplit
from components.stack_config import StackConfig
from ops.cost.prices import DASHBOARD_MONTH, PriceBook
from service import metric_names

HOURS_PER_MONTH = 730.0
DAYS_PER_MONTH = 30.4


@dataclass(frozen=True)
class Usage:
    """Assumptions for what the config does not say (per month unless noted)."""

    nat_gb: float = 50.0  # traffic through NAT (ECR pulls, S3, CloudWatch without endpoints)
    log_ingest_gb: float = 2.0  # CloudWatch gets errors only; everything goes to S3
    efs_gb: float = 10.0  # model versions kept in the store
    archive_gb: float = 20.0  # log archive stored in S3
    alb_lcu: float = 1.0  # average load balancer capacity units
    sync_minutes: float = 10.0  # one model sync run
    models: int = 1  # models in the store (each adds custom metrics)
    versions_per_model: int = 1  # versions each model serves
    alarms: int = 16  # the stack's CloudWatch alarms (a test counts them in dev and prod)


@dataclass(frozen=True)
class LineItem:
    name: str
    monthly: float
    detail: str


@dataclass(frozen=True)
class Scenario:
    """Which tasks run and which savings apply."""

    peak: bool = False
    spot: bool = True
    off_hours: bool = True


@dataclass
class Estimate:
    stack: str
    region: str
    prices: PriceBook
    usage: Usage
    at_minimum: list[LineItem]
    at_maximum: list[LineItem]
    savings: dict[str, tuple[float, float]] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)

    @staticmethod
    def total(items: list[LineItem]) -> float:
        return sum(i.monthly for i in items)


def runs_per_month(expression: str) -> float:
    """Runs per month of an EventBridge Scheduler expression (cron or rate); at() is once."""
    rate = re.fullmatch(r"rate\((\d+) (minute|minutes|hour|hours|day|days)\)", expression)
    if rate:
        value, unit = int(rate[1]), rate[2].rstrip("s")
        hours = {"minute": value / 60, "hour": value, "day": value * 24}[unit]
        return HOURS_PER_MONTH / hours
    cron = re.fullmatch(r"cron\((.+)\)", expression)
    if not cron:
        return 1.0
    minutes, hours, day_of_month, _month, day_of_week, *_ = cron[1].split()

    def count(field_value: str, full: int) -> float:
        if field_value in ("*", "?"):
            return full
        if "/" in field_value:
            start, step = field_value.split("/")
            return (full - (0 if start in ("*", "0") else int(start))) / int(step)
        total = 0
        for part in field_value.split(","):
            if "-" in part:
                low, high = part.split("-")
                if low.isdigit() and high.isdigit():
                    total += int(high) - int(low) + 1
                else:  # MON-FRI
                    names = ["SUN", "MON", "TUE", "WED", "THU", "FRI", "SAT"]
                    total += names.index(high.upper()[:3]) - names.index(low.upper()[:3]) + 1
            else:
                total += 1
        return total

    per_day = count(minutes, 60) * count(hours, 24)
    if day_of_week not in ("*", "?"):
        days = count(day_of_week, 7) * DAYS_PER_MONTH / 7
    else:
        days = count(day_of_month, 31) * DAYS_PER_MONTH / 31
    return per_day * days


def _running_share(cfg: StackConfig, scenario: Scenario) -> float:
    off_hours = cfg.off_hours()
    if off_hours is None or not scenario.off_hours:
        return 1.0
    return off_hours.running_share


def _fargate_service(cfg: StackConfig, prices: PriceBook, scenario: Scenario) -> list[LineItem]:
    tasks = cfg.max_service_tasks if scenario.peak else cfg.min_service_tasks
    arm = cfg.cpu_architecture == "ARM64"
    vcpu, gb = cfg.cpu / 1024, cfg.memory / 1024
    per_task = vcpu * prices.price("fargate_arm_vcpu_hour" if arm else "fargate_vcpu_hour") + (
        gb * prices.price("fargate_arm_gb_hour" if arm else "fargate_gb_hour")
    )
    split = cfg.fargate_spot() if scenario.spot else FargateSpotSplit()
    on_demand, spot = split.expected_tasks(float(tasks))
    hours = HOURS_PER_MONTH * _running_share(cfg, scenario)
    items = [
        LineItem(
            "Service tasks (Fargate On-Demand)",
            on_demand * per_task * hours,
            f"{on_demand:g} x {vcpu:g} vCPU/{gb:g} GB x {hours:.0f} h",
        )
    ]
    if spot:
        items.append(
            LineItem(
                "Service tasks (Fargate Spot)",
                spot * per_task * prices.fargate_spot_ratio * hours,
                f"{spot:g} x {vcpu:g} vCPU/{gb:g} GB x {hours:.0f} h at "
                f"{prices.fargate_spot_ratio:.0%} of On-Demand",
            )
        )
    return items


def _gpu_service(cfg: StackConfig, prices: PriceBook, scenario: Scenario) -> list[LineItem]:
    args = cfg.gpu_cluster_args("vpc", ["subnet"])
    tasks = cfg.max_service_tasks if scenario.peak else cfg.min_service_tasks
    instances = tasks if scenario.peak else max(tasks, cfg.gpu_min_size)
    market = args.market
    if scenario.spot and market.spot:
        base = min(instances, market.on_demand_base_capacity)
        above = instances - base
        on_demand = base + above * market.on_demand_percentage_above_base / 100
    else:
        on_demand = float(instances)
    spot = instances - on_demand
    hours = HOURS_PER_MONTH * _running_share(cfg, scenario)
    kind = cfg.gpu_instance_type
    items = [
        LineItem(
            f"GPU instances On-Demand ({kind})",
            on_demand * prices.instance_hour(kind, spot=False) * hours,
            f"{on_demand:g} x ${prices.instance_hour(kind, spot=False):.4g}/h x {hours:.0f} h",
        )
    ]
    volumes = instances * args.root_volume_size_gib * hours / HOURS_PER_MONTH
    volume_item = LineItem(
        "GPU root volumes (gp3)",
        volumes * prices.price("ebs_gp3_gb_month"),
        f"{instances} x {args.root_volume_size_gib} GiB x {hours:.0f} h",
    )
    if spot:
        items.append(
            LineItem(
                f"GPU instances Spot ({kind} price)",
                spot * prices.instance_hour(kind, spot=True) * hours,
                f"{spot:g} x ${prices.instance_hour(kind, spot=True):.4g}/h x {hours:.0f} h",
            )
        )
    items.append(volume_item)
    return items


def _fixed(cfg: StackConfig, prices: PriceBook, usage: Usage) -> list[LineItem]:
    items: list[LineItem] = []
    nat = 0 if cfg.vpc_id else (1 if cfg.nat_gateways == "Single" else cfg.availability_zones)
    if nat:
        items.append(
            LineItem(
                "NAT gateways",
                nat * HOURS_PER_MONTH * prices.price("nat_gateway_hour")
                + usage.nat_gb * prices.price("nat_gateway_gb"),
                f"{nat} x {HOURS_PER_MONTH:.0f} h + {usage.nat_gb:g} GB processed",
            )
        )
    items.append(
        LineItem(
            "Application Load Balancer",
            HOURS_PER_MONTH
            * (prices.price("alb_hour") + usage.alb_lcu * prices.price("alb_lcu_hour")),
            f"{HOURS_PER_MONTH:.0f} h + {usage.alb_lcu:g} LCU average (stays up off-hours)",
        )
    )
    items.append(
        LineItem(
            "EFS model store",
            usage.efs_gb * prices.price("efs_standard_gb_month"),
            f"{usage.efs_gb:g} GB Standard",
        )
    )
    stored = usage.log_ingest_gb * min(cfg.error_log_retention_days, 3650) / 30
    items.append(
        LineItem(
            "CloudWatch Logs",
            usage.log_ingest_gb * prices.price("logs_ingest_gb")
            + stored * prices.price("logs_storage_gb_month"),
            f"{usage.log_ingest_gb:g} GB ingested, ~{stored:.0f} GB kept "
            f"({cfg.error_log_retention_days} days)",
        )
    )
    items.append(
        LineItem(
            "S3 log archive",
            usage.archive_gb * prices.price("s3_standard_gb_month"),
            f"{usage.archive_gb:g} GB (Standard; colder after {cfg.archive_transition_days} d)",
        )
    )
    return items


def custom_metric_count(models: int, versions_per_model: int) -> int:
    """Metric name x dimension combinations the service publishes (service/metric_names.py):
    each dimension set once for the service and once per model or version; one provider."""
    per = {
        metric_names.PER_MODEL: 1 + models,
        metric_names.PER_VERSION: 1 + models + models * versions_per_model,
        metric_names.PER_PROVIDER: 1,
        metric_names.PER_SERVICE: 1,
    }
    healthy = [m for m in metric_names.ALL if m is not metric_names.MODEL_LOAD_FAILURES]
    return sum(per[m.dimensions] for m in healthy)


GPU_METRICS_PER_INSTANCE = 4  # components/gpu/cloudwatch_agent.py: util, memory util/used/total
GPU_METRICS_PER_GROUP = 4  # the same four rolled up per Auto Scaling group


def _monitoring(
    cfg: StackConfig, prices: PriceBook, usage: Usage, scenario: Scenario
) -> list[LineItem]:
    """Custom metrics (the service's EMF metrics, GPU metrics), alarms and the dashboard."""
    metrics = custom_metric_count(usage.models, usage.versions_per_model)
    detail = f"{metrics} service metrics"
    if cfg.capacity == "gpu" and cfg.gpu_metrics:
        instances = cfg.gpu_max_size if scenario.peak else cfg.gpu_min_size
        gpu = GPU_METRICS_PER_INSTANCE * instances + GPU_METRICS_PER_GROUP
        metrics += gpu
        detail += f" + {gpu} GPU metrics ({instances} instances)"
    return [
        LineItem(
            "CloudWatch metrics, alarms, dashboard",
            metrics * prices.price("cw_metric_month")
            + usage.alarms * prices.price("cw_alarm_month")
            + DASHBOARD_MONTH,
            f"{detail}, {usage.alarms} alarms, 1 dashboard",
        )
    ]


def _sync(cfg: StackConfig, prices: PriceBook, usage: Usage, scenario: Scenario) -> list[LineItem]:
    sync = cfg.model_sync_settings()
    if sync is None:
        return []
    runs = runs_per_month(sync.schedule_expression)
    arm = sync.architecture == "ARM64"
    vcpu, gb = sync.cpu / 1024, sync.memory / 1024
    per_hour = vcpu * prices.price("fargate_arm_vcpu_hour" if arm else "fargate_vcpu_hour") + (
        gb * prices.price("fargate_arm_gb_hour" if arm else "fargate_gb_hour")
    )
    spot = scenario.spot and sync.capacity == "FARGATE_SPOT"
    if spot:
        per_hour *= prices.fargate_spot_ratio
    hours = runs * usage.sync_minutes / 60
    return [
        LineItem(
            f"Model sync ({'Fargate Spot' if spot else 'Fargate'})",
            per_hour * hours,
            f"{runs:.0f} runs x {usage.sync_minutes:g} min",
        )
    ]


def line_items(
    cfg: StackConfig, prices: PriceBook, usage: Usage, scenario: Scenario
) -> list[LineItem]:
    """Every priced item of the stack for one scenario."""
    compute = (
        _gpu_service(cfg, prices, scenario)
        if cfg.capacity == "gpu"
        else _fargate_service(cfg, prices, scenario)
    )
    return [
        *compute,
        *_sync(cfg, prices, usage, scenario),
        *_fixed(cfg, prices, usage),
        *_monitoring(cfg, prices, usage, scenario),
    ]


def estimate(
    cfg: StackConfig, stack: str, prices: PriceBook, usage: Usage | None = None
) -> Estimate:
    """The estimate with both columns and what Spot and off-hours save."""
    usage = usage or Usage()
    low, high = Scenario(peak=False), Scenario(peak=True)
    result = Estimate(
        stack=stack,
        region=prices.region,
        prices=prices,
        usage=usage,
        at_minimum=line_items(cfg, prices, usage, low),
        at_maximum=line_items(cfg, prices, usage, high),
    )
    total = Estimate.total
    for label, change in (("Spot", {"spot": False}), ("off-hours", {"off_hours": False})):
        saved_low = total(line_items(cfg, prices, usage, replace(low, **change))) - total(
            result.at_minimum
        )
        saved_high = total(line_items(cfg, prices, usage, replace(high, **change))) - total(
            result.at_maximum
        )
        result.savings[label] = (saved_low, saved_high)
    off_hours = cfg.off_hours()
    if off_hours is not None:
        result.notes.append(
            f"off-hours: runs {off_hours.start}-{off_hours.stop} {off_hours.days} "
            f"({off_hours.timezone}), {off_hours.running_share:.0%} of the week"
        )
    result.notes.extend(prices.assumed)
    return result
