"""LogRouter under Pulumi mocks: destinations, sidecar definition and IAM scope."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pulumi
import pytest

from components.log_router import (
    ARCHIVE_PREFIX,
    CONFIG_FILE_PATH,
    RETENTION_DAYS,
    LogRouter,
    LogRouterArgs,
)
from tests import pulumi_mocks
from tests.log_router.fluentbit import env_references
from tests.pulumi_mocks import REGION, RecordingMocks, run

LOG_GROUP = "aws:cloudwatch/logGroup:LogGroup"
IMAGE = "123456789012.dkr.ecr.us-east-1.amazonaws.com/log-router:abc123"
KEY = "arn:aws:kms:us-east-1:123456789012:key/2222"
CUSTOM_CONF = Path(__file__).resolve().parents[2] / "log_router" / "custom.conf"


def build(resolved: dict[str, Any] | None = None, **overrides: Any) -> RecordingMocks:
    """Run a LogRouter named "log-router"; ``resolved`` receives what its methods hand out."""

    def program() -> None:
        router = LogRouter("log-router", LogRouterArgs(**{"image": IMAGE, **overrides}))
        if resolved is None:
            return
        resolved["container_name"] = router.container_name
        resolved["app"] = router.app_log_configuration()
        router.container_definition().apply(lambda c: resolved.__setitem__("container", c))
        pulumi.Output.all(*router.task_role_statements()).apply(
            lambda s: resolved.__setitem__("statements", s)
        )
        pulumi.Output.all(
            router.error_log_group_name,
            router.error_log_group_arn,
            router.router_log_group_name,
            router.archive_bucket_name,
            router.archive_bucket_arn,
            router.metrics_log_group_name,
            router.metrics_log_group_arn,
        ).apply(lambda v: resolved.__setitem__("outputs", v))

    return run(program)


def groups(mocks: RecordingMocks) -> dict[str, dict[str, Any]]:
    return {r.name: r.inputs for r in mocks.of_type(LOG_GROUP)}


def test_log_groups_have_retention_and_stable_names() -> None:
    mocks = build()
    assert mocks.of_type("onnx-ecs:index:LogRouter")[0].name == "log-router"
    found = groups(mocks)
    assert found["log-router-errors"] == {
        "name": "/ecs/onnx-ecs-serving/test/log-router/errors",
        "retentionInDays": 90,
    }
    assert found["log-router-router-logs"] == {
        "name": "/ecs/onnx-ecs-serving/test/log-router/log-router",
        "retentionInDays": 90,
    }
    assert found["log-router-metrics"] == {
        "name": "/ecs/onnx-ecs-serving/test/log-router/metrics",
        "retentionInDays": 30,
    }


def test_retention_names_and_key_are_configurable() -> None:
    mocks = build(
        error_log_retention_days=365,
        router_log_retention_days=14,
        error_log_group_name="/onnx/prod/errors",
        kms_key_arn=KEY,
    )
    found = groups(mocks)
    assert found["log-router-errors"]["retentionInDays"] == 365
    assert found["log-router-errors"]["name"] == "/onnx/prod/errors"
    assert found["log-router-router-logs"]["retentionInDays"] == 14
    assert {g["kmsKeyId"] for g in found.values()} == {KEY}


@pytest.mark.parametrize(
    "field", ["error_log_retention_days", "router_log_retention_days", "metrics_log_retention_days"]
)
@pytest.mark.parametrize("days", [2, 45, 366, -1, True])
def test_retention_cloudwatch_refuses_fails_at_preview(field: str, days: Any) -> None:
    with pytest.raises(ValueError, match=f"{field}={days!r}") as error:
        build(**{field: days})
    assert "1, 3, 5, 7, 14, 30, 60, 90" in str(error.value)  # names what is accepted
    assert "3653" in str(error.value)
    assert not pulumi_mocks.MOCKS.resources


@pytest.mark.parametrize("days", [0, *RETENTION_DAYS[:3], 3653])
def test_every_accepted_retention_passes(days: int) -> None:
    found = groups(build(error_log_retention_days=days))
    assert found["log-router-errors"]["retentionInDays"] == days


def test_archive_bucket_is_private_encrypted_owner_enforced_and_tls_only() -> None:
    mocks = build()
    bucket = mocks.one("aws:s3/bucket:Bucket", "log-router-archive").inputs
    assert bucket["forceDestroy"] is False
    sse = mocks.one(
        "aws:s3/bucketServerSideEncryptionConfiguration:BucketServerSideEncryptionConfiguration"
    ).inputs
    assert sse["bucket"] == "log-router-archive-id"
    assert sse["rules"][0]["applyServerSideEncryptionByDefault"] == {"sseAlgorithm": "AES256"}
    block = mocks.one("aws:s3/bucketPublicAccessBlock:BucketPublicAccessBlock").inputs
    for flag in ("blockPublicAcls", "blockPublicPolicy", "ignorePublicAcls"):
        assert block[flag] is True
    assert block["restrictPublicBuckets"] is True
    ownership = mocks.one("aws:s3/bucketOwnershipControls:BucketOwnershipControls").inputs
    assert ownership["rule"] == {"objectOwnership": "BucketOwnerEnforced"}
    policy = json.loads(mocks.one("aws:s3/bucketPolicy:BucketPolicy").inputs["policy"])
    (statement,) = policy["Statement"]
    assert statement["Effect"] == "Deny"
    assert statement["Principal"] == "*"
    assert statement["Condition"] == {"Bool": {"aws:SecureTransport": "false"}}
    arn = "arn:aws:s3:us-east-1:123456789012:log-router-archive"
    assert statement["Resource"] == [arn, f"{arn}/*"]


def test_archive_uses_the_customer_key_when_given() -> None:
    mocks = build(kms_key_arn=KEY)
    (rule,) = mocks.one(
        "aws:s3/bucketServerSideEncryptionConfiguration:BucketServerSideEncryptionConfiguration"
    ).inputs["rules"]
    assert rule == {
        "applyServerSideEncryptionByDefault": {"sseAlgorithm": "aws:kms", "kmsMasterKeyId": KEY},
        "bucketKeyEnabled": True,
    }


def test_archive_lifecycle_moves_then_expires_the_log_prefix() -> None:
    (rule,) = (
        build()
        .one("aws:s3/bucketLifecycleConfiguration:BucketLifecycleConfiguration")
        .inputs["rules"]
    )
    assert rule["status"] == "Enabled"
    assert rule["filter"] == {"prefix": f"{ARCHIVE_PREFIX}/"}
    assert rule["transitions"] == [{"days": 30, "storageClass": "STANDARD_IA"}]
    assert rule["expiration"] == {"days": 365}
    assert rule["abortIncompleteMultipartUpload"] == {"daysAfterInitiation": 7}

    (kept,) = (
        build(
            archive_transition_days=90,
            archive_transition_storage_class="GLACIER_IR",
            archive_expiration_days=None,
        )
        .one("aws:s3/bucketLifecycleConfiguration:BucketLifecycleConfiguration")
        .inputs["rules"]
    )
    assert kept["transitions"] == [{"days": 90, "storageClass": "GLACIER_IR"}]
    assert "expiration" not in kept


def test_sidecar_is_the_firelens_fluent_bit_router() -> None:
    resolved: dict[str, Any] = {}
    build(resolved)
    container = resolved["container"]
    error_group, _, router_group, bucket, _, metrics_group, _ = resolved["outputs"]
    assert container["name"] == resolved["container_name"] == "log-router"
    assert container["image"] == IMAGE
    assert container["essential"] is True
    assert container["user"] == "0"  # FireLens needs root; see LogRouterArgs.user
    assert container["memoryReservation"] == 50
    assert container["firelensConfiguration"] == {
        "type": "fluentbit",
        "options": {
            "config-file-type": "file",
            "config-file-value": CONFIG_FILE_PATH,
            "enable-ecs-log-metadata": "true",
        },
    }
    assert CONFIG_FILE_PATH == "/fluent-bit/custom.conf"
    assert container["environment"] == [
        {"name": "ARCHIVE_BUCKET_NAME", "value": bucket},
        {"name": "AWS_REGION", "value": REGION},
        {"name": "ERROR_LOG_GROUP_NAME", "value": error_group},
        {"name": "METRICS_LOG_GROUP_NAME", "value": metrics_group},
    ]
    assert container["logConfiguration"] == {
        "logDriver": "awslogs",
        "options": {
            "awslogs-group": router_group,
            "awslogs-region": REGION,
            "awslogs-stream-prefix": "log-router",
        },
    }
    assert "portMappings" not in container


def test_sidecar_sets_every_variable_the_config_reads() -> None:
    resolved: dict[str, Any] = {}
    build(resolved)
    names = {e["name"] for e in resolved["container"]["environment"]}
    assert names == env_references(CUSTOM_CONF.read_text())


def test_app_containers_log_through_firelens_without_options() -> None:
    resolved: dict[str, Any] = {}
    build(resolved)
    assert resolved["app"] == {"logDriver": "awsfirelens"}


def test_task_role_may_only_write_to_the_error_group_and_the_archive_prefix() -> None:
    """aws/amazon-cloudwatch-logs-for-fluent-bit README, "Permissions": the plugin needs
    CreateLogStream, DescribeLogStreams, PutLogEvents, and CreateLogGroup only "if
    auto_create_group is set to true" -- it is Off in log_router/custom.conf (the groups are
    created by Pulumi, with retention), so CreateLogGroup is not granted. PutLogEvents and
    CreateLogStream act on the log stream, ``<group ARN>:log-stream:<name>``, hence ``:*``.
    EMF needs no cloudwatch:PutMetricData: CloudWatch Logs extracts the metrics itself."""
    resolved: dict[str, Any] = {}
    build(resolved)
    _, error_arn, router_group, _, bucket_arn, _, metrics_arn = resolved["outputs"]
    logs, archive = resolved["statements"]
    assert logs["Effect"] == archive["Effect"] == "Allow"
    assert sorted(logs["Action"]) == [
        "logs:CreateLogStream",
        "logs:DescribeLogStreams",
        "logs:PutLogEvents",
    ]
    assert logs["Resource"] == [error_arn, f"{error_arn}:*", metrics_arn, f"{metrics_arn}:*"]
    assert archive["Action"] == ["s3:PutObject"]
    assert archive["Resource"] == [f"{bucket_arn}/{ARCHIVE_PREFIX}/*"]
    text = json.dumps(resolved["statements"])
    assert '"*"' not in text and router_group not in text


def test_kms_permission_is_added_only_with_a_customer_key() -> None:
    resolved: dict[str, Any] = {}
    build(resolved, kms_key_arn=KEY)
    kms = resolved["statements"][-1]
    assert kms["Action"] == ["kms:GenerateDataKey", "kms:Decrypt"]
    assert kms["Resource"] == [KEY]
    plain: dict[str, Any] = {}
    build(plain)
    assert "kms:" not in json.dumps(plain["statements"])


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        ({"archive_transition_days": 10}, "at least 30 days"),
        ({"archive_expiration_days": 30}, "later than archive_transition_days=30"),
        ({"archive_transition_days": 0}, "archive_transition_days=0"),
        ({"archive_transition_storage_class": "COLD"}, "GLACIER_IR"),
        ({"archive_bucket_name": "Logs_Bucket"}, "archive_bucket_name='Logs_Bucket'"),
        ({"error_log_group_name": "errors with spaces"}, "error_log_group_name="),
        ({"memory_reservation_mib": 4}, "memory_reservation_mib=4"),
        ({"user": "root; rm"}, "user='root; rm'"),
    ],
)
def test_invalid_arguments_fail_before_any_resource(
    overrides: dict[str, Any], message: str
) -> None:
    with pytest.raises(ValueError, match=message):
        build(**overrides)
    assert not pulumi_mocks.MOCKS.resources


def test_a_name_unfit_for_a_bucket_prefix_needs_an_explicit_bucket_name() -> None:
    def program() -> None:
        LogRouter("LogRouter", LogRouterArgs(image=IMAGE))

    with pytest.raises(ValueError, match="archive_bucket_name"):
        run(program)

    def named() -> None:
        LogRouter("LogRouter", LogRouterArgs(image=IMAGE, archive_bucket_name="my-log-archive"))

    assert run(named).one("aws:s3/bucket:Bucket").inputs["bucket"] == "my-log-archive"
