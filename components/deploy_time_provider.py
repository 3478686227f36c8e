"""What the deploy-time dynamic providers share: an ECS client, injectable waits, rerun triggers.

``ModelPublish`` (components/model_publish.py) and ``DeploymentCheck``
(components/deployment_check.py) are Python dynamic resources that call ECS during ``pulumi up``
and wait for a verdict. Both make their ECS client only inside create/update (from a factory,
so tests pass a stubbed one), wait with an injectable sleep and clock (so tests never wait),
read their timeout and poll interval from their properties, rerun only when one of their
trigger inputs changes, and have nothing to undo on delete. That is this base class.

Pickling: ``pulumi.dynamic.Resource`` pickles the provider *instance* with dill into the state;
an instance of a subclass defined in an importable module is stored by reference to its class
(module + name) and its ``__dict__`` (the factory, sleep and clock, themselves references). So
the base class adds nothing to the stored blob, and the code that runs is the checked-out code
(tests/components/test_model_publish.py, the "fresh interpreter" tests).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any, ClassVar

import pulumi.dynamic as dynamic

DEFAULT_TIMEOUT_S = 1800


def ecs_client(region: str) -> Any:
    """An ECS client for the stack's region, with standard retries (deploy-time resources)."""
    import boto3
    from botocore.config import Config

    return boto3.client(
        "ecs", region_name=region, config=Config(retries={"mode": "standard", "max_attempts": 10})
    )


class EcsDeployTimeProvider(dynamic.ResourceProvider):
    """create/update run :meth:`run` (which waits for ECS); diff compares ``triggers`` only.

    Subclasses set ``triggers``, ``default_poll_interval`` and implement :meth:`run` and
    :meth:`resource_id`.
    """

    serialize_as_secret_always = False  # they capture no secrets; keep the diff readable
    triggers: ClassVar[tuple[str, ...]] = ()
    default_timeout: ClassVar[float] = DEFAULT_TIMEOUT_S
    default_poll_interval: ClassVar[float] = 15.0

    def __init__(
        self,
        client_factory: Callable[[str], Any] = ecs_client,
        sleep: Callable[[float], None] = time.sleep,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        super().__init__()
        self.client_factory = client_factory
        self.sleep = sleep
        self.clock = clock

    def diff(self, _id: str, olds: dict[str, Any], news: dict[str, Any]) -> dynamic.DiffResult:
        """Changed triggers only (no AWS call): the engine calls this in previews too."""
        changed = [k for k in self.triggers if olds.get(k) != news.get(k)]
        return dynamic.DiffResult(changes=bool(changed), replaces=[], stables=[])

    def create(self, props: dict[str, Any]) -> dynamic.CreateResult:
        outs = self.run(props)
        return dynamic.CreateResult(id_=self.resource_id(outs), outs=outs)

    def update(self, _id: str, _olds: dict[str, Any], news: dict[str, Any]) -> dynamic.UpdateResult:
        return dynamic.UpdateResult(outs=self.run(news))

    def delete(self, _id: str, _props: dict[str, Any]) -> None:
        """Nothing to undo."""

    def ecs(self, props: dict[str, Any]) -> Any:
        """The ECS client for the resource's region (made here, never stored: see the module)."""
        return self.client_factory(props["region"])

    def timeout(self, props: dict[str, Any]) -> float:
        return float(props.get("timeout_seconds") or self.default_timeout)

    def poll_interval(self, props: dict[str, Any]) -> float:
        return float(props.get("poll_interval") or self.default_poll_interval)

    def run(self, props: dict[str, Any]) -> dict[str, Any]:
        """Do the work and wait for its verdict; return the outputs or raise with the reason."""
        raise NotImplementedError

    def resource_id(self, outs: dict[str, Any]) -> str:
        raise NotImplementedError
