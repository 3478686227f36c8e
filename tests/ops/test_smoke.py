"""``python -m ops smoke``: the probe against a live local service, the launcher against stubbed
ECS and CloudWatch Logs clients.

The probe runs as it does in the VPC (same code, only the URL differs): readiness, then per
model its metadata, zeros of each input's datatype and shape (dynamic dimensions as 1), one
inference, every listed output present. Exit codes as documented in ops/smoke.py and
docs/operations.md.

AWS behaviour encoded (cited): Amazon ECS Developer Guide, "Using the awslogs log driver"
(https://docs.aws.amazon.com/AmazonECS/latest/developerguide/using_awslogs.html): with
``awslogs-stream-prefix`` the stream of a container is ``prefix-name/container-name/ecs-task-id``,
which is where the launcher reads the probe's report; RunTask ``failures`` and stopped tasks as
in tests/components/test_model_publish.py.
"""

from __future__ import annotations

import io
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import boto3
import numpy as np
import onnx
import pytest
from botocore.stub import ANY, Stubber
from onnx import TensorProto, helper, numpy_helper

from ops.__main__ import main as ops_main
from ops.smoke import EXIT_PROBE_DID_NOT_RUN, main
from ops.smoke_probe import zeros_for
from service.demo_model import write_demo_repository
from tests.ops.test_run_task import CLUSTER, SG, SUBNETS, TASK_ARN, TASK_ID, FakeClock, task
from tests.service.conftest import settings_for
from tests.service.helpers import free_port, serving, write_model


def any_shape_model() -> onnx.ModelProto:
    """y = x * 2 with every dimension dynamic (``[n, f]``)."""
    graph = helper.make_graph(
        [helper.make_node("Mul", ["x", "k"], ["y"])],
        "any_shape",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["n", "f"])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["n", "f"])],
        initializer=[numpy_helper.from_array(np.array([2.0], dtype=np.float32), "k")],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 9
    return model


def broken_model() -> onnx.ModelProto:
    """Loads, but every run fails: a [n, 4] input cannot be reshaped to [3]."""
    graph = helper.make_graph(
        [helper.make_node("Reshape", ["x", "shape"], ["y"])],
        "broken",
        [helper.make_tensor_value_info("x", TensorProto.INT64, ["n", 4])],
        [helper.make_tensor_value_info("y", TensorProto.INT64, None)],
        initializer=[numpy_helper.from_array(np.array([3], dtype=np.int64), "shape")],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 9
    return model


@pytest.fixture(scope="module")
def repo(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("smoke-repo")
    write_demo_repository(root)
    write_model(root / "any_shape" / "1" / "model.onnx", any_shape_model())
    return root


@pytest.fixture(scope="module")
def good_server(repo: Path) -> Iterator[str]:
    with serving(settings_for(repo)) as server:
        yield server.base


def probe(*argv: str) -> tuple[int, str]:
    out = io.StringIO()
    code = main(["--direct", *argv], out=out)
    return code, out.getvalue()


def test_good_models_answer_with_latency(good_server: str, repo: Path) -> None:
    code, report = probe("--url", good_server, "--model-dir", str(repo))
    assert code == 0, report
    lines = report.splitlines()
    assert lines[0] == f"ok   service at {good_server} is ready"
    demo = next(line for line in lines if " recommender " in line)
    assert demo.startswith("ok   recommender")
    assert " ms  version 1: score[1, 1] FP32, logit[1, 1] FP32" in demo
    dynamic = next(line for line in lines if " any_shape " in line)
    assert "version 1: y[1, 1] FP32" in dynamic  # both dynamic dims sent as 1
    assert lines[-1] == "2/2 models answered"


def test_zeros_follow_datatype_and_shape() -> None:
    assert zeros_for({"name": "a", "datatype": "INT64", "shape": [-1, 3]}) == {
        "name": "a",
        "datatype": "INT64",
        "shape": [1, 3],
        "data": [0, 0, 0],
    }
    assert zeros_for({"name": "b", "datatype": "BOOL", "shape": [2]})["data"] == [False, False]
    assert zeros_for({"name": "c", "datatype": "BYTES", "shape": [-1]})["data"] == [""]


def test_a_model_that_fails_to_infer_fails_the_smoke(tmp_path: Path) -> None:
    root = tmp_path / "models"
    write_demo_repository(root)
    write_model(root / "broken" / "1" / "model.onnx", broken_model())
    # without warm-up the broken model loads (its warm-up run would fail) and is served
    with serving(settings_for(root, warmup=False)) as server:
        code, report = probe("--url", server.base, "--model-dir", str(root))
    assert code == 4, report
    broken = next(line for line in report.splitlines() if " broken " in line)
    assert broken.startswith("FAIL broken")
    assert "infer: HTTP" in broken
    assert any(line.startswith("ok   recommender") for line in report.splitlines())
    assert report.splitlines()[-1] == "1/2 models answered"


def test_a_published_model_that_is_not_ready_fails(good_server: str) -> None:
    code, report = probe("--url", good_server, "--model", "recommender", "--model", "missing")
    assert code == 5, report
    assert "FAIL missing" in report and "not ready (HTTP 404)" in report


def test_an_unready_service_fails_with_3(tmp_path: Path) -> None:
    empty = tmp_path / "empty"
    empty.mkdir()
    with serving(settings_for(empty), wait_ready=False) as server:
        code, report = probe("--url", server.base, "--model", "recommender", "--ready-timeout", "1")
    assert code == 3, report
    assert "not ready after 1s (HTTP 503 on /v2/health/ready)" in report


def test_an_unreachable_service_fails_with_6() -> None:
    url = f"http://127.0.0.1:{free_port()}"
    code, report = probe("--url", url, "--model", "recommender", "--ready-timeout", "0")
    assert code == 6, report
    assert report.startswith("FAIL service unreachable")


def test_usage_errors() -> None:
    assert probe("--model", "m")[0] == 2  # no URL
    assert probe("--url", "http://x", "--model-dir", "/nonexistent")[0] == 2
    out = io.StringIO()
    assert main([], out=out) == 2  # neither --direct nor stack outputs
    assert "--stack-outputs must hold" in out.getvalue()


# -- the launcher: a one-off task inside the VPC -----------------------------------------------
OUTPUTS = {
    "url": "http://internal-onnx-dev-alb.elb.amazonaws.com",
    "clusterName": CLUSTER,
    "privateSubnetIds": SUBNETS,
    "smokeTaskDefinitionArn": "arn:aws:ecs:eu-west-1:123456789012:task-definition/onnx-dev-smoke:3",
    "smokeSecurityGroupId": SG,
    "smokeLogGroupName": "onnx-dev-smoke-logs",
}


@pytest.fixture
def clients() -> Iterator[tuple[Any, Stubber, Any, Stubber]]:
    kw = {"region_name": "eu-west-1", "aws_access_key_id": "t", "aws_secret_access_key": "t"}
    ecs, logs = boto3.client("ecs", **kw), boto3.client("logs", **kw)
    with Stubber(ecs) as ecs_stub, Stubber(logs) as logs_stub:
        yield ecs, ecs_stub, logs, logs_stub
        ecs_stub.assert_no_pending_responses()
        logs_stub.assert_no_pending_responses()


def launch(tmp_path: Path, ecs: Any, logs: Any, *argv: str) -> tuple[int, str]:
    path = tmp_path / "outputs.json"
    path.write_text(json.dumps(OUTPUTS))
    clock = FakeClock()
    out = io.StringIO()
    code = main(
        ["--stack-outputs", str(path), *argv],
        ecs=ecs,
        logs=logs,
        out=out,
        sleep=clock.sleep,
        clock=clock,
    )
    return code, out.getvalue()


def expect_probe_task(stub: Stubber, exit_code: int, command: list[str]) -> None:
    stub.add_response(
        "run_task",
        {"tasks": [task("PROVISIONING")], "failures": []},
        {
            "cluster": CLUSTER,
            "taskDefinition": OUTPUTS["smokeTaskDefinitionArn"],
            "count": 1,
            "startedBy": "ops-smoke",
            "propagateTags": "TASK_DEFINITION",
            "enableECSManagedTags": True,
            "clientToken": ANY,
            "launchType": "FARGATE",
            "networkConfiguration": {
                "awsvpcConfiguration": {
                    "subnets": SUBNETS,
                    "securityGroups": [SG],
                    "assignPublicIp": "DISABLED",
                }
            },
            "overrides": {"containerOverrides": [{"name": "smoke", "command": command}]},
        },
    )
    stopped = task(
        "STOPPED",
        started=True,
        stopCode="EssentialContainerExited",
        containers=[{"name": "smoke", "lastStatus": "STOPPED", "exitCode": exit_code}],
    )
    stub.add_response(
        "describe_tasks",
        {"tasks": [stopped], "failures": []},
        {"cluster": CLUSTER, "tasks": [TASK_ARN]},
    )


def expect_report(stub: Stubber, *lines: str) -> None:
    stub.add_response(
        "get_log_events",
        {"events": [{"timestamp": 1, "message": line, "ingestionTime": 2} for line in lines]},
        {
            "logGroupName": OUTPUTS["smokeLogGroupName"],
            "logStreamName": f"smoke/smoke/{TASK_ID}",
            "startFromHead": True,
        },
    )


DEFAULT_COMMAND = ["--ready-timeout", "120", "--request-timeout", "30"]


def test_launcher_relays_the_report_and_exit_0(
    tmp_path: Path, clients: tuple[Any, Stubber, Any, Stubber]
) -> None:
    ecs, ecs_stub, logs, logs_stub = clients
    expect_probe_task(ecs_stub, 0, DEFAULT_COMMAND)
    expect_report(logs_stub, "ok   service at http://x is ready", "1/1 models answered")
    code, report = launch(tmp_path, ecs, logs)
    assert code == 0, report
    assert "1/1 models answered" in report


def test_launcher_passes_the_probes_failure_code_through(
    tmp_path: Path, clients: tuple[Any, Stubber, Any, Stubber]
) -> None:
    ecs, ecs_stub, logs, logs_stub = clients
    command = [*DEFAULT_COMMAND, "--model", "recommender"]
    expect_probe_task(ecs_stub, 4, command)
    expect_report(logs_stub, "FAIL recommender  3.0 ms  infer: HTTP 500: boom")
    code, report = launch(tmp_path, ecs, logs, "--model", "recommender")
    assert code == 4, report
    assert "infer: HTTP 500: boom" in report


def test_a_probe_that_cannot_be_placed_is_exit_10(
    tmp_path: Path, clients: tuple[Any, Stubber, Any, Stubber]
) -> None:
    ecs, ecs_stub, logs, _ = clients
    ecs_stub.add_response(
        "run_task",
        {"tasks": [], "failures": [{"reason": "RESOURCE:CPU"}]},
        None,
    )
    code, report = launch(tmp_path, ecs, logs)
    assert code == EXIT_PROBE_DID_NOT_RUN, report
    assert "did not run to the end: RunTask answered 200 but placed no task" in report
    assert "RESOURCE:CPU" in report


def test_ops_entry_point_has_smoke_and_deployment(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit):
        ops_main(["--help"])
    text = capsys.readouterr().out
    assert "smoke" in text and "deployment" in text and "run-task" in text


def test_tls_always_verifies_the_certificate_and_the_host_name_when_it_can_match() -> None:
    from ops.smoke_probe import tls_context

    assert tls_context("http://internal-x.us-east-1.elb.amazonaws.com") is None
    alb = tls_context("https://internal-x-123.us-east-1.elb.amazonaws.com")
    assert alb is not None and alb.verify_mode.name == "CERT_REQUIRED"
    assert alb.check_hostname is False  # the ACM certificate names your domain, not the ALB
    own = tls_context("https://models.example.com")
    assert own is not None and own.check_hostname is True


def test_a_service_scaled_to_zero_is_exit_7_with_its_schedule_and_no_probe(
    tmp_path: Path, clients: tuple[Any, Stubber, Any, Stubber]
) -> None:
    """Off-hours set the desired count to 0 (Application Auto Scaling scheduled actions, "Scale
    your service using scheduled scaling", Amazon ECS Developer Guide); DescribeServices'
    ``desiredCount`` says so. No probe task is started (the Stubber fails on any RunTask)."""
    ecs, ecs_stub, logs, _ = clients
    outputs = {
        **OUTPUTS,
        "serviceName": "onnx-dev-service",
        "offHours": "07:00-20:00 MON-FRI (UTC)",
    }
    (tmp_path / "outputs.json").write_text(json.dumps(outputs))
    for _ in range(2):
        ecs_stub.add_response(
            "describe_services",
            {"services": [{"serviceName": "onnx-dev-service", "desiredCount": 0}]},
            {"cluster": CLUSTER, "services": ["onnx-dev-service"]},
        )
    out = io.StringIO()
    argv = ["--stack-outputs", str(tmp_path / "outputs.json")]
    code = main(argv, ecs=ecs, logs=logs, out=out)
    assert code == 7, out.getvalue()
    assert "scaled to zero" in out.getvalue()
    assert "07:00-20:00 MON-FRI (UTC)" in out.getvalue()
    assert main([*argv, "--allow-scaled-to-zero"], ecs=ecs, logs=logs, out=io.StringIO()) == 0


def test_a_running_service_is_probed(
    tmp_path: Path, clients: tuple[Any, Stubber, Any, Stubber]
) -> None:
    ecs, ecs_stub, logs, logs_stub = clients
    outputs = {**OUTPUTS, "serviceName": "onnx-dev-service"}
    (tmp_path / "outputs.json").write_text(json.dumps(outputs))
    ecs_stub.add_response(
        "describe_services",
        {"services": [{"serviceName": "onnx-dev-service", "desiredCount": 2}]},
        {"cluster": CLUSTER, "services": ["onnx-dev-service"]},
    )
    expect_probe_task(ecs_stub, 0, DEFAULT_COMMAND)
    expect_report(logs_stub, "1/1 models answered")
    clock, out = FakeClock(), io.StringIO()
    argv = ["--stack-outputs", str(tmp_path / "outputs.json")]
    code = main(argv, ecs=ecs, logs=logs, out=out, sleep=clock.sleep, clock=clock)
    assert code == 0, out.getvalue()
