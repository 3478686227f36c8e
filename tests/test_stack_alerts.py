"""Across whole stacks (dev, and prod with its model sync): every EventBridge target has a
dead-letter queue, every rule a FailedInvocations alarm, and every encrypted alert topic a key
that EventBridge and CloudWatch can really use. A rule or topic added later without them fails
here. Requirements and citations: tests/components/test_alert_delivery.py."""

from __future__ import annotations

import json
from typing import Any

import pytest

from tests.pulumi_mocks import ACCOUNT, REGION, RecordingMocks
from tests.test_stack_dev import DEV, _mock_fixes, run_stack  # noqa: F401
from tests.test_stack_prod import PROD

SOURCE_KEYS = {"aws:SourceAccount", "aws:SourceArn", "aws:SourceOrgID"}


@pytest.fixture(scope="module", params=["dev", "prod"])
def stack(request: pytest.FixtureRequest) -> RecordingMocks:
    mocks, _ = run_stack(DEV if request.param == "dev" else PROD)
    copy = RecordingMocks()
    copy.resources = list(mocks.resources)
    return copy


def _arn(service: str, name: str) -> str:
    return f"arn:aws:{service}:{REGION}:{ACCOUNT}:{name}"


def test_every_target_has_a_dead_letter_queue_and_every_rule_an_alarm(
    stack: RecordingMocks,
) -> None:
    rules = stack.of_type("aws:cloudwatch/eventRule:EventRule")
    assert rules
    queues = {_arn("sqs", q.name) for q in stack.of_type("aws:sqs/queue:Queue")}
    for target in stack.of_type("aws:cloudwatch/eventTarget:EventTarget"):
        assert target.inputs.get("deadLetterConfig", {}).get("arn") in queues, target.name
    watched = {
        a.inputs["dimensions"]["RuleName"]
        for a in stack.of_type("aws:cloudwatch/metricAlarm:MetricAlarm")
        if a.inputs.get("metricName") == "FailedInvocations"
    }
    assert watched == {r.name for r in rules}
    for schedule in stack.of_type("aws:scheduler/schedule:Schedule"):
        assert schedule.inputs["target"]["deadLetterConfig"]["arn"] in queues


def test_every_alert_topic_key_admits_eventbridge_and_cloudwatch(stack: RecordingMocks) -> None:
    keys = {_arn("kms", k.name): k for k in stack.of_type("aws:kms/key:Key")}
    topics = stack.of_type("aws:sns/topic:Topic")
    assert topics
    for topic in topics:
        key = keys[topic.inputs["kmsMasterKeyId"]]
        statements: list[dict[str, Any]] = json.loads(key.inputs["policy"])["Statement"]
        for service in ("events.amazonaws.com", "cloudwatch.amazonaws.com"):
            assert any(
                service in json.dumps(s["Principal"])
                and "kms:GenerateDataKey*" in s["Action"]
                and not (
                    {k for block in s.get("Condition", {}).values() for k in block} & SOURCE_KEYS
                )
                for s in statements
            ), f"{key.name}: {service} cannot use the key of topic {topic.name}"
    for policy in stack.of_type("aws:sns/topicPolicy:TopicPolicy"):
        sids = {s["Sid"] for s in json.loads(policy.inputs["policy"])["Statement"]}
        assert {"EventBridgeRulesPublish", "CloudWatchAlarmsPublish"} <= sids
