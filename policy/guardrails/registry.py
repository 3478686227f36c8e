"""The pack's rules, with their names, enforcement levels and config schemas: one list that
both the Pulumi wiring (pack.py) and the offline evaluator (evaluate.py) read."""

from __future__ import annotations

from . import compute, iam, network, s3, storage, tags
from .model import Enforcement, ResourceRule, Rule, StackRule

MANDATORY = Enforcement.MANDATORY
ADVISORY = Enforcement.ADVISORY

RULES: tuple[Rule, ...] = (
    # -- mandatory: a violation stops preview/up ----------------------------------------------
    ResourceRule(
        name="efs-encrypted",
        description="EFS file systems are encrypted at rest.",
        enforcement=MANDATORY,
        resource_types=frozenset({storage.EFS_FILE_SYSTEM}),
        check=storage.efs_encrypted,
    ),
    ResourceRule(
        name="ecs-efs-transit-encryption",
        description="ECS task definitions mount EFS volumes with transit encryption.",
        enforcement=MANDATORY,
        resource_types=frozenset({storage.TASK_DEFINITION}),
        check=storage.ecs_efs_transit_encryption,
    ),
    StackRule(
        name="no-world-ingress",
        description=(
            "No security group admits 0.0.0.0/0 or ::/0, except a public load balancer's "
            "listener ports."
        ),
        enforcement=MANDATORY,
        check=network.no_world_ingress,
        config_schema={
            "publicListenerPorts": {
                "type": "array",
                "items": {"type": "integer"},
                "default": list(network.DEFAULT_PUBLIC_PORTS),
            }
        },
    ),
    ResourceRule(
        name="imdsv2-required",
        description="Launch templates and instances require IMDSv2 (httpTokens = required).",
        enforcement=MANDATORY,
        resource_types=frozenset({compute.LAUNCH_TEMPLATE, compute.INSTANCE}),
        check=compute.imdsv2_required,
    ),
    ResourceRule(
        name="log-group-retention",
        description="CloudWatch log groups have a retention period.",
        enforcement=MANDATORY,
        resource_types=frozenset({storage.LOG_GROUP}),
        check=storage.log_group_retention,
    ),
    ResourceRule(
        name="ecs-circuit-breaker",
        description="ECS services use the deployment circuit breaker with rollback.",
        enforcement=MANDATORY,
        resource_types=frozenset({compute.ECS_SERVICE}),
        check=compute.ecs_circuit_breaker,
    ),
    ResourceRule(
        name="ecs-deployment-safety",
        description=(
            "ECS services behind a load balancer use the circuit breaker with rollback, "
            "deployment alarms with rollback, and wait for steady state."
        ),
        enforcement=MANDATORY,
        resource_types=frozenset({compute.ECS_SERVICE}),
        check=compute.ecs_deployment_safety,
    ),
    ResourceRule(
        name="iam-no-wildcards",
        description=('IAM policies allow no Action "*" and no iam:PassRole on Resource "*".'),
        enforcement=MANDATORY,
        resource_types=iam.POLICY_TYPES,
        check=iam.no_wildcard_iam,
    ),
    StackRule(
        name="s3-public-access-blocked",
        description="Every S3 bucket has a public access block with all four flags on.",
        enforcement=MANDATORY,
        check=s3.s3_public_access_blocked,
    ),
    ResourceRule(
        name="lb-internal",
        description="Load balancers are internal unless the stack allows public ones.",
        enforcement=MANDATORY,
        resource_types=network.LOAD_BALANCER_TYPES,
        check=network.lb_internal,
        config_schema={"allowPublicLoadBalancers": {"type": "boolean", "default": False}},
    ),
    ResourceRule(
        name="cost-allocation-tags",
        description="Taggable resources carry the cost allocation tags (project, stack, ...).",
        enforcement=MANDATORY,
        resource_types=tags.TAGGABLE_TYPES,
        check=tags.cost_allocation_tags,
        config_schema={
            "requiredTags": {
                "type": "array",
                "items": {"type": "string"},
                "default": list(tags.DEFAULT_REQUIRED_TAGS),
            }
        },
    ),
    # -- advisory: printed as warnings; a hard stop would be wrong ------------------------------
    StackRule(
        name="s3-encryption-declared",
        description="S3 buckets declare their default encryption.",
        enforcement=ADVISORY,
        check=s3.s3_encryption_declared,
    ),
    ResourceRule(
        name="ecs-container-insights",
        description="ECS clusters have Container Insights on.",
        enforcement=ADVISORY,
        resource_types=frozenset({compute.ECS_CLUSTER}),
        check=compute.container_insights,
    ),
    ResourceRule(
        name="ecs-exec-enabled",
        description="ECS services allow ECS Exec for debugging.",
        enforcement=ADVISORY,
        resource_types=frozenset({compute.ECS_SERVICE}),
        check=compute.ecs_exec_enabled,
    ),
    ResourceRule(
        name="ecs-no-public-ip",
        description="ECS tasks get no public IP.",
        enforcement=ADVISORY,
        resource_types=frozenset({compute.ECS_SERVICE}),
        check=compute.ecs_no_public_ip,
    ),
    ResourceRule(
        name="ecs-containers-non-root",
        description="Application containers run as a non-root user.",
        enforcement=ADVISORY,
        resource_types=frozenset({compute.TASK_DEFINITION}),
        check=compute.containers_non_root,
    ),
    ResourceRule(
        name="ecr-scan-on-push",
        description="ECR repositories scan images on push.",
        enforcement=ADVISORY,
        resource_types=frozenset({compute.ECR_REPOSITORY}),
        check=compute.ecr_scan_on_push,
    ),
    ResourceRule(
        name="sns-topic-encrypted",
        description="SNS topics are encrypted with a KMS key.",
        enforcement=ADVISORY,
        resource_types=frozenset({storage.SNS_TOPIC}),
        check=storage.sns_topic_encrypted,
    ),
    # Off by default; a production stack's policy config turns it on
    # ({"lb-deletion-protection": "advisory"} in policy/config/prod.json).
    ResourceRule(
        name="lb-deletion-protection",
        description="Production load balancers have deletion protection on.",
        enforcement=Enforcement.DISABLED,
        resource_types=network.LOAD_BALANCER_TYPES,
        check=network.lb_deletion_protection,
    ),
)

RULES_BY_NAME: dict[str, Rule] = {rule.name: rule for rule in RULES}
