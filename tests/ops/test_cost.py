"""``python -m ops cost``: prices (botocore Stubber), cache, snapshot, arithmetic, quotas, report.

AWS behaviour encoded here:
- AWS Price List Query API (https://docs.aws.amazon.com/awsaccountbilling/latest/aboutv2/using-price-list-query-api.html):
  the ``pricing`` endpoint exists only in us-east-1, eu-central-1 and ap-south-1 and answers
  for every region; GetProducts takes ``ServiceCode`` and ``Filters`` (TERM_MATCH, CONTAINS...)
  on product attributes such as ``regionCode`` and ``usagetype``; each PriceList item is a JSON
  document with ``terms.OnDemand.*.priceDimensions.*.pricePerUnit.USD``.
- EC2 API Reference, DescribeSpotPriceHistory: Spot prices are per AZ; with a StartTime of
  "now" it returns the current price of each AZ (Spot prices are not in the Price List).
- Service Quotas API Reference, GetServiceQuota: ``NoSuchResourceException`` when no applied
  value exists, then GetAWSDefaultServiceQuota gives the default; AccessDeniedException without
  ``servicequotas:GetServiceQuota``.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import boto3
import pytest
from botocore.stub import ANY, Stubber

from components.quota_guard import Outcome, QuotaReadError
from components.stack_config import StackConfig
from ops.__main__ import main
from ops.cost import prices as prices_module
from ops.cost.cli import render_markdown
from ops.cost.estimate import HOURS_PER_MONTH, Usage, estimate, runs_per_month
from ops.cost.prices import (
    SPECS,
    PriceError,
    fetch_live,
    fetch_spot_price,
    get_prices,
    load_snapshot,
    pricing_endpoint_region,
    read_cache,
    write_cache,
)
from ops.cost.quotas import check_stack_quotas, read_quota
from ops.cost.stack_file import load_stack

ROOT = Path(__file__).resolve().parents[2]


def product(
    usd: str, tiers: list[tuple[str, str]] | None = None, usagetype: str | None = None
) -> str:
    """One Price List item as the API sends it (a JSON string)."""
    dims = {
        f"D{i}": {"beginRange": begin, "pricePerUnit": {"USD": price}, "unit": "Hrs"}
        for i, (begin, price) in enumerate(tiers or [("0", usd)])
    }
    item: dict[str, Any] = {"terms": {"OnDemand": {"T": {"priceDimensions": dims}}}}
    if usagetype is not None:
        item["product"] = {"attributes": {"usagetype": usagetype}}
    return json.dumps(item)


def client(service: str, region: str = "us-east-1") -> Any:
    return boto3.client(
        service,
        region_name=region,
        aws_access_key_id="testing",
        aws_secret_access_key="testing",
    )


# -- live prices ---------------------------------------------------------------------------------
def test_live_prices_filter_on_region_and_usage_type() -> None:
    pricing, ec2 = client("pricing"), client("ec2", "eu-west-1")
    with Stubber(pricing) as p_stub, Stubber(ec2) as e_stub:
        for n, spec in enumerate(SPECS):
            filters = [{"Type": "TERM_MATCH", "Field": "regionCode", "Value": "eu-west-1"}]
            filters += [
                {
                    "Type": "CONTAINS" if k == "usagetype" else "TERM_MATCH",
                    "Field": k,
                    "Value": v,
                }
                for k, v in spec.filters.items()
            ]
            p_stub.add_response(
                "get_products",
                {
                    "PriceList": [
                        product(f"0.{n + 1:02d}", usagetype=f"EU-{spec.filters['usagetype']}")
                    ],
                    "FormatVersion": "aws_v1",
                },
                {"ServiceCode": spec.service_code, "Filters": filters, "MaxResults": 10},
            )
        p_stub.add_response(
            "get_products",
            {"PriceList": [product("0.8048")]},
            {"ServiceCode": "AmazonEC2", "Filters": ANY, "MaxResults": 10},
        )
        e_stub.add_response(
            "describe_spot_price_history",
            {
                "SpotPriceHistory": [
                    {"AvailabilityZone": "eu-west-1a", "SpotPrice": "0.30"},
                    {"AvailabilityZone": "eu-west-1b", "SpotPrice": "0.40"},
                    {"AvailabilityZone": "eu-west-1a", "SpotPrice": "0.99"},  # older: ignored
                ]
            },
            {
                "InstanceTypes": ["g6.xlarge"],
                "ProductDescriptions": ["Linux/UNIX"],
                "StartTime": ANY,
            },
        )
        book = fetch_live(
            "eu-west-1",
            ["g6.xlarge"],
            pricing=pricing,
            ec2=ec2,
            snapshot_ratio=0.3,
            today=lambda: "D",
        )
        p_stub.assert_no_pending_responses()
    assert book.price("fargate_vcpu_hour") == 0.01
    assert book.price(SPECS[-1].key) == pytest.approx(len(SPECS) / 100)
    assert book.instance_hour("g6.xlarge", spot=False) == 0.8048
    assert book.instance_hour("g6.xlarge", spot=True) == pytest.approx(0.35)  # mean of 2 AZs
    assert book.as_of == "D" and "assumed" not in book.source
    assert "Fargate Spot at 30%" in book.assumed[0]


def test_tiered_price_takes_the_first_tier() -> None:
    pricing = client("pricing")
    with Stubber(pricing) as stub:
        stub.add_response(
            "get_products",
            {
                "PriceList": [
                    product(
                        "",
                        [("10240", "0.25"), ("0", "0.50")],
                        usagetype=SPECS[9].filters["usagetype"],
                    )
                ]
            },
            None,
        )
        assert prices_module.fetch_unit_price(pricing, SPECS[9], "us-east-1") == 0.5


def test_only_the_exact_usage_type_is_priced() -> None:
    """GetProducts' CONTAINS filter is a substring match (Price List Query API, Filter: "CONTAINS:
    Returns products where the field value contains the provided value as a substring"), so
    ``Fargate-vCPU-Hours:perCPU`` also matches usage types that merely end the same way, such
    as a ``SpotUsage:`` variant, and the API promises no order. Only ``<billing-region
    prefix>-<usage type>`` (or the bare usage type) is the On-Demand price; the result is read
    across pages (NextToken)."""
    pricing = client("pricing")
    spec = SPECS[0]
    assert spec.key == "fargate_vcpu_hour"
    with Stubber(pricing) as stub:
        stub.add_response(
            "get_products",
            {
                "PriceList": [
                    product("0.01222392", usagetype="USE1-SpotUsage:Fargate-vCPU-Hours:perCPU"),
                    product("0.05056", usagetype="USE1-Fargate-Windows-vCPU-Hours:perCPU"),
                ],
                "NextToken": "page-2",
            },
            {"ServiceCode": "AmazonECS", "Filters": ANY, "MaxResults": 10},
        )
        stub.add_response(
            "get_products",
            {"PriceList": [product("0.04048", usagetype="USE1-Fargate-vCPU-Hours:perCPU")]},
            {"ServiceCode": "AmazonECS", "Filters": ANY, "MaxResults": 10, "NextToken": "page-2"},
        )
        assert prices_module.fetch_unit_price(pricing, spec, "us-east-1") == 0.04048
        stub.assert_no_pending_responses()
    assert prices_module.is_usage_type("TimedStorage-ByteHrs", "TimedStorage-ByteHrs")
    assert prices_module.is_usage_type("EUC1-NatGateway-Hours", "NatGateway-Hours")
    assert not prices_module.is_usage_type("USE1-Fargate-ARM-GB-Hours", "ARM-GB-Hours")


def test_two_prices_for_one_usage_type_are_an_error_not_a_guess() -> None:
    pricing = client("pricing")
    with Stubber(pricing) as stub:
        stub.add_response(
            "get_products",
            {
                "PriceList": [
                    product("0.045", usagetype="USE1-NatGateway-Hours"),
                    product("0.09", usagetype="NatGateway-Hours"),
                ]
            },
            None,
        )
        spec = next(s for s in SPECS if s.key == "nat_gateway_hour")
        with pytest.raises(PriceError, match="several prices for nat_gateway_hour"):
            prices_module.fetch_unit_price(pricing, spec, "us-east-1")


def test_missing_pricing_permission_says_what_is_needed() -> None:
    pricing = client("pricing")
    with Stubber(pricing) as stub:
        stub.add_client_error("get_products", "AccessDeniedException", "not authorized")
        with pytest.raises(PriceError, match=r"pricing:GetProducts.*--offline"):
            prices_module.fetch_unit_price(pricing, SPECS[0], "us-east-1")


def test_no_product_is_an_error_not_zero() -> None:
    pricing = client("pricing")
    with Stubber(pricing) as stub:
        stub.add_response("get_products", {"PriceList": []}, None)
        with pytest.raises(PriceError, match="has no fargate_vcpu_hour"):
            prices_module.fetch_unit_price(pricing, SPECS[0], "us-east-1")


def test_no_spot_offer_is_an_error() -> None:
    ec2 = client("ec2")
    with Stubber(ec2) as stub:
        stub.add_response("describe_spot_price_history", {"SpotPriceHistory": []}, None)
        with pytest.raises(PriceError, match=r"no Spot price for g6\.xlarge"):
            fetch_spot_price(ec2, "g6.xlarge")


def test_unknown_region_fails_before_any_call() -> None:
    with pytest.raises(PriceError, match="unknown AWS region 'us-east1'"):
        get_prices("us-east1", [], session=boto3.session.Session())


def test_pricing_endpoint_is_one_of_the_three_that_exist() -> None:
    assert {pricing_endpoint_region(r) for r in ("eu-west-3", "ap-northeast-1", "us-west-2")} == {
        "eu-central-1",
        "ap-south-1",
        "us-east-1",
    }
    assert boto3.session.Session().get_available_regions("pricing") == sorted(
        ["us-east-1", "eu-central-1", "ap-south-1"]
    )


def test_cache_is_used_while_fresh(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    book = load_snapshot("us-east-1")
    write_cache(book, now=1000.0)
    cached = read_cache("us-east-1", ["g6.xlarge"], now=2000.0)
    assert cached is not None and cached.unit == book.unit and "cached" in cached.source
    assert read_cache("us-east-1", ["g6.xlarge"], now=1000.0 + 8 * 24 * 3600) is None  # stale
    assert read_cache("us-east-1", ["p5.48xlarge"], now=2000.0) is None  # type not covered


# -- snapshot ------------------------------------------------------------------------------------
def test_snapshot_is_dated_and_complete() -> None:
    """The snapshot says when and where its numbers come from. Reviewed against the AWS
    pricing pages for us-east-1 (aws.amazon.com/fargate/pricing, /ec2/pricing/on-demand,
    /vpc/pricing, /elasticloadbalancing/pricing, /cloudwatch/pricing, /s3/pricing,
    /efs/pricing, /ebs/pricing): Fargate Linux/x86 $0.04048 per vCPU-hour and $0.004445 per
    GB-hour (ARM $0.03238 / $0.00356); g5.xlarge $1.006, g6.xlarge $0.8048, g6e.xlarge $1.861
    per hour; NAT gateway $0.045 per hour and per GB; ALB $0.0225 per hour and $0.008 per
    LCU-hour; CloudWatch Logs $0.50 per GB ingested and $0.03 per GB-month; S3 Standard $0.023
    per GB-month (first 50 TB); EFS Standard $0.30 per GB-month; gp3 $0.08 per GB-month.
    Fargate Spot ran at about 30 % of On-Demand ($0.01222 per vCPU-hour)."""
    data = json.loads(prices_module.SNAPSHOT.read_text())
    assert data["as_of"] and data["source"]
    for region in data["regions"].values():
        assert {s.key for s in SPECS} == set(region["unit"])
        assert set(region["ec2_spot_hour"]) == set(region["ec2_on_demand_hour"])
        for kind, on_demand in region["ec2_on_demand_hour"].items():
            assert 0 < region["ec2_spot_hour"][kind] < on_demand, kind


def test_offline_region_not_in_snapshot() -> None:
    with pytest.raises(PriceError, match=r"no prices for 'eu-west-1'.*without --offline"):
        load_snapshot("eu-west-1")


# -- arithmetic ------------------------------------------------------------------------------------
def test_runs_per_month() -> None:
    assert runs_per_month("cron(0 3 * * ? *)") == pytest.approx(30.4)
    assert runs_per_month("rate(6 hours)") == pytest.approx(HOURS_PER_MONTH / 6)
    assert runs_per_month("cron(0 3 ? * MON-FRI *)") == pytest.approx(5 * 30.4 / 7)


def test_dev_estimate_by_hand() -> None:
    cfg, _ = load_stack("dev")
    book = load_snapshot("us-east-1")
    result = estimate(cfg, "dev", book, Usage())
    per_task = 2 * book.price("fargate_vcpu_hour") + 4 * book.price("fargate_gb_hour")
    share = 13 * 5 / 168  # 07:00-20:00 Mon-Fri
    (service,) = [i for i in result.at_minimum if i.name.startswith("Service tasks")]
    assert service.monthly == pytest.approx(1 * per_task * HOURS_PER_MONTH * share)
    saved_low, _ = result.savings["off-hours"]
    assert saved_low == pytest.approx(per_task * HOURS_PER_MONTH * (1 - share))
    # at maximum the second task is half On-Demand, half Spot (weight 1 above the base of 1)
    spot = next(i for i in result.at_maximum if "Spot" in i.name)
    assert spot.monthly == pytest.approx(0.5 * per_task * 0.3 * HOURS_PER_MONTH * share)
    nat = next(i for i in result.at_minimum if i.name == "NAT gateways")
    assert nat.monthly == pytest.approx(HOURS_PER_MONTH * 0.045 + 50 * 0.045)


def test_prod_spot_saves_above_the_floor_only() -> None:
    cfg, _ = load_stack("prod")
    book = load_snapshot("us-east-1")
    result = estimate(cfg, "prod", book)
    saved_low, saved_high = result.savings["Spot"]
    od, spot = (
        book.instance_hour("g6.xlarge", spot=False),
        book.instance_hour("g6.xlarge", spot=True),
    )
    # minCount 3 = On-Demand base: nothing to save at the floor except the sync's Spot discount
    assert saved_low < 1
    # maxCount 6: 3 instances above the base on Spot
    assert saved_high == pytest.approx(3 * (od - spot) * HOURS_PER_MONTH + saved_low)
    assert "off-hours" in result.savings and result.savings["off-hours"] == (0.0, 0.0)


def test_fargate_arm_prices_are_used_for_arm64() -> None:
    book = load_snapshot("us-east-1")
    x86 = estimate(StackConfig(), "s", book).at_minimum[0].monthly
    arm = estimate(StackConfig(cpu_architecture="ARM64"), "s", book).at_minimum[0].monthly
    assert arm < x86


# -- quotas (the preview's check, from the command line) --------------------------------------
def quota(value: float) -> dict[str, Any]:
    return {"Quota": {"Value": value, "QuotaCode": "L-X", "ServiceCode": "ec2"}}


def test_quota_falls_back_to_the_aws_default() -> None:
    sq = client("service-quotas")
    with Stubber(sq) as stub:
        stub.add_client_error("get_service_quota", "NoSuchResourceException", "none applied")
        stub.add_response(
            "get_aws_default_service_quota",
            quota(64),
            {"ServiceCode": "ec2", "QuotaCode": "L-DB2E81BA"},
        )
        from components.quota_guard import Capacity

        assert read_quota(sq, Capacity.EC2_G_VT_ON_DEMAND) == 64


def test_missing_quota_permission_names_it() -> None:
    from components.quota_guard import Capacity

    sq = client("service-quotas")
    with Stubber(sq) as stub:
        stub.add_client_error("get_service_quota", "AccessDeniedException", "denied")
        with pytest.raises(QuotaReadError, match=r"servicequotas:GetServiceQuota.*quotaGuardSkip"):
            read_quota(sq, Capacity.EC2_G_VT_SPOT)


def test_prod_gpu_quotas_of_a_new_account_fail() -> None:
    """New accounts often have 0 G and VT Spot vCPU: prod (9 Spot instances x 4 vCPU at most)
    cannot scale out there."""
    cfg, _ = load_stack("prod")
    sq = client("service-quotas")
    with Stubber(sq) as stub:
        stub.add_response(
            "get_service_quota", quota(4000), {"ServiceCode": "fargate", "QuotaCode": "L-36FBB829"}
        )
        stub.add_response(
            "get_service_quota", quota(64), {"ServiceCode": "ec2", "QuotaCode": "L-DB2E81BA"}
        )
        stub.add_response(
            "get_service_quota", quota(0), {"ServiceCode": "ec2", "QuotaCode": "L-3819A6DF"}
        )
        fargate, gpu = check_stack_quotas(cfg, "onnx-prod", sq)
    assert fargate.outcome is Outcome.FITS
    assert gpu.outcome is Outcome.FAILS
    by_code = {c.capacity.value: c for c in gpu.checks}
    assert by_code["EC2_G_VT_ON_DEMAND"].demand_vcpu == 3 * 4  # the On-Demand base
    # gpuMaxSize 12 - base 3, plus 2 replacements while rebalancing (10 % of 12, rounded up)
    assert by_code["EC2_G_VT_SPOT"].demand_vcpu == (9 + 2) * 4
    assert "--service-code ec2 --quota-code L-3819A6DF" in by_code["EC2_G_VT_SPOT"].message


# -- the command and the README ------------------------------------------------------------
def test_command_prints_json_offline(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["cost", "--stack", "prod", "--offline", "--format", "json"]) == 0
    payload = json.loads(capsys.readouterr().out)
    assert payload["region"] == "us-east-1"
    assert payload["total_at_maximum"] > payload["total_at_minimum"] > 0


def test_command_names_a_missing_stack(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["cost", "--stack", "staging", "--offline"]) == 2
    assert "Pulumi.staging.yaml not found" in capsys.readouterr().err


@pytest.mark.parametrize("stack", ["dev", "prod"])
def test_readme_has_the_current_cost_table(stack: str) -> None:
    """The README's tables are the tool's offline output; regenerate them when prices or the
    stack files change: python -m ops cost --stack <s> --offline --format markdown."""
    cfg, _ = load_stack(stack)
    table = render_markdown(estimate(cfg, stack, load_snapshot("us-east-1")))
    readme = (ROOT / "README.md").read_text()
    rows = [line for line in table.splitlines() if line.startswith("|")]
    missing = [row for row in rows if row not in readme]
    assert not missing, f"README.md lacks these {stack} rows: {missing}"


def test_fresh_cache_answers_without_any_call(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    write_cache(load_snapshot("us-east-1"))

    class NoClients(boto3.session.Session):  # type: ignore[misc]
        def client(self, *args: Any, **kwargs: Any) -> Any:
            raise AssertionError("no AWS call expected")

    book = get_prices("us-east-1", ["g6.xlarge"], session=NoClients())
    assert "cached" in book.source


def test_write_snapshot_keeps_other_regions(tmp_path: Path) -> None:
    path = tmp_path / "snapshot.json"
    path.write_text(prices_module.SNAPSHOT.read_text())
    book = load_snapshot("us-east-1", path)
    book.region, book.as_of, book.source = "eu-west-1", "2030-01-01", "live"
    prices_module.write_snapshot(book, path)
    data = json.loads(path.read_text())
    assert set(data["regions"]) == {"us-east-1", "eu-west-1"}
    assert data["as_of"] == "2030-01-01"
    assert load_snapshot("eu-west-1", path).unit == book.unit


def test_unknown_key_in_a_stack_file_is_refused(tmp_path: Path) -> None:
    from ops.cost.stack_file import StackFileError

    (tmp_path / "Pulumi.yaml").write_text("name: onnx-ecs-serving\n")
    (tmp_path / "Pulumi.x.yaml").write_text("config:\n  onnx-ecs-serving:gpuSpotTypes: [a]\n")
    with pytest.raises(StackFileError, match="gpuSpotTypes"):
        load_stack("x", tmp_path)
