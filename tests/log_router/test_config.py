"""log_router/ is a valid FireLens custom config and agrees with the LogRouter component."""

from __future__ import annotations

import re
from pathlib import Path

from components import log_router
from tests.log_router.fluentbit import (
    Pipeline,
    Section,
    dockerfile_copies,
    env_references,
    parse_classic,
)

ROUTER_DIR = Path(__file__).resolve().parents[2] / "log_router"
COMPONENT_ENV = {
    log_router.ENV_REGION,
    log_router.ENV_ERROR_LOG_GROUP,
    log_router.ENV_ARCHIVE_BUCKET,
    log_router.ENV_METRICS_LOG_GROUP,
}


def sections(kind: str) -> list[Section]:
    return [s for s in parse_classic((ROUTER_DIR / "custom.conf").read_text()) if s.name == kind]


def output(name: str, alias: str | None = None) -> Section:
    (found,) = [s for s in sections("OUTPUT") if s.get("Name") == name and s.get("Alias") == alias]
    return found


def test_dockerfile_builds_on_a_pinned_aws_for_fluent_bit() -> None:
    text = (ROUTER_DIR / "Dockerfile").read_text()
    tag = re.search(r"^ARG AWS_FOR_FLUENT_BIT_TAG=(\S+)$", text, re.M)
    assert tag and re.fullmatch(r"\d+\.\d+\.\d+(\.\d+)?", tag.group(1))  # not latest/stable
    base = "public.ecr.aws/aws-observability/aws-for-fluent-bit"
    assert f"\nFROM {base}:${{AWS_FOR_FLUENT_BIT_TAG}}\n" in text


def test_dockerfile_puts_the_config_where_the_task_definition_points() -> None:
    copies = dockerfile_copies(ROUTER_DIR / "Dockerfile")
    assert copies[log_router.CONFIG_FILE_PATH] == ROUTER_DIR / "custom.conf"
    assert all(src.is_file() for src in copies.values())


def test_config_loads_with_the_environment_the_component_sets() -> None:
    text = (ROUTER_DIR / "custom.conf").read_text()
    assert env_references(text) == COMPONENT_ENV
    env = dict.fromkeys(COMPONENT_ENV, "x")
    # Loads the parsers file and the Lua script through the Dockerfile's paths.
    pipeline = Pipeline(
        ROUTER_DIR / "custom.conf", dockerfile_copies(ROUTER_DIR / "Dockerfile"), env
    )
    assert {s.get("Name") for s, _ in pipeline.filters} == {"parser", "grep", "lua", "rewrite_tag"}
    # FireLens owns the inputs; a custom file adds filters and outputs only.
    assert not sections("INPUT")


def test_errors_go_to_the_existing_group_named_by_the_environment() -> None:
    cw = output("cloudwatch_logs")
    assert cw.get("log_group_name") == "${ERROR_LOG_GROUP_NAME}"
    assert cw.flag("auto_create_group", default=True) is False
    assert cw.get("region") == "${AWS_REGION}"
    assert cw.get("log_stream_prefix") or cw.get("log_stream_name")


def test_archive_is_gzip_partitioned_by_date_under_the_prefix_iam_allows() -> None:
    s3 = output("s3")
    assert s3.get("bucket") == "${ARCHIVE_BUCKET_NAME}"
    assert s3.get("compression") == "gzip"
    key = s3.get("s3_key_format") or ""
    assert key.startswith(f"/{log_router.ARCHIVE_PREFIX}/%Y/%m/%d/")
    assert "$UUID" in key  # unique object names; needed for a suffix with use_put_object
    assert s3.flag("use_put_object") is True


def test_parser_reads_iso_8601_not_the_stock_apache_time() -> None:
    (parser,) = parse_classic((ROUTER_DIR / "parsers.conf").read_text())
    assert parser.get("Format") == "json"
    assert parser.get("Time_Key") == "time"
    assert parser.get("Time_Format") == "%Y-%m-%dT%H:%M:%S.%L%z"
    assert parser.get("Time_Format") != "%d/%b/%Y:%H:%M:%S %z"


def test_metrics_go_to_their_own_group_as_emf() -> None:
    """Fluent Bit manual, outputs/cloudwatch: ``log_format json/emf`` "enables CloudWatch to
    extract custom metrics embedded in a JSON payload" (it sets the x-amzn-logs-format header of
    PutLogEvents). The group exists (created with retention by LogRouter), so no auto-create.

    Amazon CloudWatch User Guide, "Specification: Embedded metric format", section "PutLogEvents
    request format": "Clients MUST use the following log format header when sending an embedded
    metric format document using the CloudWatch Logs PutLogEvents API:
    x-amzn-logs-format: json/emf" -- what fluent-bit's plugins/out_cloudwatch_logs/
    cloudwatch_api.c sends (header ``x-amzn-logs-format`` with the ``log_format`` value)."""
    cw = output("cloudwatch_logs", alias="metrics")
    assert cw.get("Match") == "metrics.*"
    assert cw.get("log_format") == "json/emf"
    assert cw.get("log_group_name") == "${METRICS_LOG_GROUP_NAME}"
    assert cw.flag("auto_create_group", default=True) is False
    assert cw.get("region") == "${AWS_REGION}"
