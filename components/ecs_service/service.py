"""The one shared "load-balanced ECS service for the inference container".

``FargateInferenceService`` (CPU, Fargate) and ``GpuEc2Cluster`` (GPU, EC2 capacity provider) both
build the same thing here and differ only in a :class:`Placement`: launch type or capacity
provider strategy, task/container sizing, GPU resource requirements, extra environment and
service placement constraints.

Both use network mode ``awsvpc``: every task gets its own ENI and therefore its own security group,
which admits port 8000 only from the load balancer's security group. Bridge mode on EC2 would
share the instance's security group between all tasks and force the ALB to reach dynamic host
ports, so "only the ALB may talk to the task" could no longer be expressed; that is why the GPU
variant uses ``awsvpc`` too (it costs one ENI per task, which g4dn/g5 instances have room for).

What this component creates (children named ``<name>-<role>``):
task definition (app container + FireLens log router sidecar), task and execution roles, security
groups for ALB and tasks, the ALB with target group and listeners, the ECS service, application
autoscaling (CPU, ALBRequestCountPerTarget and, optionally, the service's own in-flight requests
per task, by target tracking) and notifications
(:class:`components.notifications.ServiceNotifications`).
"""

from __future__ import annotations

import json
from typing import Any

import pulumi
import pulumi_aws as aws

from components.deployment_alarms import DeploymentAlarms
from components.deployment_check import DEFAULT_TIMEOUT_S as DEPLOYMENT_CHECK_TIMEOUT_S
from components.deployment_check import DeploymentCheck, DeploymentCheckArgs
from components.ecs_service.grpc_routing import (
    alb_to_tasks_rules,
    grpc_load_balancers,
    grpc_routing,
    grpc_security_group_rules,
)
from components.ecs_service.service_metrics import concurrency_metric, metric_environment
from components.ecs_service.settings import (
    CONTAINER_INSIGHTS,
    CONTAINER_NAME,
    CONTAINER_PORT,
    ECS_EXEC_STATEMENT,
    GRPC_PORT,
    MODEL_PATH,
    PUBLIC_ALB_TAG,
    Autoscaling,
    InferenceServiceArgs,
    ModelStore,
    _MetricSpec,
    _TargetTracking,
)
from components.ecs_service.task import (
    app_container_definition,
    execution_role_policy,
    execution_role_trust_policy,
    task_role_trust_policy,
)
from components.iam import policy_json
from components.notifications import ServiceNotifications, ServiceNotificationsArgs
from components.off_hours import service_off_hours


# -- the component --------------------------------------------------------------------------------
def cluster_settings(container_insights: str) -> list[aws.ecs.ClusterSettingArgs]:
    """Settings of a cluster a component creates; raises on a Container Insights value ECS
    does not know."""
    if container_insights not in CONTAINER_INSIGHTS:
        raise ValueError(
            f"container_insights {container_insights!r} must be one of "
            f"{', '.join(CONTAINER_INSIGHTS)}"
        )
    return [aws.ecs.ClusterSettingArgs(name="containerInsights", value=container_insights)]


def task_egress(
    prefix: str,
    security_group: aws.ec2.SecurityGroup,
    model_store: ModelStore,
    opts: pulumi.ResourceOptions,
    tags: dict[str, str] | None = None,
) -> None:
    """What a task that reads models may reach: HTTPS to AWS APIs (ECR, CloudWatch, S3, SSM, via
    NAT or VPC endpoints) and NFS to the model store; nothing else."""
    aws.vpc.SecurityGroupEgressRule(
        f"{prefix}-out-https",
        security_group_id=security_group.id,
        ip_protocol="tcp",
        from_port=443,
        to_port=443,
        cidr_ipv4="0.0.0.0/0",
        description="HTTPS to AWS APIs (ECR, logs, S3, SSM)",
        tags=tags,
        opts=opts,
    )
    aws.vpc.SecurityGroupEgressRule(
        f"{prefix}-out-nfs",
        security_group_id=security_group.id,
        ip_protocol="tcp",
        from_port=2049,
        to_port=2049,
        referenced_security_group_id=model_store.security_group_id,
        description="NFS to the model file system",
        tags=tags,
        opts=opts,
    )


class InferenceService(pulumi.ComponentResource):
    """Load-balanced ECS service running the inference container (see module docstring)."""

    cluster_name: pulumi.Output[str]
    cluster_arn: pulumi.Output[str]
    service_name: pulumi.Output[str]
    service_arn: pulumi.Output[str]
    url: pulumi.Output[str]
    load_balancer_dns: pulumi.Output[str]
    load_balancer_arn: pulumi.Output[str]
    target_group_arn: pulumi.Output[str]
    load_balancer_arn_suffix: pulumi.Output[str]  # app/<name>/<id>: CloudWatch's dimension value
    target_group_arn_suffix: pulumi.Output[str]  # targetgroup/<name>/<id>
    metrics_service_name: str
    alarm_topic_arn: pulumi.Output[str]
    deployment_alarm_names: pulumi.Output[list[str]]
    task_definition_arn: pulumi.Output[str]
    task_definition_family: pulumi.Output[str]
    task_role_arn: pulumi.Output[str]
    execution_role_arn: pulumi.Output[str]
    task_security_group_id: pulumi.Output[str]
    alb_security_group_id: pulumi.Output[str]
    subnet_ids: pulumi.Output[list[str]]

    def __init__(
        self,
        name: str,
        args: InferenceServiceArgs,
        opts: pulumi.ResourceOptions | None = None,
    ) -> None:
        args.validate()
        super().__init__("onnx-ecs:index:InferenceService", name, None, opts)
        self._name = name
        self._args = args
        self._child = pulumi.ResourceOptions(parent=self)
        self._tags = dict(args.tags)
        self._grpc_target_group: aws.lb.TargetGroup | None = None
        self.cluster_arn = pulumi.Output.from_input(args.cluster_arn)

        alb_sg, task_sg = self._security_groups()
        task_role, execution_role = self._roles()
        task_definition = self._task_definition(task_role, execution_role)
        alb, target_group, listeners = self._load_balancer(alb_sg)
        # The topic must exist before the service (its deployment alarms notify it), and the
        # topic's event rules need the service: deferred outputs close that loop.
        service_arn, resolve_service_arn = pulumi.deferred_output()
        service_name, resolve_service_name = pulumi.deferred_output()
        try:
            # inside the try: any error from here on must resolve the deferred outputs
            notifications = ServiceNotifications(
                f"{name}-notify",
                ServiceNotificationsArgs(
                    cluster_arn=args.cluster_arn,
                    service_arn=service_arn,
                    service_name=service_name,
                    email=args.settings.notification_email,
                    tags=self._tags,
                ),
                opts=self._child,
            )
            alarms = DeploymentAlarms(
                f"{name}-deploy-alarms",
                target_group_arn_suffix=target_group.arn_suffix,
                load_balancer_arn_suffix=alb.arn_suffix,
                topic_arn=notifications.topic_arn,
                settings=args.settings.deployment_alarms,
                tags=self._tags,
                opts=self._child,
            )
            gate = args.before_deploy(self.cluster_arn) if args.before_deploy else []
            service = self._service(
                task_definition, task_sg, target_group, [*listeners, alarms, *gate], alarms
            )
        except BaseException:
            # An unresolved deferred output would hang the program and hide this error.
            resolve_service_arn(pulumi.Output.from_input(""))
            resolve_service_name(pulumi.Output.from_input(""))
            raise
        resolve_service_arn(service.arn)
        resolve_service_name(service.name)
        self._deployment_check(service, task_definition)
        if args.settings.autoscaling is not None:
            self._autoscaling(args.settings.autoscaling, service, alb, target_group)

        scheme = "https" if args.settings.load_balancer.certificate_arn else "http"
        self.cluster_name = pulumi.Output.from_input(args.cluster_name)
        self.service_name = service.name
        self.service_arn = service.arn
        self.load_balancer_dns = alb.dns_name
        self.load_balancer_arn = alb.arn
        self.target_group_arn = target_group.arn
        self.load_balancer_arn_suffix = alb.arn_suffix
        self.metrics_service_name = name  # ServiceName of its CloudWatch metrics (EMF)
        self.target_group_arn_suffix = target_group.arn_suffix
        self.url = pulumi.Output.concat(scheme, "://", alb.dns_name)
        self.alarm_topic_arn = notifications.topic_arn
        self.deployment_alarm_names = pulumi.Output.all(*alarms.names)
        self.task_definition_arn = task_definition.arn
        self.task_definition_family = task_definition.family
        self.task_role_arn = task_role.arn
        self.execution_role_arn = execution_role.arn
        self.task_security_group_id = task_sg.id
        self.alb_security_group_id = alb_sg.id
        self.subnet_ids = pulumi.Output.from_input(args.network.private_subnet_ids)
        self.register_outputs(
            {
                "cluster_name": self.cluster_name,
                "cluster_arn": self.cluster_arn,
                "service_name": self.service_name,
                "url": self.url,
                "load_balancer_dns": self.load_balancer_dns,
                "alarm_topic_arn": self.alarm_topic_arn,
                "task_definition_arn": self.task_definition_arn,
                "task_role_arn": self.task_role_arn,
                "execution_role_arn": self.execution_role_arn,
                "task_security_group_id": self.task_security_group_id,
            }
        )

    # -- network ------------------------------------------------------------------------------
    def _security_groups(self) -> tuple[aws.ec2.SecurityGroup, aws.ec2.SecurityGroup]:
        """ALB SG (listener ports in, 8000 to tasks out) and task SG (8000 from ALB only).

        Rules are separate resources so the two groups can reference each other without a cycle.
        """
        name, args, child = self._name, self._args, self._child
        lb = args.settings.load_balancer
        alb_sg = aws.ec2.SecurityGroup(
            f"{name}-alb-sg",
            vpc_id=args.network.vpc_id,
            description="Inference ALB: listener ports in, container port out to tasks",
            # The policy pack admits internet ingress only on groups tagged as a public ALB's.
            tags={**self._tags, **({PUBLIC_ALB_TAG: "public-alb"} if lb.public else {})},
            opts=child,
        )
        task_sg = aws.ec2.SecurityGroup(
            f"{name}-task-sg",
            vpc_id=args.network.vpc_id,
            description="Inference tasks: container port from the ALB only",
            tags=self._tags,
            opts=child,
        )
        source = "0.0.0.0/0" if lb.public else args.network.vpc_cidr_block
        for port in lb.listener_ports:
            aws.vpc.SecurityGroupIngressRule(
                f"{name}-alb-in-{port}",
                security_group_id=alb_sg.id,
                ip_protocol="tcp",
                from_port=port,
                to_port=port,
                cidr_ipv4=source,
                description="public listener" if lb.public else "listener, from inside the VPC",
                tags=self._tags,
                opts=child,
            )
        alb_to_tasks_rules(name, alb_sg, task_sg, CONTAINER_PORT, child, tags=self._tags)
        if lb.grpc:
            grpc_security_group_rules(name, alb_sg, task_sg, child, self._tags)
        task_egress(f"{name}-task", task_sg, args.model_store, child, self._tags)
        args.model_store.allow_from(f"{name}-tasks", task_sg.id)
        return alb_sg, task_sg

    # -- IAM --------------------------------------------------------------------------------
    def _roles(self) -> tuple[aws.iam.Role, aws.iam.Role]:
        """Task role (EFS mount, log destinations, ECS Exec) and execution role (pull, awslogs)."""
        name, args, child = self._name, self._args, self._child
        task_role = aws.iam.Role(
            f"{name}-task-role",
            assume_role_policy=task_role_trust_policy(self),
            description="Inference task: mount models, ship logs, ECS Exec",
            tags=self._tags,
            opts=child,
        )
        statements: list[Any] = [
            args.model_store.task_role_statement(write=False),
            *args.log_router.task_role_statements(),
        ]
        if args.settings.enable_execute_command:
            statements.append(ECS_EXEC_STATEMENT)
        aws.iam.RolePolicy(
            f"{name}-task-policy", role=task_role.id, policy=policy_json(statements), opts=child
        )

        execution_role = aws.iam.Role(
            f"{name}-execution-role",
            assume_role_policy=execution_role_trust_policy(self),
            description="ECS agent: pull images, write the log router's own logs",
            tags=self._tags,
            opts=child,
        )
        aws.iam.RolePolicy(
            f"{name}-execution-policy",
            role=execution_role.id,
            policy=execution_role_policy(self, args.image, args.log_router),
            opts=child,
        )
        return task_role, execution_role

    # -- task definition ------------------------------------------------------------------------
    def _task_definition(
        self, task_role: aws.iam.Role, execution_role: aws.iam.Role
    ) -> aws.ecs.TaskDefinition:
        name, args, placement = self._name, self._args, self._args.placement
        environment: dict[str, pulumi.Input[str]] = {
            "MODEL_DIR": MODEL_PATH,
            "PORT": str(CONTAINER_PORT),
            "GRPC_PORT": str(GRPC_PORT),
            "LOG_LEVEL": args.settings.log_level.upper(),
            "GRACEFUL_SHUTDOWN_S": str(args.settings.graceful_shutdown_s),
            "KEEP_ALIVE_TIMEOUT_S": str(args.settings.load_balancer.backend_keep_alive_s),
            **args.settings.environment,
            # Last: the dashboard, alarms and scaling policy look for exactly this service name.
            **metric_environment(name),
        }
        env_keys = list(environment)
        mount_points = [args.model_store.mount_point(MODEL_PATH, read_only=True)]
        volumes = [args.model_store.volume()]
        if args.settings.readonly_root:
            # Scratch space for Python/uvicorn temp files when the root file system is read-only.
            mount_points.append({"sourceVolume": "tmp", "containerPath": "/tmp", "readOnly": False})
            volumes.append(aws.ecs.TaskDefinitionVolumeArgs(name="tmp"))

        def render(values: list[Any]) -> str:
            image, router, log_config, *env_values = values
            app = app_container_definition(
                image=image,
                environment=dict(zip(env_keys, env_values, strict=True)),
                mount_points=mount_points,
                log_configuration=log_config,
                log_router_name=args.log_router.container_name,
                stop_timeout_s=args.settings.stop_timeout_s,
                readonly_root=args.settings.readonly_root,
                health=args.settings.container_health_check,
                placement=placement,
                grpc=args.settings.load_balancer.grpc,
            )
            return json.dumps([app, router])

        container_definitions = pulumi.Output.all(
            args.image,
            args.log_router.container_definition(),
            args.log_router.app_log_configuration(),
            *environment.values(),
        ).apply(render)
        return aws.ecs.TaskDefinition(
            f"{name}-taskdef",
            family=name,
            network_mode="awsvpc",
            requires_compatibilities=list(placement.requires_compatibilities),
            cpu=placement.task_cpu,
            memory=placement.task_memory,
            runtime_platform=placement.runtime_platform,
            task_role_arn=task_role.arn,
            execution_role_arn=execution_role.arn,
            container_definitions=container_definitions,
            volumes=volumes,
            tags=self._tags,
            opts=self._child,
        )

    # -- load balancer ------------------------------------------------------------------------
    def _load_balancer(
        self, alb_sg: aws.ec2.SecurityGroup
    ) -> tuple[aws.lb.LoadBalancer, aws.lb.TargetGroup, list[aws.lb.Listener]]:
        name, args, child = self._name, self._args, self._child
        lb, hc = args.settings.load_balancer, args.settings.health_check
        access_logs = None
        if lb.access_logs_bucket is not None:
            access_logs = aws.lb.LoadBalancerAccessLogsArgs(
                bucket=lb.access_logs_bucket, prefix=lb.access_logs_prefix, enabled=True
            )
        alb = aws.lb.LoadBalancer(
            f"{name}-alb",
            load_balancer_type="application",
            internal=not lb.public,
            subnets=args.network.public_subnet_ids
            if lb.public
            else args.network.private_subnet_ids,
            security_groups=[alb_sg.id],
            drop_invalid_header_fields=True,
            idle_timeout=lb.idle_timeout_s,
            enable_deletion_protection=lb.deletion_protection,
            access_logs=access_logs,
            tags=self._tags,
            opts=child,
        )
        target_group = aws.lb.TargetGroup(
            f"{name}-tg",
            target_type="ip",
            port=CONTAINER_PORT,
            protocol="HTTP",
            vpc_id=args.network.vpc_id,
            deregistration_delay=hc.deregistration_delay_s,
            health_check=aws.lb.TargetGroupHealthCheckArgs(
                enabled=True,
                path=hc.path,
                protocol="HTTP",
                port="traffic-port",
                matcher=hc.matcher,
                interval=hc.interval_s,
                timeout=hc.timeout_s,
                healthy_threshold=hc.healthy_threshold,
                unhealthy_threshold=hc.unhealthy_threshold,
            ),
            tags=self._tags,
            opts=child,
        )
        forward = aws.lb.ListenerDefaultActionArgs(
            type="forward", target_group_arn=target_group.arn
        )
        listeners: list[aws.lb.Listener] = []
        if lb.certificate_arn:
            https = aws.lb.Listener(
                f"{name}-https",
                load_balancer_arn=alb.arn,
                port=443,
                protocol="HTTPS",
                ssl_policy=lb.ssl_policy,
                certificate_arn=lb.certificate_arn,
                default_actions=[forward],
                tags=self._tags,
                opts=child,
            )
            listeners.append(https)
            self._grpc_target_group, grpc_rule = grpc_routing(name, args, https, self._tags, child)
            # ECS refuses a target group no listener uses yet: the service waits for the rule.
            listeners.append(grpc_rule)  # type: ignore[arg-type]
            http_action = aws.lb.ListenerDefaultActionArgs(
                type="redirect",
                redirect=aws.lb.ListenerDefaultActionRedirectArgs(
                    port="443", protocol="HTTPS", status_code="HTTP_301"
                ),
            )
        else:
            if lb.public:
                pulumi.log.warn(
                    f"{name}: public load balancer without certificate_arn serves plain HTTP",
                    resource=self,
                )
            http_action = forward
        listeners.append(
            aws.lb.Listener(
                f"{name}-http",
                load_balancer_arn=alb.arn,
                port=80,
                protocol="HTTP",
                default_actions=[http_action],
                tags=self._tags,
                opts=child,
            )
        )
        return alb, target_group, listeners

    # -- ECS service ----------------------------------------------------------------------------
    def _service(
        self,
        task_definition: aws.ecs.TaskDefinition,
        task_sg: aws.ec2.SecurityGroup,
        target_group: aws.lb.TargetGroup,
        depends_on: list[pulumi.Resource],
        alarms: DeploymentAlarms,
    ) -> aws.ecs.Service:
        """The service waits for steady state (``pulumi up`` fails when it never gets there)
        and rolls back on the circuit breaker or any deployment alarm."""
        name, args, placement = self._name, self._args, self._args.placement
        ignore = []
        if args.settings.autoscaling is not None:
            ignore.append("desiredCount")  # autoscaling owns it after creation
        if args.settings.ignore_task_definition_changes:
            ignore.append("taskDefinition")  # deployments own the revision (seed 002)
        return aws.ecs.Service(
            f"{name}-service",
            cluster=args.cluster_arn,
            task_definition=task_definition.arn,
            desired_count=args.settings.desired_count,
            launch_type=placement.launch_type,
            capacity_provider_strategies=list(placement.capacity_provider_strategies) or None,
            platform_version=placement.platform_version,
            placement_constraints=list(placement.placement_constraints) or None,
            ordered_placement_strategies=list(placement.ordered_placement_strategies) or None,
            network_configuration=aws.ecs.ServiceNetworkConfigurationArgs(
                subnets=args.network.private_subnet_ids,
                security_groups=[task_sg.id],
                assign_public_ip=False,
            ),
            load_balancers=[
                aws.ecs.ServiceLoadBalancerArgs(
                    target_group_arn=target_group.arn,
                    container_name=CONTAINER_NAME,
                    container_port=CONTAINER_PORT,
                ),
                *grpc_load_balancers(self._grpc_target_group),
            ],
            deployment_circuit_breaker=aws.ecs.ServiceDeploymentCircuitBreakerArgs(
                enable=True, rollback=True
            ),
            alarms=aws.ecs.ServiceAlarmsArgs(alarm_names=alarms.names, enable=True, rollback=True),
            deployment_minimum_healthy_percent=100,
            deployment_maximum_percent=200,
            # A changed capacity provider strategy (Spot on/off, a new weight, launch type to
            # strategy) is refused without it: by the provider at preview, by ECS at update.
            force_new_deployment=True,
            health_check_grace_period_seconds=args.settings.health_check_grace_period_s,
            enable_execute_command=args.settings.enable_execute_command,
            enable_ecs_managed_tags=True,
            propagate_tags="SERVICE",
            wait_for_steady_state=True,
            tags=self._tags,
            opts=pulumi.ResourceOptions(
                parent=self,
                depends_on=depends_on,
                ignore_changes=ignore or None,
                # GPU capacity may first boot instances and pull a CUDA image (provider: 20 min)
                custom_timeouts=pulumi.CustomTimeouts(create="40m", update="40m"),
            ),
        )

    def _deployment_check(
        self, service: aws.ecs.Service, task_definition: aws.ecs.TaskDefinition
    ) -> DeploymentCheck:
        """Fail the update when ECS rolled the new revision back (steady state alone passes)."""
        args = self._args
        invoke = pulumi.InvokeOutputOptions(parent=self)
        return DeploymentCheck(
            f"{self._name}-deployment-check",
            DeploymentCheckArgs(
                cluster=self.cluster_arn,
                service=service.name,
                # deployments from outside Pulumi own the revision: judge the newest one
                task_definition=""
                if args.settings.ignore_task_definition_changes
                else task_definition.arn,
                region=aws.get_region_output(opts=invoke).region,
                # ECS's bake time grows with the alarms' evaluation window
                timeout_seconds=args.settings.deployment_alarms.deployment_check_timeout(
                    DEPLOYMENT_CHECK_TIMEOUT_S
                ),
            ),
            opts=pulumi.ResourceOptions(parent=self, depends_on=[service]),
        )

    # -- autoscaling ----------------------------------------------------------------------------
    def _autoscaling(
        self,
        scaling: Autoscaling,
        service: aws.ecs.Service,
        alb: aws.lb.LoadBalancer,
        target_group: aws.lb.TargetGroup,
    ) -> None:
        name, args, child = self._name, self._args, self._child
        target = aws.appautoscaling.Target(
            f"{name}-scaling",
            service_namespace="ecs",
            scalable_dimension="ecs:service:DesiredCount",
            resource_id=pulumi.Output.concat("service/", args.cluster_name, "/", service.name),
            min_capacity=scaling.min_count,
            max_capacity=scaling.max_count,
            tags=self._tags,
            # off-hours: the scheduled actions own min/max; a night-time `pulumi up` must not
            # wake the service (components/off_hours.py)
            opts=child
            if scaling.off_hours is None
            else pulumi.ResourceOptions.merge(
                child, pulumi.ResourceOptions(ignore_changes=["minCapacity", "maxCapacity"])
            ),
        )
        if scaling.off_hours is not None:
            service_off_hours(
                name, scaling.off_hours, target, scaling.min_count, scaling.max_count, child
            )
        policies: list[tuple[str, float, pulumi.Input[str] | None, str]] = [
            ("cpu", scaling.cpu_target_percent, None, "ECSServiceAverageCPUUtilization")
        ]
        if scaling.requests_per_target is not None:
            label = pulumi.Output.concat(alb.arn_suffix, "/", target_group.arn_suffix)
            policies.append(
                ("requests", scaling.requests_per_target, label, "ALBRequestCountPerTarget")
            )
        for role, value, label, metric in policies:
            spec = _MetricSpec(predefined_metric_type=metric, resource_label=label)
            aws.appautoscaling.Policy(
                f"{name}-scale-{role}",
                policy_type="TargetTrackingScaling",
                service_namespace=target.service_namespace,
                scalable_dimension=target.scalable_dimension,
                resource_id=target.resource_id,
                target_tracking_scaling_policy_configuration=_TargetTracking(
                    target_value=value,
                    predefined_metric_specification=spec,
                    scale_in_cooldown=scaling.scale_in_cooldown_s,
                    scale_out_cooldown=scaling.scale_out_cooldown_s,
                ),
                opts=child,
            )
        if scaling.concurrency_per_task is not None:
            # Several target-tracking policies: scale out when any asks, in when all agree.
            aws.appautoscaling.Policy(
                f"{name}-scale-concurrency",
                policy_type="TargetTrackingScaling",
                service_namespace=target.service_namespace,
                scalable_dimension=target.scalable_dimension,
                resource_id=target.resource_id,
                target_tracking_scaling_policy_configuration=_TargetTracking(
                    target_value=scaling.concurrency_per_task,
                    customized_metric_specification=concurrency_metric(name),
                    scale_in_cooldown=scaling.scale_in_cooldown_s,
                    scale_out_cooldown=scaling.scale_out_cooldown_s,
                ),
                opts=child,
            )
