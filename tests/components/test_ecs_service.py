"""InferenceService (components/ecs_service/): assertions on the inputs of every child."""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from dataclasses import replace
from typing import Any

import pulumi
import pulumi_aws as aws
import pytest

from components.ecs_service import (
    Autoscaling,
    ContainerHealthCheck,
    HealthCheck,
    InferenceService,
    InferenceServiceArgs,
    LoadBalancerOptions,
    Network,
    Placement,
    ServiceSettings,
    ecr_repository_arn,
)
from components.efs_model_store import EfsModelStore, EfsModelStoreArgs
from components.fargate_service import fargate_placement
from components.log_router import LogRouter, LogRouterArgs
from tests.components.helpers import ROLE_POLICY, by_sid, containers, policy_statements
from tests.ecs_schema import assert_valid_container_definitions
from tests.pulumi_mocks import ACCOUNT, Recorded, RecordingMocks, run

CLUSTER_ARN = f"arn:aws:ecs:us-east-1:{ACCOUNT}:cluster/inference"
APP_IMAGE = f"{ACCOUNT}.dkr.ecr.us-east-1.amazonaws.com/onnx-service:abc123"
ROUTER_IMAGE = f"{ACCOUNT}.dkr.ecr.us-east-1.amazonaws.com/log-router:abc123"
NETWORK = Network(
    vpc_id="vpc-0abc",
    vpc_cidr_block="10.20.0.0/16",
    private_subnet_ids=["subnet-priv-a", "subnet-priv-b"],
    public_subnet_ids=["subnet-pub-a", "subnet-pub-b"],
)
EFS_SG = "models-sg-id"
ROUTER_LOG_GROUP = "/ecs/onnx-ecs-serving/test/logs/log-router"


def service_args(**overrides: Any) -> Callable[[], InferenceServiceArgs]:
    """Args factory (collaborators create resources, so they are built inside the program)."""
    settings = overrides.pop("settings", ServiceSettings())
    placement = overrides.pop("placement", None)

    def build() -> InferenceServiceArgs:
        return InferenceServiceArgs(
            cluster_arn=CLUSTER_ARN,
            cluster_name="inference",
            network=overrides.pop("network", NETWORK),
            image=APP_IMAGE,
            placement=placement or fargate_placement(2048, 4096),
            model_store=EfsModelStore(
                "models",
                EfsModelStoreArgs(vpc_id="vpc-0abc", subnet_ids=["subnet-priv-a", "subnet-priv-b"]),
            ),
            log_router=LogRouter("logs", LogRouterArgs(image=ROUTER_IMAGE)),
            settings=settings,
            **overrides,
        )

    return build


def deploy(
    build: Callable[[], InferenceServiceArgs] | None = None,
) -> tuple[RecordingMocks, dict[str, pulumi.ResourceOptions]]:
    """Run the component under mocks; also capture each child's resource options."""
    options: dict[str, pulumi.ResourceOptions] = {}

    def capture(args: pulumi.ResourceTransformationArgs) -> None:
        options[args.name] = args.opts

    def program() -> None:
        InferenceService(
            "svc",
            (build or service_args())(),
            opts=pulumi.ResourceOptions(transformations=[capture]),
        )

    return run(program), options


def rules_of(mocks: RecordingMocks, type_: str, sg_id: str) -> list[Recorded]:
    return [r for r in mocks.of_type(type_) if r.inputs.get("securityGroupId") == sg_id]


def sg_id(mocks: RecordingMocks, name: str) -> str:
    """The id the mocks give a security group (``<name>-id``), checked to exist."""
    mocks.one("aws:ec2/securityGroup:SecurityGroup", name)
    return f"{name}-id"


def test_children_follow_the_naming_convention() -> None:
    """Every resource the component creates is named ``svc-<role>`` (the collaborators' own
    children keep their names; the EFS rule is named after the service)."""
    mocks, _ = deploy()
    ours = [r.name for r in mocks.resources if not r.name.startswith(("models", "logs"))]
    assert ours and all(n == "svc" or n.startswith("svc-") for n in ours), ours
    assert "models-nfs-from-svc-tasks" in [r.name for r in mocks.resources]


# -- task definition -------------------------------------------------------------------------
def test_task_definition_is_awsvpc_with_efs_volume_roles_and_fargate_size() -> None:
    mocks, _ = deploy()
    task = mocks.one("aws:ecs/taskDefinition:TaskDefinition").inputs
    assert task["networkMode"] == "awsvpc"
    assert task["requiresCompatibilities"] == ["FARGATE"]
    assert (task["cpu"], task["memory"]) == ("2048", "4096")
    assert task["runtimePlatform"] == {
        "operatingSystemFamily": "LINUX",
        "cpuArchitecture": "X86_64",
    }
    models = next(v for v in task["volumes"] if v["name"] == "models")
    assert models["efsVolumeConfiguration"]["transitEncryption"] == "ENABLED"
    assert task["taskRoleArn"].endswith(":svc-task-role")
    assert task["executionRoleArn"].endswith(":svc-execution-role")
    assert task["family"] == "svc"


def test_app_container_port_models_user_stop_timeout_health_and_logs() -> None:
    mocks, _ = deploy()
    app = containers(mocks)["app"]
    assert app["image"] == APP_IMAGE
    assert app["essential"] is True
    assert app["portMappings"] == [
        {"containerPort": 8000, "protocol": "tcp", "name": "http", "appProtocol": "http"}
    ]
    assert {"sourceVolume": "models", "containerPath": "/models", "readOnly": True} in app[
        "mountPoints"
    ]
    assert app["user"] == "10001:10001"
    assert app["stopTimeout"] == 30
    check = app["healthCheck"]
    assert check["command"][:2] == ["CMD", "python"]
    assert "http://127.0.0.1:8000/health" in check["command"][-1]
    assert (check["interval"], check["timeout"], check["retries"], check["startPeriod"]) == (
        10,
        5,
        3,
        60,
    )
    assert app["logConfiguration"] == {"logDriver": "awsfirelens"}
    assert app["dependsOn"] == [{"containerName": "log-router", "condition": "START"}]
    assert app["linuxParameters"] == {"initProcessEnabled": True}
    env = {e["name"]: e["value"] for e in app["environment"]}
    assert env["MODEL_DIR"] == "/models"
    assert env["PORT"] == "8000"
    assert env["GRACEFUL_SHUTDOWN_S"] == "25"
    assert env["LOG_LEVEL"] == "INFO"
    assert env["EXECUTION_PROVIDER"] == "cpu"


@pytest.mark.parametrize(("status", "healthy"), [(200, True), (503, False), (None, False)])
def test_health_check_command_probes_health_without_curl(status: int | None, healthy: bool) -> None:
    """Run the container's python one-liner against a local /health answering ``status``
    (None: nothing listens); only a 200 may exit 0."""
    import http.server
    import socket
    import subprocess
    import sys
    import threading

    from components.ecs_service import HEALTH_COMMAND

    class Health(http.server.BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            self.send_response(status if self.path == "/health" else 404)
            self.end_headers()

        def log_message(self, *args: Any) -> None:
            pass

    server = None
    if status is None:
        with socket.socket() as probe:
            probe.bind(("127.0.0.1", 0))
            port = probe.getsockname()[1]
    else:
        server = http.server.HTTPServer(("127.0.0.1", 0), Health)
        port = server.server_address[1]
        threading.Thread(target=server.serve_forever, daemon=True).start()
    assert HEALTH_COMMAND[:3] == ["CMD", "python", "-c"]
    script = HEALTH_COMMAND[3].replace(":8000/", f":{port}/")
    try:
        result = subprocess.run(
            [sys.executable, "-c", script], capture_output=True, timeout=20, check=False
        )
    finally:
        if server is not None:
            server.shutdown()
    assert (result.returncode == 0) is healthy


def test_log_router_sidecar_is_in_the_task_and_definitions_match_ecs_api() -> None:
    mocks, _ = deploy()
    defs = containers(mocks)
    assert set(defs) == {"app", "log-router"}
    assert defs["log-router"]["firelensConfiguration"]["type"] == "fluentbit"
    assert_valid_container_definitions(list(defs.values()))


def test_environment_overrides_and_extra_variables() -> None:
    settings = ServiceSettings(environment={"ORT_INTRA_OP_THREADS": "2"}, log_level="debug")
    mocks, _ = deploy(service_args(settings=settings))
    env = {e["name"]: e["value"] for e in containers(mocks)["app"]["environment"]}
    assert env["ORT_INTRA_OP_THREADS"] == "2"
    assert env["LOG_LEVEL"] == "DEBUG"


def test_root_filesystem_writable_only_for_ecs_exec() -> None:
    mocks, _ = deploy()
    assert containers(mocks)["app"]["readonlyRootFilesystem"] is False

    mocks, _ = deploy(service_args(settings=ServiceSettings(enable_execute_command=False)))
    app = containers(mocks)["app"]
    assert app["readonlyRootFilesystem"] is True
    assert {"sourceVolume": "tmp", "containerPath": "/tmp", "readOnly": False} in app["mountPoints"]
    volumes = mocks.one("aws:ecs/taskDefinition:TaskDefinition").inputs["volumes"]
    assert {"name": "tmp"} in volumes
    assert mocks.one("aws:ecs/service:Service").inputs["enableExecuteCommand"] is False


# -- ECS service --------------------------------------------------------------------------
def test_service_deployment_network_and_load_balancer() -> None:
    mocks, options = deploy()
    svc = mocks.one("aws:ecs/service:Service").inputs
    assert svc["cluster"] == CLUSTER_ARN
    assert svc["launchType"] == "FARGATE"
    assert svc["platformVersion"] == "LATEST"
    assert svc["deploymentCircuitBreaker"] == {"enable": True, "rollback": True}
    assert svc["deploymentMinimumHealthyPercent"] == 100
    assert svc["deploymentMaximumPercent"] == 200
    assert svc["healthCheckGracePeriodSeconds"] == 60
    assert svc["enableExecuteCommand"] is True
    assert svc["propagateTags"] == "SERVICE"
    assert svc["desiredCount"] == 3
    net = svc["networkConfiguration"]
    assert net["subnets"] == ["subnet-priv-a", "subnet-priv-b"]
    assert net["assignPublicIp"] is False
    assert net["securityGroups"] == [sg_id(mocks, "svc-task-sg")]
    assert svc["loadBalancers"] == [
        {
            "targetGroupArn": f"arn:aws:lb:us-east-1:{ACCOUNT}:svc-tg",
            "containerName": "app",
            "containerPort": 8000,
        }
    ]
    assert options["svc-service"].ignore_changes == ["desiredCount"]


def test_task_definition_changes_can_be_left_to_deployments() -> None:
    settings = ServiceSettings(ignore_task_definition_changes=True)
    _, options = deploy(service_args(settings=settings))
    assert options["svc-service"].ignore_changes == ["desiredCount", "taskDefinition"]


def test_without_autoscaling_desired_count_is_managed_and_no_scaling_resources() -> None:
    settings = ServiceSettings(autoscaling=None, desired_count=2)
    mocks, options = deploy(service_args(settings=settings))
    assert not options["svc-service"].ignore_changes
    assert mocks.of_type("aws:appautoscaling/target:Target") == []
    assert mocks.one("aws:ecs/service:Service").inputs["desiredCount"] == 2


def test_gpu_placement_uses_capacity_provider_gpu_and_distinct_instance() -> None:
    gpu = Placement(
        requires_compatibilities=("EC2",),
        capacity_provider_strategies=(
            aws.ecs.ServiceCapacityProviderStrategyArgs(capacity_provider="gpu-cp", weight=1),
        ),
        task_cpu="4096",
        task_memory="15000",
        resource_requirements=({"type": "GPU", "value": "1"},),
        environment={"NVIDIA_DRIVER_CAPABILITIES": "all", "EXECUTION_PROVIDER": "cuda"},
        placement_constraints=(aws.ecs.ServicePlacementConstraintArgs(type="distinctInstance"),),
    )
    mocks, _ = deploy(service_args(placement=gpu))
    svc = mocks.one("aws:ecs/service:Service").inputs
    assert "launchType" not in svc
    assert svc["capacityProviderStrategies"] == [{"capacityProvider": "gpu-cp", "weight": 1}]
    assert svc["placementConstraints"] == [{"type": "distinctInstance"}]
    task = mocks.one("aws:ecs/taskDefinition:TaskDefinition").inputs
    assert task["requiresCompatibilities"] == ["EC2"]
    assert task["networkMode"] == "awsvpc"
    app = containers(mocks)["app"]
    assert app["resourceRequirements"] == [{"type": "GPU", "value": "1"}]
    env = {e["name"]: e["value"] for e in app["environment"]}
    assert env["NVIDIA_DRIVER_CAPABILITIES"] == "all"
    assert env["EXECUTION_PROVIDER"] == "cuda"
    assert_valid_container_definitions(list(containers(mocks).values()))


# -- security groups -------------------------------------------------------------------------
def test_tasks_accept_only_the_alb_and_alb_talks_only_to_tasks() -> None:
    mocks, _ = deploy()
    task_sg, alb_sg = sg_id(mocks, "svc-task-sg"), sg_id(mocks, "svc-alb-sg")
    ingress = "aws:vpc/securityGroupIngressRule:SecurityGroupIngressRule"
    egress = "aws:vpc/securityGroupEgressRule:SecurityGroupEgressRule"
    (task_in,) = rules_of(mocks, ingress, task_sg)
    assert task_in.inputs["referencedSecurityGroupId"] == alb_sg
    assert (task_in.inputs["fromPort"], task_in.inputs["toPort"]) == (8000, 8000)
    assert "cidrIpv4" not in task_in.inputs
    (alb_out,) = rules_of(mocks, egress, alb_sg)
    assert alb_out.inputs["referencedSecurityGroupId"] == task_sg
    assert (alb_out.inputs["fromPort"], alb_out.inputs["toPort"]) == (8000, 8000)
    (alb_in,) = rules_of(mocks, ingress, alb_sg)
    assert alb_in.inputs["cidrIpv4"] == "10.20.0.0/16"
    assert (alb_in.inputs["fromPort"], alb_in.inputs["toPort"]) == (80, 80)
    task_out = {r.inputs["fromPort"]: r.inputs for r in rules_of(mocks, egress, task_sg)}
    assert set(task_out) == {443, 2049}
    assert task_out[2049]["referencedSecurityGroupId"] == EFS_SG
    # the model store admits the task security group (and nothing else was asked of it)
    (efs_rule,) = rules_of(mocks, ingress, EFS_SG)
    assert efs_rule.inputs["referencedSecurityGroupId"] == task_sg
    # no security group has inline rules that could open more
    for group in mocks.of_type("aws:ec2/securityGroup:SecurityGroup"):
        assert "ingress" not in group.inputs or group.inputs["ingress"] == []


def test_public_https_alb_opens_listener_ports_to_the_world_only() -> None:
    settings = ServiceSettings(
        load_balancer=LoadBalancerOptions(
            public=True, certificate_arn="arn:aws:acm:us-east-1:123456789012:certificate/c"
        )
    )
    mocks, _ = deploy(service_args(settings=settings))
    alb_sg = sg_id(mocks, "svc-alb-sg")
    ingress = rules_of(mocks, "aws:vpc/securityGroupIngressRule:SecurityGroupIngressRule", alb_sg)
    assert sorted((r.inputs["fromPort"], r.inputs["cidrIpv4"]) for r in ingress) == [
        (80, "0.0.0.0/0"),
        (443, "0.0.0.0/0"),
    ]
    alb = mocks.one("aws:lb/loadBalancer:LoadBalancer").inputs
    assert alb["internal"] is False
    assert alb["subnets"] == ["subnet-pub-a", "subnet-pub-b"]


# -- load balancer --------------------------------------------------------------------------
def test_internal_alb_target_group_and_http_listener() -> None:
    mocks, _ = deploy()
    alb = mocks.one("aws:lb/loadBalancer:LoadBalancer").inputs
    assert alb["internal"] is True
    assert alb["loadBalancerType"] == "application"
    assert alb["subnets"] == ["subnet-priv-a", "subnet-priv-b"]
    assert alb["dropInvalidHeaderFields"] is True
    assert "accessLogs" not in alb
    assert alb["idleTimeout"] == 60
    assert alb["enableDeletionProtection"] is False
    tg = mocks.one("aws:lb/targetGroup:TargetGroup").inputs
    assert (tg["targetType"], tg["port"], tg["protocol"], tg["vpcId"]) == (
        "ip",
        8000,
        "HTTP",
        "vpc-0abc",
    )
    assert tg["deregistrationDelay"] == 60
    hc = tg["healthCheck"]
    assert (hc["path"], hc["matcher"]) == ("/health", "200")
    assert (hc["interval"], hc["timeout"]) == (5, 2)
    assert (hc["healthyThreshold"], hc["unhealthyThreshold"]) == (5, 2)
    (listener,) = mocks.of_type("aws:lb/listener:Listener")
    assert (listener.inputs["port"], listener.inputs["protocol"]) == (80, "HTTP")
    assert listener.inputs["defaultActions"][0]["type"] == "forward"


def test_health_check_and_access_logs_are_configurable() -> None:
    settings = ServiceSettings(
        health_check=HealthCheck(
            interval_s=10,
            timeout_s=4,
            healthy_threshold=3,
            unhealthy_threshold=4,
            deregistration_delay_s=15,
        ),
        load_balancer=LoadBalancerOptions(access_logs_bucket="alb-logs", access_logs_prefix="x"),
    )
    mocks, _ = deploy(service_args(settings=settings))
    tg = mocks.one("aws:lb/targetGroup:TargetGroup").inputs
    hc = tg["healthCheck"]
    assert (hc["interval"], hc["timeout"], hc["healthyThreshold"], hc["unhealthyThreshold"]) == (
        10,
        4,
        3,
        4,
    )
    assert tg["deregistrationDelay"] == 15
    alb = mocks.one("aws:lb/loadBalancer:LoadBalancer").inputs
    assert alb["accessLogs"] == {"bucket": "alb-logs", "prefix": "x", "enabled": True}


def test_certificate_adds_https_listener_and_http_redirect() -> None:
    cert = "arn:aws:acm:us-east-1:123456789012:certificate/c"
    settings = ServiceSettings(load_balancer=LoadBalancerOptions(certificate_arn=cert))
    mocks, _ = deploy(service_args(settings=settings))
    https = mocks.one("aws:lb/listener:Listener", "svc-https").inputs
    assert (https["port"], https["protocol"], https["certificateArn"]) == (443, "HTTPS", cert)
    assert https["sslPolicy"] == "ELBSecurityPolicy-TLS13-1-2-2021-06"
    assert https["defaultActions"][0]["type"] == "forward"
    http = mocks.one("aws:lb/listener:Listener", "svc-http").inputs
    assert http["defaultActions"][0]["type"] == "redirect"
    assert http["defaultActions"][0]["redirect"] == {
        "port": "443",
        "protocol": "HTTPS",
        "statusCode": "HTTP_301",
    }
    alb_sg = sg_id(mocks, "svc-alb-sg")
    ingress = rules_of(mocks, "aws:vpc/securityGroupIngressRule:SecurityGroupIngressRule", alb_sg)
    assert sorted(r.inputs["fromPort"] for r in ingress) == [80, 443]
    assert {r.inputs["cidrIpv4"] for r in ingress} == {"10.20.0.0/16"}


# -- autoscaling -----------------------------------------------------------------------------
def test_target_tracking_on_cpu_and_requests_per_target() -> None:
    settings = ServiceSettings(
        desired_count=2, autoscaling=Autoscaling(min_count=2, max_count=8, cpu_target_percent=55)
    )
    mocks, _ = deploy(service_args(settings=settings))
    target = mocks.one("aws:appautoscaling/target:Target").inputs
    assert target["resourceId"] == "service/inference/svc-service"
    assert target["scalableDimension"] == "ecs:service:DesiredCount"
    assert target["serviceNamespace"] == "ecs"
    assert (target["minCapacity"], target["maxCapacity"]) == (2, 8)
    policies = {p.name: p.inputs for p in mocks.of_type("aws:appautoscaling/policy:Policy")}
    cpu = policies["svc-scale-cpu"]["targetTrackingScalingPolicyConfiguration"]
    assert cpu["predefinedMetricSpecification"]["predefinedMetricType"] == (
        "ECSServiceAverageCPUUtilization"
    )
    assert cpu["targetValue"] == 55
    requests = policies["svc-scale-requests"]["targetTrackingScalingPolicyConfiguration"]
    spec = requests["predefinedMetricSpecification"]
    assert spec["predefinedMetricType"] == "ALBRequestCountPerTarget"
    assert spec["resourceLabel"] == "app/svc-alb/0123456789/targetgroup/svc-tg/0123456789"
    assert requests["targetValue"] == 200
    for policy in (cpu, requests):
        assert policy["scaleInCooldown"] > policy["scaleOutCooldown"]
    for p in policies.values():
        assert p["policyType"] == "TargetTrackingScaling"
        assert p["resourceId"] == "service/inference/svc-service"


def test_requests_policy_can_be_turned_off() -> None:
    settings = ServiceSettings(autoscaling=Autoscaling(requests_per_target=None))
    mocks, _ = deploy(service_args(settings=settings))
    names = [p.name for p in mocks.of_type("aws:appautoscaling/policy:Policy")]
    assert names == ["svc-scale-cpu"]


# -- IAM ----------------------------------------------------------------------------------------
def test_task_role_has_efs_log_router_and_ecs_exec_statements_only() -> None:
    mocks, _ = deploy()
    task_statements = policy_statements(mocks, ROLE_POLICY, "svc-task-policy")
    sids = by_sid(task_statements)
    efs = sids["ModelStoreRead"]
    assert efs["Action"] == ["elasticfilesystem:ClientMount"]  # read-only: no ClientWrite
    assert efs["Resource"] == f"arn:aws:efs:us-east-1:{ACCOUNT}:models-fs"
    assert {"LogRouterErrorLogGroup", "LogRouterArchive"} <= set(sids)
    exec_stmt = next(s for s in task_statements if s.get("Sid") == "EcsExec")
    assert sorted(exec_stmt["Action"]) == [
        "ssmmessages:CreateControlChannel",
        "ssmmessages:CreateDataChannel",
        "ssmmessages:OpenControlChannel",
        "ssmmessages:OpenDataChannel",
    ]
    assert len(task_statements) == 4
    role = json.loads(mocks.one("aws:iam/role:Role", "svc-task-role").inputs["assumeRolePolicy"])
    (trust,) = role["Statement"]
    assert trust["Principal"] == {"Service": "ecs-tasks.amazonaws.com"}
    assert trust["Condition"]["StringEquals"] == {"aws:SourceAccount": ACCOUNT}
    assert trust["Condition"]["ArnLike"] == {"aws:SourceArn": f"arn:aws:ecs:us-east-1:{ACCOUNT}:*"}


def test_no_ecs_exec_permissions_without_ecs_exec() -> None:
    mocks, _ = deploy(service_args(settings=ServiceSettings(enable_execute_command=False)))
    actions = json.dumps(policy_statements(mocks, ROLE_POLICY, "svc-task-policy"))
    assert "ssmmessages" not in actions


def test_execution_role_pulls_only_used_repositories_and_writes_router_logs() -> None:
    mocks, _ = deploy()
    execution = by_sid(policy_statements(mocks, ROLE_POLICY, "svc-execution-policy"))
    assert execution["EcrPull"]["Resource"] == [
        f"arn:aws:ecr:us-east-1:{ACCOUNT}:repository/log-router",
        f"arn:aws:ecr:us-east-1:{ACCOUNT}:repository/onnx-service",
    ]
    assert execution["RouterLogs"]["Resource"] == (
        f"arn:aws:logs:us-east-1:{ACCOUNT}:log-group:{ROUTER_LOG_GROUP}:*"
    )
    assert execution["EcrAuth"]["Action"] == "ecr:GetAuthorizationToken"
    role = mocks.one("aws:iam/role:Role", "svc-execution-role").inputs
    (trust,) = json.loads(role["assumeRolePolicy"])["Statement"]
    assert trust["Principal"] == {"Service": "ecs-tasks.amazonaws.com"}
    assert trust["Condition"] == {"StringEquals": {"aws:SourceAccount": ACCOUNT}}


def test_ecr_repository_arn_parsing() -> None:
    assert ecr_repository_arn(f"{ACCOUNT}.dkr.ecr.eu-west-1.amazonaws.com/a/b:1") == (
        f"arn:aws:ecr:eu-west-1:{ACCOUNT}:repository/a/b"
    )
    assert ecr_repository_arn(f"{ACCOUNT}.dkr.ecr.eu-west-1.amazonaws.com/r@sha256:00") == (
        f"arn:aws:ecr:eu-west-1:{ACCOUNT}:repository/r"
    )
    assert ecr_repository_arn(f"{ACCOUNT}.dkr.ecr.cn-north-1.amazonaws.com.cn/r:1") == (
        f"arn:aws-cn:ecr:cn-north-1:{ACCOUNT}:repository/r"
    )
    assert ecr_repository_arn("public.ecr.aws/aws-observability/aws-for-fluent-bit:2") is None


# -- notifications -------------------------------------------------------------------------
def test_notifications_topic_rules_and_policy() -> None:
    mocks, _ = deploy()
    topic = mocks.one("aws:sns/topic:Topic")
    key = mocks.one("aws:kms/key:Key")
    assert topic.inputs["kmsMasterKeyId"] == f"arn:aws:kms:us-east-1:{ACCOUNT}:{key.name}"
    assert key.inputs["enableKeyRotation"] is True
    key_statements = policy_statements(mocks, "aws:kms/key:Key")
    events = next(s for s in key_statements if s["Sid"].startswith("EventBridge"))
    assert set(events["Action"]) == {"kms:GenerateDataKey*", "kms:Decrypt"}
    assert "Condition" not in events  # SNS guide: no source conditions for EventBridge
    assert mocks.of_type("aws:sns/topicSubscription:TopicSubscription") == []

    rules = {
        r.name: json.loads(r.inputs["eventPattern"])
        for r in mocks.of_type("aws:cloudwatch/eventRule:EventRule")
    }
    service_arn = f"arn:aws:ecs:us-east-1:{ACCOUNT}:svc-service"
    assert rules["svc-notify-deployment-failed"] == {
        "source": ["aws.ecs"],
        "detail-type": ["ECS Deployment State Change"],
        "resources": [service_arn],
        "detail": {"eventName": ["SERVICE_DEPLOYMENT_FAILED"]},
    }
    assert rules["svc-notify-task-failed"] == {
        "source": ["aws.ecs"],
        "detail-type": ["ECS Task State Change"],
        "detail": {
            "clusterArn": [CLUSTER_ARN],
            "group": ["service:svc-service"],
            "lastStatus": ["STOPPED"],
            "containers": {"exitCode": [{"anything-but": 0}]},
        },
    }
    topic_arn = f"arn:aws:sns:us-east-1:{ACCOUNT}:svc-notify-topic"
    targets = mocks.of_type("aws:cloudwatch/eventTarget:EventTarget")
    assert sorted(t.inputs["rule"] for t in targets) == [
        "svc-notify-deployment-failed",
        "svc-notify-task-failed",
        "svc-notify-task-unhealthy",
    ]
    assert {t.inputs["arn"] for t in targets} == {topic_arn}
    statement = next(
        s
        for s in policy_statements(mocks, "aws:sns/topicPolicy:TopicPolicy")
        if s["Sid"] == "EventBridgeRulesPublish"
    )
    assert statement["Principal"] == {"Service": "events.amazonaws.com"}
    assert statement["Action"] == "sns:Publish"
    assert statement["Resource"] == topic_arn
    assert sorted(statement["Condition"]["ArnEquals"]["aws:SourceArn"]) == [
        f"arn:aws:cloudwatch:us-east-1:{ACCOUNT}:svc-notify-deployment-failed",
        f"arn:aws:cloudwatch:us-east-1:{ACCOUNT}:svc-notify-task-failed",
        f"arn:aws:cloudwatch:us-east-1:{ACCOUNT}:svc-notify-task-unhealthy",
    ]


def test_email_subscription_when_configured() -> None:
    settings = ServiceSettings(notification_email="oncall@example.com")
    mocks, _ = deploy(service_args(settings=settings))
    sub = mocks.one("aws:sns/topicSubscription:TopicSubscription").inputs
    assert (sub["protocol"], sub["endpoint"]) == ("email", "oncall@example.com")


# -- validation (raised before any resource exists) -----------------------------------------
@pytest.mark.parametrize(
    ("settings", "message"),
    [
        (ServiceSettings(stop_timeout_s=121), "stop timeout 121s: use 2-120"),
        (ServiceSettings(stop_timeout_s=20, graceful_shutdown_s=25), "longer than the graceful"),
        (ServiceSettings(health_check=HealthCheck(interval_s=5, timeout_s=5)), "less than the"),
        (ServiceSettings(health_check=HealthCheck(interval_s=3)), "interval 3s"),
        (ServiceSettings(health_check=HealthCheck(healthy_threshold=11)), "healthy threshold 11"),
        (ServiceSettings(health_check=HealthCheck(deregistration_delay_s=4000)), "4000s"),
        (ServiceSettings(autoscaling=Autoscaling(min_count=5, max_count=2)), "min 5 / max 2"),
        (ServiceSettings(desired_count=9), "desired count 9 is outside"),
        (
            ServiceSettings(autoscaling=Autoscaling(scale_in_cooldown_s=60)),
            "scale-in cooldown 60s must be longer",
        ),
        (ServiceSettings(autoscaling=Autoscaling(cpu_target_percent=0)), "CPU target 0"),
        (
            ServiceSettings(readonly_root_filesystem=True, enable_execute_command=True),
            "ECS Exec",
        ),
        (ServiceSettings(log_level="verbose"), "log level 'verbose'"),
        (ServiceSettings(health_check_grace_period_s=-1), "grace period -1s"),
        (ServiceSettings(health_check=HealthCheck(unhealthy_threshold=1)), "unhealthy threshold 1"),
        (
            ServiceSettings(container_health_check=ContainerHealthCheck(timeout_s=90)),
            "container health check",
        ),
        (
            ServiceSettings(container_health_check=ContainerHealthCheck(start_period_s=400)),
            "start period 0-300",
        ),
        (
            ServiceSettings(autoscaling=Autoscaling(requests_per_target=0)),
            "requests per target 0",
        ),
        (ServiceSettings(autoscaling=None, desired_count=-1), "desired count -1: must be >= 0"),
        (
            ServiceSettings(load_balancer=LoadBalancerOptions(idle_timeout_s=0)),
            "ALB idle timeout 0s",
        ),
    ],
)
def test_invalid_settings_fail_before_any_resource(settings: ServiceSettings, message: str) -> None:
    with pytest.raises(ValueError, match=re.escape(message)) as err:
        deploy(service_args(settings=settings))
    assert message in str(err.value)


def test_public_alb_without_public_subnets_fails() -> None:
    settings = ServiceSettings(load_balancer=LoadBalancerOptions(public=True))
    network = replace(NETWORK, public_subnet_ids=None)
    with pytest.raises(ValueError, match="public_subnet_ids"):
        deploy(service_args(settings=settings, network=network))


@pytest.mark.parametrize(
    "kwargs",
    [
        {"requires_compatibilities": ("FARGATE",)},
        {
            "requires_compatibilities": ("EC2",),
            "launch_type": "EC2",
            "capacity_provider_strategies": (
                aws.ecs.ServiceCapacityProviderStrategyArgs(capacity_provider="cp"),
            ),
        },
        {"requires_compatibilities": ("LAMBDA",), "launch_type": "FARGATE"},
    ],
)
def test_placement_needs_one_capacity_choice_and_known_compatibility(kwargs: dict) -> None:
    with pytest.raises(ValueError, match=r"Placement needs exactly one|requires_compatibilities"):
        Placement(**kwargs)
