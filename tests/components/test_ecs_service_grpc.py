"""gRPC through the load balancer: with a certificate, a gRPC target group behind the HTTPS
listener, and the gRPC port open between ALB and tasks only; without one, none of it.

AWS requirements encoded here (Elastic Load Balancing, Application Load Balancers guide):
- "Target groups for your Application Load Balancers", section *Protocol version*: a target
  group's protocol version is HTTP1, HTTP2 or GRPC; gRPC is supported only with HTTPS listeners,
  and a gRPC request routed to an HTTP/1.1 target group fails, so gRPC needs its own target group
  (https://docs.aws.amazon.com/elasticloadbalancing/latest/application/load-balancer-target-groups.html).
- "Health checks for Application Load Balancer target groups", *Health check settings*:
  HealthCheckPath for protocol version GRPC is the path of a gRPC method,
  ``/package.service/method`` (default ``/AWS.ALB/healthcheck``), and the Matcher holds gRPC codes
  (https://docs.aws.amazon.com/elasticloadbalancing/latest/application/target-group-health-checks.html).
- Elastic Load Balancing API reference, *Matcher*: ``GrpcCode`` takes values 0-99, default 12
  (https://docs.aws.amazon.com/elasticloadbalancing/latest/APIReference/API_Matcher.html).
  Code 12 (UNIMPLEMENTED) is what any gRPC server answers to the default path, so it proves
  nothing; the check here calls ``/grpc.health.v1.Health/Check`` and accepts only 0 (OK), which
  the service answers only while it is ready.
"""

from __future__ import annotations

from components.ecs_service import LoadBalancerOptions, ServiceSettings
from tests.components.helpers import containers
from tests.components.test_ecs_service import deploy, rules_of, service_args, sg_id
from tests.pulumi_mocks import ACCOUNT

CERT = "arn:aws:acm:us-east-1:123456789012:certificate/c"
INGRESS = "aws:vpc/securityGroupIngressRule:SecurityGroupIngressRule"
EGRESS = "aws:vpc/securityGroupEgressRule:SecurityGroupEgressRule"


def _with_certificate(public: bool = False) -> ServiceSettings:
    return ServiceSettings(load_balancer=LoadBalancerOptions(certificate_arn=CERT, public=public))


def test_certificate_adds_grpc_target_group_with_grpc_health_check() -> None:
    mocks, _ = deploy(service_args(settings=_with_certificate()))
    tg = mocks.one("aws:lb/targetGroup:TargetGroup", "svc-grpc-tg").inputs
    assert (tg["targetType"], tg["port"], tg["protocol"], tg["protocolVersion"]) == (
        "ip",
        8001,
        "HTTP",
        "GRPC",
    )
    hc = tg["healthCheck"]
    assert hc["path"] == "/grpc.health.v1.Health/Check"
    assert hc["matcher"] == "0"
    assert hc["port"] == "traffic-port"
    http_tg = mocks.one("aws:lb/targetGroup:TargetGroup", "svc-tg").inputs
    assert "protocolVersion" not in http_tg  # HTTP/1.1, as before


def test_https_listener_routes_grpc_paths_to_the_grpc_target_group() -> None:
    mocks, _ = deploy(service_args(settings=_with_certificate()))
    rule = mocks.one("aws:lb/listenerRule:ListenerRule", "svc-grpc-rule").inputs
    assert rule["listenerArn"] == f"arn:aws:lb:us-east-1:{ACCOUNT}:svc-https"
    assert rule["conditions"] == [
        {
            "pathPattern": {
                "values": ["/inference.GRPCInferenceService/*", "/grpc.health.v1.Health/*"]
            }
        }
    ]
    assert rule["actions"] == [
        {"type": "forward", "targetGroupArn": f"arn:aws:lb:us-east-1:{ACCOUNT}:svc-grpc-tg"}
    ]
    # The plain-HTTP listener only redirects to HTTPS: no gRPC target group behind it.
    http = mocks.one("aws:lb/listener:Listener", "svc-http").inputs
    assert http["defaultActions"][0]["type"] == "redirect"


def test_service_registers_the_grpc_port_and_the_task_maps_it() -> None:
    """ECS rejects a service whose target group is not yet used by a listener of a load balancer
    ("The target group ... does not have an associated load balancer"), so the service is
    created after the listener rule that puts the gRPC target group behind the ALB."""
    mocks, options = deploy(service_args(settings=_with_certificate()))
    depends = options["svc-service"].depends_on
    assert "svc-grpc-rule" in {r._name for r in depends}  # type: ignore[union-attr]
    svc = mocks.one("aws:ecs/service:Service").inputs
    assert svc["loadBalancers"] == [
        {
            "targetGroupArn": f"arn:aws:lb:us-east-1:{ACCOUNT}:svc-tg",
            "containerName": "app",
            "containerPort": 8000,
        },
        {
            "targetGroupArn": f"arn:aws:lb:us-east-1:{ACCOUNT}:svc-grpc-tg",
            "containerName": "app",
            "containerPort": 8001,
        },
    ]
    app = containers(mocks)["app"]
    assert {"containerPort": 8001, "protocol": "tcp", "name": "grpc", "appProtocol": "grpc"} in app[
        "portMappings"
    ]
    env = {e["name"]: e["value"] for e in app["environment"]}
    assert env["GRPC_PORT"] == "8001"


def test_grpc_port_open_between_alb_and_tasks_only() -> None:
    mocks, _ = deploy(service_args(settings=_with_certificate(public=True)))
    task_sg, alb_sg = sg_id(mocks, "svc-task-sg"), sg_id(mocks, "svc-alb-sg")
    task_in = {r.inputs["fromPort"]: r.inputs for r in rules_of(mocks, INGRESS, task_sg)}
    assert set(task_in) == {8000, 8001}
    assert task_in[8001]["referencedSecurityGroupId"] == alb_sg
    assert "cidrIpv4" not in task_in[8001]
    alb_out = {r.inputs["fromPort"]: r.inputs for r in rules_of(mocks, EGRESS, alb_sg)}
    assert set(alb_out) == {8000, 8001}
    assert alb_out[8001]["referencedSecurityGroupId"] == task_sg
    # The world reaches the ALB's listener ports only; gRPC rides on 443.
    world = [r.inputs["fromPort"] for r in rules_of(mocks, INGRESS, alb_sg)]
    assert sorted(world) == [80, 443]


def test_without_certificate_no_grpc_resources() -> None:
    mocks, _ = deploy()
    assert [r.name for r in mocks.of_type("aws:lb/targetGroup:TargetGroup")] == ["svc-tg"]
    assert mocks.of_type("aws:lb/listenerRule:ListenerRule") == []
    svc = mocks.one("aws:ecs/service:Service").inputs
    assert [lb["containerPort"] for lb in svc["loadBalancers"]] == [8000]
    app = containers(mocks)["app"]
    assert [p["containerPort"] for p in app["portMappings"]] == [8000]
    task_sg = sg_id(mocks, "svc-task-sg")
    assert [r.inputs["fromPort"] for r in rules_of(mocks, INGRESS, task_sg)] == [8000]
