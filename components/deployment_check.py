"""``DeploymentCheck``: fail ``pulumi up`` when ECS rolled the service's deployment back.

``aws.ecs.Service(wait_for_steady_state=True)`` waits until the service is stable, and fails when
it never gets there; but a deployment that the circuit breaker or a deployment alarm rolls back
ends *stable on the previous task definition*, and the provider reports success
(hashicorp/terraform-provider-aws#19519, #20858). This dynamic resource runs after the service
in every update that changes the service's task definition, and asks ECS (through
:mod:`ops.deployment`) whether the deployment of *that* revision completed, including the bake
time in which ECS still watches the deployment alarms. A rollback fails the update with the
deployment's reason, the stopped tasks' reasons and the service's events; ``python -m ops
deployment`` prints the same on demand.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import pulumi
import pulumi.dynamic as dynamic

from components.deploy_time_provider import DEFAULT_TIMEOUT_S, EcsDeployTimeProvider
from ops.deployment import EXIT_ROLLED_BACK, wait_for_deployment

TRIGGERS = ("cluster", "service", "task_definition")


class DeploymentCheckProvider(EcsDeployTimeProvider):
    """create/update wait for the deployment's verdict; diff reruns on a new revision."""

    triggers = TRIGGERS
    default_poll_interval = 15.0

    def resource_id(self, outs: dict[str, Any]) -> str:
        return f"{outs['service']}-deployment"

    def run(self, props: dict[str, Any]) -> dict[str, Any]:
        verdict = wait_for_deployment(
            self.ecs(props),
            props["cluster"],
            props["service"],
            props.get("task_definition") or None,
            timeout=self.timeout(props),
            poll_interval=self.poll_interval(props),
            sleep=self.sleep,
            clock=self.clock,
        )
        if not verdict.ok:
            lines = [f"ECS deployment check failed: {verdict.headline}"]
            lines += [f"  {d}" for d in verdict.details]
            lines.append(
                "  the service runs its previous revision (if it had one); details on demand: "
                "python -m ops deployment --stack-outputs outputs.json"
            )
            if verdict.exit_code == EXIT_ROLLED_BACK:
                lines += retry_lines(props)
            raise RuntimeError("\n".join(lines))
        return {**props, "verdict": verdict.headline}


def retry_lines(props: dict[str, Any]) -> list[str]:
    """How to deploy the same revision again once the cause is fixed.

    Pulumi may have recorded the service as updated to this revision; then the next ``pulumi up``
    shows no change to the service, starts no ECS deployment and only judges the failed one
    again. A cause outside the revision (a model not yet published, a quota, Fargate capacity, a
    noisy alarm) needs a new deployment of the same revision, which ``UpdateService`` with
    ``forceNewDeployment`` starts; the check then watches that one.
    """
    task_definition = props.get("task_definition") or "<the revision to deploy>"
    return [
        "  if the next `pulumi up` shows no change to the service, it only judges this failed "
        "deployment again. Change the revision (a new image), or, once a cause outside it is "
        "fixed, start a new deployment, then run `pulumi up`:",
        f"    aws ecs update-service --cluster {props['cluster']} --service {props['service']} "
        f"--task-definition {task_definition} --force-new-deployment",
    ]


@dataclass
class DeploymentCheckArgs:
    cluster: pulumi.Input[str]
    service: pulumi.Input[str]
    # the revision that must end up running; "" when deployments own it (any revision)
    task_definition: pulumi.Input[str]
    region: pulumi.Input[str]
    timeout_seconds: int = DEFAULT_TIMEOUT_S


class DeploymentCheck(dynamic.Resource):
    """See the module docstring."""

    verdict: pulumi.Output[str]

    def __init__(
        self,
        name: str,
        args: DeploymentCheckArgs,
        opts: pulumi.ResourceOptions | None = None,
        provider: DeploymentCheckProvider | None = None,
    ) -> None:
        props = {
            "cluster": args.cluster,
            "service": args.service,
            "task_definition": args.task_definition,
            "region": args.region,
            "timeout_seconds": args.timeout_seconds,
            "verdict": None,
        }
        super().__init__(provider or DeploymentCheckProvider(), name, props, opts)
