"""The deploy-time model publish: its provider's create/diff/update against a stubbed ECS client.

Under Pulumi mocks a dynamic provider's code never runs, so its functions are called here
directly, with botocore's Stubber checking every request and answer against the real ECS API
model, and a fake clock making the waits instant.

AWS behaviour encoded (cited):
- Amazon ECS Developer Guide, "API failure reasons"
  (https://docs.aws.amazon.com/AmazonECS/latest/developerguide/api_failures_messages.html):
  RunTask answers with a ``failures`` list (reason + ARN) instead of an error when it cannot
  place a task, e.g. ``RESOURCE:MEMORY``; so an HTTP 200 is no proof that anything ran.
- Amazon ECS API Reference, RunTask / DescribeTasks: the task's ``stopCode``
  ``TaskFailedToStart`` and ``stoppedReason`` (``CannotPullContainerError``,
  ``ResourceInitializationError``) say a task never ran; ``containers[].exitCode`` says how
  a task that ran ended ("Viewing Amazon ECS stopped task errors",
  https://docs.aws.amazon.com/AmazonECS/latest/developerguide/stopped-task-errors.html).
- Pulumi dynamic providers: ``create``/``update`` run only in an update; a preview calls
  ``check``/``diff`` (https://www.pulumi.com/docs/iac/concepts/resources/dynamic-providers/).
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import boto3
import pytest
from botocore.stub import ANY, Stubber

from components.model_publish import (
    TRIGGERS,
    ModelPublishProvider,
    sync_exit_meanings,
)
from tests.ops.test_run_task import (
    CLUSTER,
    SG,
    SUBNETS,
    TASK_ARN,
    TD_ARN,
    FakeClock,
    container,
    task,
)

REGION = "eu-west-1"
PROPS: dict[str, Any] = {
    "cluster": CLUSTER,
    "task_definition": TD_ARN,
    "subnets": SUBNETS,
    "security_groups": [SG],
    "container": "model-sync",
    "region": REGION,
    "image": "123456789012.dkr.ecr.eu-west-1.amazonaws.com/svc@sha256:1",
    "source": "s3://my-models/prod",
    "source_version": "",
    "timeout_seconds": 600,
}


@pytest.fixture
def ecs() -> Iterator[tuple[Any, Stubber]]:
    client = boto3.client(
        "ecs", region_name=REGION, aws_access_key_id="test", aws_secret_access_key="test"
    )
    with Stubber(client) as stub:
        yield client, stub
        stub.assert_no_pending_responses()


def provider(client: Any) -> tuple[ModelPublishProvider, FakeClock, list[str]]:
    clock = FakeClock()
    regions: list[str] = []

    def factory(region: str) -> Any:
        regions.append(region)
        return client

    return ModelPublishProvider(factory, sleep=clock.sleep, clock=clock), clock, regions


def expect_run(stub: Stubber, response: dict[str, Any]) -> None:
    stub.add_response(
        "run_task",
        response,
        {
            "cluster": CLUSTER,
            "taskDefinition": TD_ARN,
            "count": 1,
            "startedBy": "pulumi-model-publish",
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
            "overrides": {"containerOverrides": [{"name": "model-sync"}]},
        },
    )


def expect_describe(stub: Stubber, *tasks: dict[str, Any]) -> None:
    for t in tasks:
        stub.add_response(
            "describe_tasks",
            {"tasks": [t], "failures": []},
            {"cluster": CLUSTER, "tasks": [TASK_ARN]},
        )


def sync_task(status: str, **extra: Any) -> dict[str, Any]:
    containers = extra.pop("containers", [container("model-sync"), container("log-router")])
    return task(status, containers=containers, **extra)


def stopped(sync_exit: int) -> dict[str, Any]:
    return sync_task(
        "STOPPED",
        started=True,
        stopCode="EssentialContainerExited",
        stoppedReason="Essential container in task exited",
        containers=[
            container("model-sync", lastStatus="STOPPED", exitCode=sync_exit),
            container("log-router", lastStatus="STOPPED", exitCode=0),
        ],
    )


def test_create_runs_the_sync_once_and_waits_for_exit_0(ecs: tuple[Any, Stubber]) -> None:
    client, stub = ecs
    expect_run(stub, {"tasks": [sync_task("PROVISIONING")], "failures": []})
    expect_describe(stub, sync_task("PENDING"), sync_task("RUNNING", started=True), stopped(0))
    publish, clock, regions = provider(client)

    result = publish.create(dict(PROPS))

    assert regions == [REGION]
    assert result.id == TASK_ARN.rsplit("/", 1)[-1]
    assert result.outs["task_arn"] == TASK_ARN
    assert result.outs["source"] == PROPS["source"]
    assert clock.sleeps == [10.0, 10.0]  # polled until STOPPED, no longer


def test_placement_failure_fails_the_update_with_the_reason(ecs: tuple[Any, Stubber]) -> None:
    client, stub = ecs
    expect_run(
        stub,
        {
            "tasks": [],
            "failures": [
                {
                    "arn": "arn:aws:ecs:eu-west-1:123456789012:container-instance/x",
                    "reason": "RESOURCE:MEMORY",
                }
            ],
        },
    )
    publish, _, _ = provider(client)

    with pytest.raises(RuntimeError) as err:
        publish.create(dict(PROPS))

    message = str(err.value)
    assert "placed no task (1 failure(s))" in message
    assert "RESOURCE:MEMORY" in message
    assert "enough free memory" in message
    assert "ECS service is not deployed until the publish succeeds" in message


def test_never_started_fails_with_the_stopped_reason(ecs: tuple[Any, Stubber]) -> None:
    client, stub = ecs
    reason = (
        "ResourceInitializationError: failed to invoke EFS utils commands to set up EFS "
        "volumes: mount.nfs4: Connection timed out"
    )
    expect_run(stub, {"tasks": [sync_task("PROVISIONING")], "failures": []})
    expect_describe(
        stub,
        sync_task("PENDING"),
        sync_task(
            "STOPPED",
            stopCode="TaskFailedToStart",
            stoppedReason=reason,
            containers=[container("model-sync", lastStatus="STOPPED")],
        ),
    )
    publish, _, _ = provider(client)

    with pytest.raises(RuntimeError) as err:
        publish.create(dict(PROPS))

    message = str(err.value)
    assert "task failed to start" in message
    assert f"stop code TaskFailedToStart: {reason}" in message
    assert "EFS mount" in message  # the ResourceInitializationError hint
    assert TASK_ARN in message


@pytest.mark.parametrize(
    ("code", "meaning"),
    [
        (3, "The source cannot be read"),
        (4, "A copied file failed its checksum"),
        (6, "The model repository cannot be written"),
        (1, "unexpected error"),
    ],
)
def test_non_zero_exit_names_the_sync_exit_code_meaning(
    ecs: tuple[Any, Stubber], code: int, meaning: str
) -> None:
    client, stub = ecs
    expect_run(stub, {"tasks": [sync_task("PROVISIONING")], "failures": []})
    expect_describe(stub, sync_task("RUNNING", started=True), stopped(code))
    publish, _, _ = provider(client)

    with pytest.raises(RuntimeError) as err:
        publish.update("id", dict(PROPS), dict(PROPS))

    message = str(err.value)
    assert f"non-zero exit (model-sync={code})" in message
    assert f"model sync exit code {code}: {meaning}" in message


def test_exit_meanings_cover_every_sync_error() -> None:
    from service.sync import errors

    codes = {
        cls.exit_code
        for cls in vars(errors).values()
        if isinstance(cls, type) and issubclass(cls, errors.SyncError)
    }
    assert set(sync_exit_meanings()) == codes


def test_timeout_stops_the_task_and_fails(ecs: tuple[Any, Stubber]) -> None:
    client, stub = ecs
    props = {**PROPS, "timeout_seconds": 25}
    expect_run(stub, {"tasks": [sync_task("PROVISIONING")], "failures": []})
    expect_describe(stub, *[sync_task("RUNNING", started=True)] * 4)
    stub.add_response(
        "stop_task",
        {"task": sync_task("DEACTIVATING", started=True)},
        {"cluster": CLUSTER, "task": TASK_ARN, "reason": "timed out waiting"},
    )
    publish, clock, _ = provider(client)

    with pytest.raises(RuntimeError) as err:
        publish.create(props)

    message = str(err.value)
    assert "the task did not finish within 25s" in message
    assert "the task was asked to stop" in message
    assert sum(clock.sleeps) == 25


def test_diff_reruns_only_for_source_image_or_task_definition() -> None:
    publish = ModelPublishProvider(client_factory=_no_aws)
    assert publish.diff("id", dict(PROPS), dict(PROPS)).changes is False
    for key, value in (
        ("task_definition", TD_ARN.replace(":7", ":8")),
        ("image", "123456789012.dkr.ecr.eu-west-1.amazonaws.com/svc@sha256:2"),
        ("source", "s3://my-models/other"),
        ("source_version", '"etag-2"'),
        ("cluster", "other"),
    ):
        assert publish.diff("id", dict(PROPS), {**PROPS, key: value}).changes is True, key
    for key, value in (("timeout_seconds", 1200), ("subnets", ["subnet-z"])):
        assert publish.diff("id", dict(PROPS), {**PROPS, key: value}).changes is False, key
    assert set(TRIGGERS) == {"cluster", "task_definition", "image", "source", "source_version"}


def _no_aws(region: str) -> Any:
    raise AssertionError(f"AWS was called ({region}) outside create/update")


def test_preview_runs_nothing() -> None:
    """A preview reaches the provider only through check and diff: neither creates a client,
    and registering the resource under a preview engine runs no provider code at all."""
    from components.model_publish import ModelPublish, ModelPublishArgs
    from tests import pulumi_mocks

    publish = ModelPublishProvider(client_factory=_no_aws)
    publish.check({}, dict(PROPS))
    publish.diff("id", dict(PROPS), {**PROPS, "source": "s3://my-models/new"})
    publish.delete("id", dict(PROPS))  # deleting never touches the store either

    import pulumi

    mocks = pulumi_mocks.install()
    pulumi.runtime.set_mocks(mocks, project="onnx-ecs-serving", stack="test", preview=True)
    try:

        @pulumi.runtime.test
        def program() -> Any:
            resource = ModelPublish(
                "publish",
                ModelPublishArgs(
                    cluster=CLUSTER,
                    task_definition=TD_ARN,
                    subnets=SUBNETS,
                    security_groups=[SG],
                    container="model-sync",
                    region=REGION,
                    image=PROPS["image"],
                    source=PROPS["source"],
                ),
                provider=publish,
            )
            return resource.urn

        program()
        recorded_all = list(mocks.of_type("pulumi-python:dynamic:Resource"))
    finally:
        pulumi_mocks.install()
    (recorded,) = recorded_all
    assert recorded.inputs["source"] == PROPS["source"]


def test_bad_timeout_is_refused_before_registration() -> None:
    from components.model_publish import ModelPublish, ModelPublishArgs

    with pytest.raises(ValueError, match="model publish timeout 5s: use 60-7200 seconds"):
        ModelPublish(
            "publish",
            ModelPublishArgs(
                cluster=CLUSTER,
                task_definition=TD_ARN,
                subnets=SUBNETS,
                security_groups=[SG],
                container="model-sync",
                region=REGION,
                image="img",
                source="s3://my-models/p",
                timeout_seconds=5,
            ),
        )


def test_deploy_time_code_imports_only_infra_dependencies() -> None:
    """The Pulumi program installs only the `infra` extra (pyproject.toml): what runs at deploy
    time must not pull in the service's runtime (FastAPI, ONNX Runtime, rich...)."""
    import subprocess
    import sys

    code = (
        "import sys, __main__\n"
        "import components.model_publish, components.deployment_check\n"
        "import components.demo_model_source as d, components.smoke_probe\n"
        "d.demo_model_bytes()\n"
        "print(','.join(sorted(m.split('.')[0] for m in sys.modules)))\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=120
    )
    loaded = set(result.stdout.strip().split(","))
    runtime_only = {"fastapi", "uvicorn", "onnxruntime", "rich", "starlette", "pydantic_settings"}
    assert loaded & runtime_only == set()
    assert {"boto3", "onnx", "numpy"} - loaded == {"boto3"}  # boto3 only when a client is made


def _python_at_project_root(code: str) -> str:
    """Run ``code`` in a fresh interpreter started in the project directory, as the dynamic
    provider host is; return its stdout."""
    import subprocess
    import sys
    from pathlib import Path

    result = subprocess.run(
        [sys.executable, "-c", code],
        cwd=Path(__file__).resolve().parents[2],
        capture_output=True,
        text=True,
        check=True,
        timeout=120,
    )
    return result.stdout


def test_providers_serialize_by_reference_and_load_in_a_fresh_interpreter() -> None:
    """What the engine stores and later runs: ``pulumi.dynamic.Resource`` pickles the provider
    instance with dill (``serialize_provider``: ``dill.dumps(provider, recurse=True)``) into the
    ``__provider`` property, and the dynamic provider host (``python -m pulumi.dynamic``, started
    in the project directory) unpickles it for check/diff/create/update (pulumi/pulumi#2900,
    "Python Dynamic Providers": byte code "is not safely versioned across Python versions").

    So the provider must capture nothing that cannot be pickled (an ECS client, a lock, an open
    session) and its code must be referenced by module, not embedded as byte code: then a state
    written from a Mac with Python 3.12 still loads in CI with Python 3.11, and the code that runs
    is the checked-out code. The clients are made only inside create/update."""
    import base64
    import pickletools

    from pulumi.dynamic.dynamic import serialize_provider

    from components.deployment_check import DeploymentCheckProvider

    for provider in (ModelPublishProvider(), DeploymentCheckProvider()):
        blob = serialize_provider(provider)
        ops = {op.name for op, _arg, _pos in pickletools.genops(base64.b64decode(blob))}
        strings = [
            a for _op, a, _pos in pickletools.genops(base64.b64decode(blob)) if isinstance(a, str)
        ]
        assert "co_code" not in strings and "_create_code" not in strings  # no byte code
        assert "STACK_GLOBAL" in ops or "GLOBAL" in ops
        code = (
            "import base64, dill, sys\n"
            f"p = dill.loads(base64.b64decode({blob!r}))\n"
            "print(type(p).__module__, type(p).__name__, p.client_factory.__name__, "
            "p.sleep.__name__)\n"
        )
        module = type(provider).__module__
        assert _python_at_project_root(code).split() == [
            module,
            type(provider).__name__,
            "ecs_client",
            "sleep",
        ]


# The providers as ``serialize_provider`` stored them before they shared
# components/deploy_time_provider.py (commit ca92837): states written then keep these blobs in
# ``__provider`` until their next update, and refresh/delete unpickle them.
STORED_BEFORE_SHARED_BASE = {
    "ModelPublishProvider": (
        "gASVkAAAAAAAAACMGGNvbXBvbmVudHMubW9kZWxfcHVibGlzaJSMFE1vZGVsUHVibGlzaFByb3ZpZGVylJOUKYGU"
        "fZQojA5jbGllbnRfZmFjdG9yeZRoAIwKZWNzX2NsaWVudJSTlIwFY2xvY2uUjAR0aW1llIwJbW9ub3RvbmljlJOU"
        "jAVzbGVlcJRoCYwFc2xlZXCUk5R1Yi4="
    ),
    "DeploymentCheckProvider": (
        "gASVrwAAAAAAAACMG2NvbXBvbmVudHMuZGVwbG95bWVudF9jaGVja5SMF0RlcGxveW1lbnRDaGVja1Byb3ZpZGVy"
        "lJOUKYGUfZQojA5jbGllbnRfZmFjdG9yeZSMGGNvbXBvbmVudHMubW9kZWxfcHVibGlzaJSMCmVjc19jbGllbnSU"
        "k5SMBWNsb2NrlIwEdGltZZSMCW1vbm90b25pY5STlIwFc2xlZXCUaAqMBXNsZWVwlJOUdWIu"
    ),
}


def test_providers_stored_before_the_shared_base_still_load_and_run_the_shared_code() -> None:
    """A stack deployed before the refactor holds the old blobs (they name
    ``components.model_publish.ecs_client``); the dynamic provider host must still unpickle
    them, in a fresh interpreter at the project root, into the current classes with the shared
    ECS client, or ``pulumi refresh``/``destroy`` of that stack fails."""
    from components.deployment_check import DeploymentCheckProvider

    classes = {c.__name__: c for c in (ModelPublishProvider, DeploymentCheckProvider)}
    for name, blob in STORED_BEFORE_SHARED_BASE.items():
        code = (
            "import base64, dill\n"
            "from components.deploy_time_provider import EcsDeployTimeProvider, ecs_client\n"
            f"p = dill.loads(base64.b64decode({blob!r}))\n"
            "assert isinstance(p, EcsDeployTimeProvider), type(p).__mro__\n"
            "assert p.client_factory is ecs_client\n"
            "print(type(p).__name__, ','.join(p.triggers))\n"
        )
        assert _python_at_project_root(code).split() == [name, ",".join(classes[name].triggers)]
