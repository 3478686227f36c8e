"""Unit prices for the cost estimate: from the AWS Price List API (cached), or a dated snapshot.

The Price List API (``boto3.client("pricing")``) is served from a few regions only (us-east-1,
eu-central-1, ap-south-1) but answers for every region; products are filtered by ``regionCode``.
On-Demand prices come from there. Spot prices are not in the Price List: EC2 Spot comes from
``DescribeSpotPriceHistory`` in the stack's region (the latest price per type, averaged over
AZs); Fargate Spot has no price API, so it is the On-Demand price times the snapshot's observed
Fargate Spot ratio (marked "assumed" in the report).

Live prices are cached per region under ``$XDG_CACHE_HOME/onnx-ecs-serving`` for a week.
Offline mode (CI, tests, no credentials) reads ``price_snapshot.json`` next to this file; its
``as_of`` date and ``source`` say where the numbers come from.
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from botocore.exceptions import ClientError, NoCredentialsError

SNAPSHOT = Path(__file__).with_name("price_snapshot.json")
CACHE_TTL_S = 7 * 24 * 3600
PRICING_ENDPOINT_REGIONS = ("us-east-1", "eu-central-1", "ap-south-1")
# Dashboards: USD 3.00 per dashboard-month in every region, beyond an account's first three
# (https://aws.amazon.com/cloudwatch/pricing/, "Dashboards"); priced as if the free three are used.
DASHBOARD_MONTH = 3.0


class PriceError(RuntimeError):
    """Prices could not be read; the message says what to do (permission, region, offline)."""


@dataclass(frozen=True)
class PriceSpec:
    """One unit price: a Price List product filter and the unit it is quoted in."""

    key: str
    service_code: str
    filters: Mapping[str, str]
    unit: str


# usagetype carries a billing-region prefix (USE1-, EUC1-..., none for some services in
# us-east-1): match it with CONTAINS on the part that does not vary, plus regionCode.
_ALB = {"productFamily": "Load Balancer-Application"}
SPECS: tuple[PriceSpec, ...] = (
    PriceSpec("fargate_vcpu_hour", "AmazonECS", {"usagetype": "Fargate-vCPU-Hours:perCPU"},
              "vCPU-hour"),
    PriceSpec("fargate_gb_hour", "AmazonECS", {"usagetype": "Fargate-GB-Hours"}, "GB-hour"),
    PriceSpec("fargate_arm_vcpu_hour", "AmazonECS",
              {"usagetype": "Fargate-ARM-vCPU-Hours:perCPU"}, "vCPU-hour"),
    PriceSpec("fargate_arm_gb_hour", "AmazonECS", {"usagetype": "Fargate-ARM-GB-Hours"},
              "GB-hour"),
    PriceSpec("nat_gateway_hour", "AmazonEC2", {"usagetype": "NatGateway-Hours"}, "hour"),
    PriceSpec("nat_gateway_gb", "AmazonEC2", {"usagetype": "NatGateway-Bytes"}, "GB"),
    PriceSpec("alb_hour", "AWSELB", {"usagetype": "LoadBalancerUsage", **_ALB}, "hour"),
    PriceSpec("alb_lcu_hour", "AWSELB", {"usagetype": "LCUUsage", **_ALB}, "LCU-hour"),
    PriceSpec("efs_standard_gb_month", "AmazonEFS", {"usagetype": "TimedStorage-ByteHrs"},
              "GB-month"),
    PriceSpec("logs_ingest_gb", "AmazonCloudWatch", {"usagetype": "DataProcessing-Bytes"}, "GB"),
    PriceSpec("logs_storage_gb_month", "AmazonCloudWatch",
              {"usagetype": "TimedStorage-ByteHrs"}, "GB-month"),
    PriceSpec("ebs_gp3_gb_month", "AmazonEC2",
              {"usagetype": "EBS:VolumeUsage.gp3", "volumeApiName": "gp3"}, "GB-month"),
    PriceSpec("s3_standard_gb_month", "AmazonS3",
              {"usagetype": "TimedStorage-ByteHrs", "volumeType": "Standard"}, "GB-month"),
    # custom metrics: the first tier (the first 10,000 metrics); standard-resolution alarms
    PriceSpec("cw_metric_month", "AmazonCloudWatch", {"usagetype": "CW:MetricMonitorUsage"},
              "metric-month"),
    PriceSpec("cw_alarm_month", "AmazonCloudWatch", {"usagetype": "CW:AlarmMonitorUsage"},
              "alarm-month"),
)  # fmt: skip


@dataclass
class PriceBook:
    """Unit prices (USD) for one region."""

    region: str
    as_of: str
    source: str
    unit: dict[str, float]
    ec2_on_demand_hour: dict[str, float]
    ec2_spot_hour: dict[str, float]
    fargate_spot_ratio: float
    assumed: list[str] = field(default_factory=list)

    def price(self, key: str) -> float:
        try:
            return self.unit[key]
        except KeyError:
            raise PriceError(f"no price {key!r} for {self.region} ({self.source})") from None

    def instance_hour(self, instance_type: str, *, spot: bool) -> float:
        table = self.ec2_spot_hour if spot else self.ec2_on_demand_hour
        if instance_type not in table:
            kind = "Spot" if spot else "On-Demand"
            raise PriceError(
                f"no {kind} price for {instance_type} in {self.region} ({self.source}); "
                f"known: {sorted(table)}"
            )
        return table[instance_type]

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


# -- the snapshot ------------------------------------------------------------------
def load_snapshot(region: str, path: Path = SNAPSHOT) -> PriceBook:
    """Offline prices for ``region`` from the committed, dated snapshot."""
    data = json.loads(path.read_text(encoding="utf-8"))
    regions = data["regions"]
    if region not in regions:
        raise PriceError(
            f"the price snapshot ({path.name}, as of {data['as_of']}) has no prices for "
            f"{region!r}; it has {sorted(regions)}. Run without --offline (needs "
            "pricing:GetProducts and ec2:DescribeSpotPriceHistory) to read live prices"
        )
    entry = regions[region]
    return PriceBook(
        region=region,
        as_of=data["as_of"],
        source=f"snapshot {path.name} ({data['source']})",
        unit=dict(entry["unit"]),
        ec2_on_demand_hour=dict(entry["ec2_on_demand_hour"]),
        ec2_spot_hour=dict(entry["ec2_spot_hour"]),
        fargate_spot_ratio=float(entry["fargate_spot_ratio"]),
        assumed=["Spot prices are a snapshot; Spot prices move hourly"],
    )


# -- live prices ------------------------------------------------------------------
def pricing_endpoint_region(region: str) -> str:
    """The Price List endpoint nearest to ``region`` (any of them answers for all regions)."""
    if region.startswith(("eu-", "me-", "af-", "il-")):
        return "eu-central-1"
    if region.startswith("ap-"):
        return "ap-south-1"
    return "us-east-1"


def check_region(region: str, known: Iterable[str]) -> None:
    """Refuse a region name AWS does not know before any call (typos like us-east1)."""
    known = sorted(known)
    if region not in known:
        raise PriceError(f"unknown AWS region {region!r}; known regions: {', '.join(known)}")


def _products(price_list: list[Any]) -> list[dict[str, Any]]:
    """PriceList items arrive as JSON strings (one product each)."""
    return [json.loads(raw) if isinstance(raw, str) else raw for raw in price_list]


def _price(product: Mapping[str, Any]) -> float | None:
    """The lowest-tier USD On-Demand price of one product (tiers: beginRange 0 first)."""
    for term in product.get("terms", {}).get("OnDemand", {}).values():
        dims = sorted(
            term.get("priceDimensions", {}).values(),
            key=lambda d: float(d.get("beginRange", "0") or 0),
        )
        for dim in dims:
            usd = dim.get("pricePerUnit", {}).get("USD")
            if usd is not None:
                return float(usd)
    return None


def _first_price(price_list: list[Any]) -> float | None:
    """The price of the first product that has one."""
    for product in _products(price_list):
        price = _price(product)
        if price is not None:
            return price
    return None


def is_usage_type(actual: str, wanted: str) -> bool:
    """``wanted`` itself (some us-east-1 usage types have no prefix) or behind exactly one
    billing-region prefix (``USE1-``, ``EUC1-``, ``EU-``): never a longer usage type that merely
    contains it, such as ``USE1-SpotUsage:Fargate-vCPU-Hours:perCPU`` for
    ``Fargate-vCPU-Hours:perCPU`` (a CONTAINS filter returns both)."""
    if actual == wanted:
        return True
    prefix, _, rest = actual.partition("-")
    return rest == wanted and prefix.isalnum() and prefix.isupper()


def _explain(err: ClientError, action: str) -> PriceError:
    code = err.response.get("Error", {}).get("Code", "")
    if code in ("AccessDeniedException", "UnauthorizedOperation", "AccessDenied"):
        return PriceError(
            f"{action} was denied ({code}): the caller needs pricing:GetProducts and "
            "ec2:DescribeSpotPriceHistory; or run with --offline to use the price snapshot"
        )
    return PriceError(f"{action} failed: {code}: {err.response.get('Error', {}).get('Message')}")


def fetch_unit_price(pricing: Any, spec: PriceSpec, region: str) -> float:
    """One On-Demand unit price from the Price List API."""
    filters = [{"Type": "TERM_MATCH", "Field": "regionCode", "Value": region}]
    for name, value in spec.filters.items():
        kind = "CONTAINS" if name == "usagetype" else "TERM_MATCH"
        filters.append({"Type": kind, "Field": name, "Value": value})
    wanted = spec.filters.get("usagetype")
    found: dict[str, float] = {}
    token: str | None = None
    while True:
        request: dict[str, Any] = {
            "ServiceCode": spec.service_code,
            "Filters": filters,
            "MaxResults": 10,
        }
        if token:
            request["NextToken"] = token
        try:
            answer = pricing.get_products(**request)
        except ClientError as err:
            raise _explain(err, f"pricing:GetProducts for {spec.key}") from err
        for product in _products(answer.get("PriceList", [])):
            usage = product.get("product", {}).get("attributes", {}).get("usagetype", "")
            price = _price(product)
            if price is not None and (wanted is None or is_usage_type(usage, wanted)):
                found[usage] = price
        token = answer.get("NextToken")
        if not token:
            break
    if not found:
        raise PriceError(
            f"the Price List has no {spec.key} ({spec.service_code}, {filters}) in {region}"
        )
    if len(set(found.values())) > 1:
        raise PriceError(
            f"the Price List has several prices for {spec.key} in {region}: {found}; "
            "refine its filter in ops/cost/prices.py"
        )
    return next(iter(found.values()))


def fetch_instance_price(pricing: Any, instance_type: str, region: str) -> float:
    """On-Demand Linux, shared tenancy, no pre-installed software."""
    filters = [
        {"Type": "TERM_MATCH", "Field": "regionCode", "Value": region},
        {"Type": "TERM_MATCH", "Field": "instanceType", "Value": instance_type},
        {"Type": "TERM_MATCH", "Field": "operatingSystem", "Value": "Linux"},
        {"Type": "TERM_MATCH", "Field": "tenancy", "Value": "Shared"},
        {"Type": "TERM_MATCH", "Field": "preInstalledSw", "Value": "NA"},
        {"Type": "TERM_MATCH", "Field": "capacitystatus", "Value": "Used"},
    ]
    try:
        answer = pricing.get_products(ServiceCode="AmazonEC2", Filters=filters, MaxResults=10)
    except ClientError as err:
        raise _explain(err, f"pricing:GetProducts for {instance_type}") from err
    price = _first_price(answer.get("PriceList", []))
    if price is None:
        raise PriceError(
            f"the Price List has no On-Demand Linux price for {instance_type} in {region}"
        )
    return price


def fetch_spot_price(ec2: Any, instance_type: str) -> float:
    """The latest Linux Spot price of ``instance_type``, averaged over the region's AZs."""
    try:
        answer = ec2.describe_spot_price_history(
            InstanceTypes=[instance_type],
            ProductDescriptions=["Linux/UNIX"],
            StartTime=time.time(),  # "now": the current price per AZ
        )
    except ClientError as err:
        raise _explain(err, f"ec2:DescribeSpotPriceHistory for {instance_type}") from err
    latest: dict[str, float] = {}
    for item in answer.get("SpotPriceHistory", []):
        latest.setdefault(item["AvailabilityZone"], float(item["SpotPrice"]))
    if not latest:
        raise PriceError(f"no Spot price for {instance_type} (not offered as Spot in this region?)")
    return sum(latest.values()) / len(latest)


def fetch_live(
    region: str,
    instance_types: Iterable[str],
    *,
    pricing: Any,
    ec2: Any,
    snapshot_ratio: float,
    today: Callable[[], str] = lambda: time.strftime("%Y-%m-%d"),
) -> PriceBook:
    """Read every price this estimate needs."""
    unit = {spec.key: fetch_unit_price(pricing, spec, region) for spec in SPECS}
    types = sorted(set(instance_types))
    on_demand = {t: fetch_instance_price(pricing, t, region) for t in types}
    spot = {t: fetch_spot_price(ec2, t) for t in types}
    return PriceBook(
        region=region,
        as_of=today(),
        source="AWS Price List API and EC2 Spot price history",
        unit=unit,
        ec2_on_demand_hour=on_demand,
        ec2_spot_hour=spot,
        fargate_spot_ratio=snapshot_ratio,
        assumed=[f"Fargate Spot at {snapshot_ratio:.0%} of On-Demand (no Fargate Spot price API)"],
    )


def write_snapshot(book: PriceBook, path: Path = SNAPSHOT) -> Path:
    """Store live prices for ``book.region`` in the snapshot (dated), keeping other regions."""
    data = json.loads(path.read_text(encoding="utf-8"))
    data["as_of"] = book.as_of
    data["source"] = book.source
    data["regions"][book.region] = {
        "unit": book.unit,
        "ec2_on_demand_hour": book.ec2_on_demand_hour,
        "ec2_spot_hour": book.ec2_spot_hour,
        "fargate_spot_ratio": book.fargate_spot_ratio,
    }
    path.write_text(json.dumps(data, indent=2) + "\n", encoding="utf-8")
    return path


# -- the cache ------------------------------------------------------------------
def cache_dir() -> Path:
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "onnx-ecs-serving"


def read_cache(
    region: str, instance_types: Iterable[str], now: float | None = None
) -> PriceBook | None:
    """Cached live prices for ``region`` if fresh and covering every instance type."""
    path = cache_dir() / f"prices-{region}.json"
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError):
        return None
    if (now or time.time()) - data.get("fetched_at", 0) > CACHE_TTL_S:
        return None
    book = PriceBook(**data["book"])
    if not set(instance_types) <= set(book.ec2_on_demand_hour):
        return None
    book.source += (
        f" (cached {time.strftime('%Y-%m-%d %H:%M', time.gmtime(data['fetched_at']))} UTC)"
    )
    return book


def write_cache(book: PriceBook, now: float | None = None) -> Path:
    path = cache_dir() / f"prices-{book.region}.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(
        json.dumps({"fetched_at": now or time.time(), "book": book.to_json()}, indent=2)
    )
    return path


def get_prices(
    region: str,
    instance_types: Iterable[str],
    *,
    offline: bool = False,
    refresh: bool = False,
    session: Any | None = None,
) -> PriceBook:
    """Prices for the estimate: the snapshot offline, else cache, else the live APIs."""
    types = list(instance_types)
    if offline:
        return load_snapshot(region)
    import boto3  # local: offline mode needs no AWS SDK session

    session = session or boto3.session.Session()
    check_region(region, session.get_available_regions("ec2"))
    if not refresh:
        cached = read_cache(region, types)
        if cached is not None:
            return cached
    try:
        pricing = session.client("pricing", region_name=pricing_endpoint_region(region))
        ec2 = session.client("ec2", region_name=region)
        snapshot = json.loads(SNAPSHOT.read_text(encoding="utf-8"))
        ratio = float(snapshot["default_fargate_spot_ratio"])
        book = fetch_live(region, types, pricing=pricing, ec2=ec2, snapshot_ratio=ratio)
    except NoCredentialsError as err:
        raise PriceError(
            "no AWS credentials to read live prices; configure them or run with --offline"
        ) from err
    write_cache(book)
    return book
