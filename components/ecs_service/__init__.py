"""The one shared "load-balanced ECS service for the inference container".

``settings`` holds the typed settings (validated at preview), ``task`` the container definition and
IAM documents as plain data, ``service`` the :class:`InferenceService` component itself. The Fargate
and GPU variants import from here.
"""

from components.ecs_service.service import InferenceService, cluster_settings, task_egress
from components.ecs_service.settings import (
    APP_USER,
    CONTAINER_INSIGHTS,
    CONTAINER_NAME,
    CONTAINER_PORT,
    DEFAULT_SSL_POLICY,
    ECS_EXEC_STATEMENT,
    HEALTH_COMMAND,
    HEALTH_PATH,
    MODEL_PATH,
    PUBLIC_ALB_TAG,
    Autoscaling,
    BeforeDeploy,
    ContainerHealthCheck,
    HealthCheck,
    InferenceServiceArgs,
    LoadBalancerOptions,
    LogRouterLike,
    ModelStore,
    Network,
    Placement,
    ServiceSettings,
)
from components.ecs_service.task import (
    app_container_definition,
    ecr_repository_arn,
    execution_role_policy,
    execution_role_trust_policy,
    execution_statements,
    task_role_trust_policy,
)

__all__ = [
    "APP_USER",
    "CONTAINER_INSIGHTS",
    "CONTAINER_NAME",
    "CONTAINER_PORT",
    "DEFAULT_SSL_POLICY",
    "ECS_EXEC_STATEMENT",
    "HEALTH_COMMAND",
    "HEALTH_PATH",
    "MODEL_PATH",
    "PUBLIC_ALB_TAG",
    "Autoscaling",
    "BeforeDeploy",
    "ContainerHealthCheck",
    "HealthCheck",
    "InferenceService",
    "InferenceServiceArgs",
    "LoadBalancerOptions",
    "LogRouterLike",
    "ModelStore",
    "Network",
    "Placement",
    "ServiceSettings",
    "app_container_definition",
    "cluster_settings",
    "ecr_repository_arn",
    "execution_role_policy",
    "execution_role_trust_policy",
    "execution_statements",
    "task_egress",
    "task_role_trust_policy",
]
