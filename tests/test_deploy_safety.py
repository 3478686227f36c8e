"""``pulumi up`` ends in a verified service or fails: the dev and prod stacks under mocks.

What is asserted, per stack: the ECS service waits for steady state; its deployment alarms are
enabled with rollback and name this stack's alarms on the service's own target group (5xx rate
by metric math, p99 latency, unhealthy hosts); the deploy-time model publish is among the
service's transitive dependencies; dev creates its bucket and uploads the demo model before the
publish runs.

AWS behaviour encoded (cited):
- Amazon ECS Developer Guide, "How CloudWatch alarms detect Amazon ECS deployment failures"
  (https://docs.aws.amazon.com/AmazonECS/latest/developerguide/deployment-alarm-failure.html):
  ECS sets a deployment to failed when one of ``deploymentConfiguration.alarms.alarmNames``
  goes into ALARM, and with ``rollback: true`` returns to the last completed deployment; ECS
  keeps watching the alarms for a bake time after the deployment. Only with the ECS (rolling
  update) deployment controller (API Reference, ``DeploymentAlarms``).
- Elastic Load Balancing, "CloudWatch metrics for your Application Load Balancer"
  (https://docs.aws.amazon.com/elasticloadbalancing/latest/application/load-balancer-cloudwatch-metrics.html):
  namespace ``AWS/ApplicationELB``; ``HTTPCode_Target_5XX_Count``, ``RequestCount``,
  ``TargetResponseTime`` and ``UnHealthyHostCount`` per ``TargetGroup`` + ``LoadBalancer``,
  whose values are the ARN suffixes (``targetgroup/<name>/<id>``, ``app/<name>/<id>``); metrics
  are reported only while requests flow, hence ``treat_missing_data = notBreaching``.
- pulumi-aws ``aws.ecs.Service.wait_for_steady_state``: "wait for the service to reach a steady
  state (like ``aws ecs wait services-stable``)"; the provider fails the update when that does
  not happen within the resource's timeout.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import pytest
from pulumi.runtime.mocks import MockMonitor

from components.demo_model_source import bucket_name, demo_model_bytes, demo_model_key
from components.deployment_alarms import DeploymentAlarmSettings
from components.stack_config import StackConfig
from tests import pulumi_mocks
from tests.pulumi_mocks import ACCOUNT, REGION, RecordingMocks
from tests.test_stack_dev import DEV, NAME, _mock_fixes, run_stack  # noqa: F401
from tests.test_stack_prod import PROD

SERVICE = "aws:ecs/service:Service"
ALARM = "aws:cloudwatch/metricAlarm:MetricAlarm"
PUBLISH = "pulumi-python:dynamic:Resource"


class Graph:
    """URN -> URNs it depends on, recorded from the register-resource requests."""

    def __init__(self) -> None:
        self.deps: dict[str, set[str]] = {}
        self.by_name: dict[tuple[str, str], str] = {}

    def urn(self, type_: str, name: str) -> str:
        return self.by_name[(type_, name)]

    def closure(self, urn: str) -> set[str]:
        seen: set[str] = set()
        todo = [urn]
        while todo:
            for dep in self.deps.get(todo.pop(), set()):
                if dep not in seen:
                    seen.add(dep)
                    todo.append(dep)
        return seen


@pytest.fixture
def graph() -> Iterator[Graph]:
    recorded = Graph()
    original = MockMonitor.RegisterResource

    def register(self: MockMonitor, request: Any) -> Any:
        response = original(self, request)
        deps = set(request.dependencies)
        for prop in request.propertyDependencies.values():
            deps.update(prop.urns)
        recorded.deps[response.urn] = deps
        recorded.by_name[(request.type, request.name)] = response.urn
        return response

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(MockMonitor, "RegisterResource", register)
        yield recorded


STACKS = {"dev": DEV, "prod": PROD}


@pytest.fixture(params=sorted(STACKS))
def stack(request: pytest.FixtureRequest, graph: Graph) -> tuple[str, RecordingMocks, Graph, dict]:
    mocks, exports = run_stack(STACKS[request.param])
    return request.param, mocks, graph, exports


def test_service_waits_for_steady_state_with_breaker_and_alarm_rollback(
    stack: tuple[str, RecordingMocks, Graph, dict],
) -> None:
    _, mocks, _, exports = stack
    service = mocks.one(SERVICE).inputs
    assert service["waitForSteadyState"] is True
    assert service["deploymentCircuitBreaker"] == {"enable": True, "rollback": True}
    alarms = service["alarms"]
    assert (alarms["enable"], alarms["rollback"]) == (True, True)
    # auto-named: under mocks an alarm's name output is its logical name
    ours = {r.name for r in mocks.of_type(ALARM) if r.name.startswith(f"{NAME}-deploy")}
    assert sorted(alarms["alarmNames"]) == sorted(ours)
    assert len(ours) == 3
    assert sorted(exports["deploymentAlarmNames"]) == sorted(ours)


def test_deployment_alarms_watch_the_services_target_group(
    stack: tuple[str, RecordingMocks, Graph, dict],
) -> None:
    _, mocks, _, exports = stack
    tg = f"targetgroup/{NAME}-tg/0123456789"  # the mocks' arnSuffix of the service's group
    alb = f"app/{NAME}-alb/0123456789"
    prefix = f"{NAME}-deploy-alarms-"  # not the alert-delivery or monitoring alarms
    alarms = {
        r.name.removeprefix(prefix): r.inputs
        for r in mocks.of_type(ALARM)
        if r.name.startswith(prefix)
    }
    rate = alarms["5xx-rate"]
    queries = {q["id"]: q for q in rate["metricQueries"]}
    for query_id, metric in (("errors", "HTTPCode_Target_5XX_Count"), ("requests", "RequestCount")):
        m = queries[query_id]["metric"]
        assert (m["namespace"], m["metricName"], m["stat"], m["period"]) == (
            "AWS/ApplicationELB",
            metric,
            "Sum",
            60,
        )
        assert m["dimensions"] == {"TargetGroup": tg, "LoadBalancer": alb}
        assert queries[query_id]["returnData"] is False
    assert queries["rate"]["returnData"] is True
    assert queries["rate"]["expression"] == (
        "IF(requests >= 20, 100 * FILL(errors, 0) / requests, 0)"
    )
    assert rate["threshold"] == 5.0
    latency = alarms["latency-p99"]
    assert (latency["metricName"], latency["extendedStatistic"], latency["threshold"]) == (
        "TargetResponseTime",
        "p99",
        2.0,
    )
    unhealthy = alarms["unhealthy-hosts"]
    assert (unhealthy["metricName"], unhealthy["statistic"], unhealthy["threshold"]) == (
        "UnHealthyHostCount",
        "Maximum",
        1,
    )
    for alarm in (latency, unhealthy):
        assert alarm["dimensions"] == {"TargetGroup": tg, "LoadBalancer": alb}
    for alarm in alarms.values():
        assert alarm["comparisonOperator"] == "GreaterThanOrEqualToThreshold"
        assert alarm["evaluationPeriods"] == alarm["datapointsToAlarm"] == 3
        assert alarm["treatMissingData"] == "notBreaching"
        assert alarm["alarmActions"] == [exports["alarmTopicArn"]]
        assert alarm["okActions"] == [exports["alarmTopicArn"]]


def test_publish_runs_the_sync_task_definition_and_the_service_waits_for_it(
    stack: tuple[str, RecordingMocks, Graph, dict],
) -> None:
    _, mocks, graph, exports = stack
    publish = mocks.one(PUBLISH, f"{NAME}-model-publish")
    inputs = publish.inputs
    assert inputs["task_definition"] == exports["modelSyncTaskDefinitionArn"]
    assert inputs["security_groups"] == [exports["modelSyncSecurityGroupId"]]
    assert inputs["container"] == "model-sync"
    assert inputs["cluster"] == exports["clusterArn"]
    # the CPU variant of the service image: the sync task runs on Fargate (in a GPU stack too)
    assert inputs["image"] == exports["modelSyncImage"]
    assert inputs["source"] == exports["modelSyncSource"]
    assert inputs["region"] == REGION
    service_urn = graph.urn(SERVICE, f"{NAME}-service")
    publish_urn = graph.urn(PUBLISH, f"{NAME}-model-publish")
    assert publish_urn in graph.closure(service_urn)
    # the publish waits for the store's mount targets and the sync task's egress rules
    before_publish = graph.closure(publish_urn)
    mount_targets = [
        graph.urn(r.type_, r.name) for r in mocks.of_type("aws:efs/mountTarget:MountTarget")
    ]
    assert mount_targets and set(mount_targets) <= before_publish
    assert graph.urn("aws:ecs/taskDefinition:TaskDefinition", f"{NAME}-model-sync-taskdef") in (
        before_publish
    )


def test_a_rolled_back_deployment_fails_the_update_through_the_deployment_check(
    stack: tuple[str, RecordingMocks, Graph, dict],
) -> None:
    """Steady state alone passes a rollback (hashicorp/terraform-provider-aws#19519): the
    check runs after the service and compares the revision that must run."""
    _, mocks, graph, exports = stack
    check = mocks.one(PUBLISH, f"{NAME}-deployment-check")
    assert check.inputs["task_definition"] == exports["taskDefinitionArn"]
    assert check.inputs["service"] == exports["serviceName"]
    assert check.inputs["cluster"] == exports["clusterArn"]
    service_urn = graph.urn(SERVICE, f"{NAME}-service")
    assert service_urn in graph.closure(graph.urn(PUBLISH, f"{NAME}-deployment-check"))


def test_externally_deployed_revisions_are_judged_whatever_they_are() -> None:
    mocks, _ = run_stack(DEV, {"ignoreTaskDefinitionChanges": True})
    assert mocks.one(PUBLISH, f"{NAME}-deployment-check").inputs["task_definition"] == ""


def test_dev_uploads_the_demo_model_to_its_own_private_bucket_before_the_publish(
    graph: Graph,
) -> None:
    mocks, exports = run_stack(DEV)
    bucket = mocks.one("aws:s3/bucket:Bucket", f"{NAME}-model-source-bucket").inputs
    expected = bucket_name(f"{NAME}-model-source", ACCOUNT, REGION)
    assert bucket["bucket"] == expected == exports["modelBucketName"]
    assert exports["modelSyncSource"] == f"s3://{expected}/models"
    block = mocks.one(
        "aws:s3/bucketPublicAccessBlock:BucketPublicAccessBlock",
        f"{NAME}-model-source-public-access",
    ).inputs
    assert all(block[k] for k in ("blockPublicAcls", "blockPublicPolicy", "ignorePublicAcls"))
    sse = mocks.one(
        "aws:s3/bucketServerSideEncryptionConfiguration:BucketServerSideEncryptionConfiguration",
        f"{NAME}-model-source-sse",
    ).inputs
    assert sse["rules"][0]["applyServerSideEncryptionByDefault"]["sseAlgorithm"] == "AES256"
    policy = json.loads(
        mocks.one("aws:s3/bucketPolicy:BucketPolicy", f"{NAME}-model-source-policy").inputs[
            "policy"
        ]
    )
    assert policy["Statement"][0]["Condition"] == {"Bool": {"aws:SecureTransport": "false"}}
    model = mocks.one("aws:s3/bucketObjectv2:BucketObjectv2", f"{NAME}-model-source-demo-model")
    assert model.inputs["key"] == demo_model_key() == "models/recommender/1/model.onnx"
    assert model.inputs["checksumAlgorithm"] == "SHA256"
    import base64
    import hashlib

    data = base64.b64decode(model.inputs["contentBase64"])
    assert data == demo_model_bytes()
    publish = mocks.one(PUBLISH, f"{NAME}-model-publish")
    assert publish.inputs["source_version"] == hashlib.sha256(data).hexdigest()
    model_urn = graph.urn(model.type_, model.name)
    assert model_urn in graph.closure(graph.urn(PUBLISH, f"{NAME}-model-publish"))
    # the sync task reads exactly that prefix; its schedule is off (it runs at `pulumi up`)
    role = json.loads(
        mocks.one("aws:iam/rolePolicy:RolePolicy", f"{NAME}-model-sync-task-policy").inputs[
            "policy"
        ]
    )
    reads = [s for s in role["Statement"] if s.get("Sid") == "ReadModelSource"]
    assert reads[0]["Resource"] == f"arn:aws:s3:::{expected}/models/*"
    assert mocks.one("aws:scheduler/schedule:Schedule").inputs["state"] == "DISABLED"


def test_a_stack_with_a_source_creates_no_bucket_and_keeps_its_schedule() -> None:
    mocks, exports = run_stack(DEV, {"modelSyncSource": "s3://my-models/dev"})
    assert not [b for b in mocks.of_type("aws:s3/bucket:Bucket") if "model-source" in b.name]
    assert "modelBucketName" not in exports
    publish = mocks.one(PUBLISH, f"{NAME}-model-publish")
    assert (publish.inputs["source"], publish.inputs["source_version"]) == (
        "s3://my-models/dev",
        "",
    )
    assert mocks.one("aws:scheduler/schedule:Schedule").inputs["state"] == "ENABLED"


def test_demo_bucket_name_is_valid_and_bounded() -> None:
    assert bucket_name("onnx-dev", ACCOUNT, "us-east-1") == f"onnx-dev-models-{ACCOUNT}-us-east-1"
    long = bucket_name("Onnx_" + "x" * 80, ACCOUNT, "ap-southeast-2")
    assert len(long) <= 63 and long == long.lower() and "_" not in long
    assert long.endswith(f"-models-{ACCOUNT}-ap-southeast-2")
    assert long != bucket_name("Onnx_" + "x" * 81, ACCOUNT, "ap-southeast-2")


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        ({"alarm5xxRatePercent": 0}, "alarm5xxRatePercent 0"),
        ({"alarm5xxRatePercent": 150}, "use a percentage in (0, 100]"),
        ({"alarm5xxMinRequests": 0}, "alarm5xxMinRequests 0"),
        ({"alarmLatencyP99Seconds": -1}, "alarmLatencyP99Seconds -1"),
        ({"alarmUnhealthyHosts": 0}, "alarmUnhealthyHosts 0"),
        ({"alarmEvaluationPeriods": 0}, "alarmEvaluationPeriods 0: use 1-60"),
        ({"alarmEvaluationPeriods": 61}, "alarmEvaluationPeriods 61"),
        ({"modelPublishTimeoutSeconds": 30}, "modelPublishTimeoutSeconds 30: use 60-7200"),
    ],
)
def test_bad_alarm_or_publish_values_fail_the_preview(overrides: dict, message: str) -> None:
    with pytest.raises(ValueError) as err:
        run_stack(DEV, overrides)
    assert message in str(err.value)
    assert pulumi_mocks.MOCKS.resources == []


def test_alarm_keys_map_onto_the_service() -> None:
    cfg = StackConfig(
        alarm_5xx_rate_percent=2.5,
        alarm_5xx_min_requests=100,
        alarm_latency_p99_seconds=0.25,
        alarm_unhealthy_hosts=2,
        alarm_evaluation_periods=5,
    )
    assert cfg.service_settings().deployment_alarms == DeploymentAlarmSettings(2.5, 100, 0.25, 2, 5)
    mocks, _ = run_stack(DEV, {"alarmLatencyP99Seconds": 0.25, "alarmEvaluationPeriods": 5})
    latency = mocks.one(ALARM, f"{NAME}-deploy-alarms-latency-p99").inputs
    assert (latency["threshold"], latency["evaluationPeriods"]) == (0.25, 5)


def test_deferred_topic_wiring_keeps_the_event_rules_on_this_service() -> None:
    mocks, exports = run_stack(DEV)
    rule = mocks.one(
        "aws:cloudwatch/eventRule:EventRule", f"{NAME}-notify-deployment-failed"
    ).inputs
    # the mocks' ARN of the service: the deferred output resolved to the service's own ARN
    assert json.loads(rule["eventPattern"])["resources"] == [
        f"arn:aws:ecs:{REGION}:{ACCOUNT}:{NAME}-service"
    ]
    task_rule = json.loads(
        mocks.one("aws:cloudwatch/eventRule:EventRule", f"{NAME}-notify-task-failed").inputs[
            "eventPattern"
        ]
    )
    assert task_rule["detail"]["group"] == [f"service:{exports['serviceName']}"]


def test_smoke_probe_task_runs_the_probe_in_the_vpc(
    stack: tuple[str, RecordingMocks, Graph, dict],
) -> None:
    """What `python -m ops smoke --stack-outputs` needs, least privilege: no ingress, egress to
    the internal ALB's listener ports inside the VPC only (plus HTTPS and NFS)."""
    from tests.ecs_schema import assert_valid_container_definitions

    _, mocks, _, exports = stack
    task = mocks.one("aws:ecs/taskDefinition:TaskDefinition", f"{NAME}-smoke-taskdef").inputs
    assert exports["smokeTaskDefinitionArn"].endswith(f"task-definition/{NAME}-smoke-taskdef:1")
    (container,) = json.loads(task["containerDefinitions"])
    assert_valid_container_definitions([container])
    assert container["entryPoint"] == ["python", "-m", "ops.smoke_probe"]
    assert container["image"] == exports["modelSyncImage"]  # the CPU variant: a Fargate task
    env = {e["name"]: e["value"] for e in container["environment"]}
    assert env == {"MODEL_DIR": "/models", "SMOKE_URL": exports["url"]}
    assert container["mountPoints"][0]["readOnly"] is True
    assert container["logConfiguration"]["options"]["awslogs-stream-prefix"] == "smoke"
    assert container["logConfiguration"]["options"]["awslogs-group"] == exports["smokeLogGroupName"]
    egress = [
        r.inputs
        for r in mocks.of_type("aws:vpc/securityGroupEgressRule:SecurityGroupEgressRule")
        if r.name.startswith(f"{NAME}-smoke-out-alb-")
    ]
    assert [(e["fromPort"], e["cidrIpv4"]) for e in egress] == [(80, "10.0.0.0/16")]
    ingress = [
        r
        for r in mocks.of_type("aws:vpc/securityGroupIngressRule:SecurityGroupIngressRule")
        if r.inputs["securityGroupId"] == exports["smokeSecurityGroupId"]
    ]
    assert ingress == []


def test_smoke_probe_reaches_a_public_load_balancer_at_its_public_addresses() -> None:
    mocks, _ = run_stack(DEV, {"publicLoadBalancer": True})
    egress = [
        r.inputs
        for r in mocks.of_type("aws:vpc/securityGroupEgressRule:SecurityGroupEgressRule")
        if r.name.startswith(f"{NAME}-smoke-out-alb-")
    ]
    assert [(e["fromPort"], e["cidrIpv4"]) for e in egress] == [(80, "0.0.0.0/0")]


@pytest.mark.parametrize(("periods", "at_least"), [(3, 1800 + 180), (60, 1800 + 3600)])
def test_the_deployment_check_waits_longer_than_the_alarms_bake_time(
    periods: int, at_least: int
) -> None:
    """ECS Developer Guide, "How CloudWatch alarms detect Amazon ECS deployment failures": after
    the tasks are steady ECS keeps monitoring the deployment alarms for a bake time that it
    "computes ... based on the alarm configuration associated with the deployment. You can't
    set this value", and only then moves ``rolloutState`` to COMPLETED. With
    ``alarmEvaluationPeriods`` 60 (accepted) that window alone is an hour, so a fixed 30-minute
    check would fail every healthy deployment: the check's timeout grows with the window."""
    mocks, _ = run_stack(DEV, {"alarmEvaluationPeriods": periods})
    check = mocks.one(PUBLISH, f"{NAME}-deployment-check")
    assert check.inputs["timeout_seconds"] >= at_least
    assert check.inputs["timeout_seconds"] == DeploymentAlarmSettings(
        evaluation_periods=periods
    ).deployment_check_timeout(1800)
