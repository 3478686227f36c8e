"""GPU metrics of the GPU container instances: the CloudWatch agent's ``nvidia_gpu`` input.

The ECS GPU AMI has the NVIDIA driver and ``nvidia-smi``; the agent (installed from the
Amazon Linux 2023 repository at boot) reads them every minute and publishes, per GPU, the
utilisation and memory in the namespace ``OnnxServing/GPU`` (the service's own metrics are in
``OnnxServing``), with the instance and its Auto Scaling group as dimensions and one roll-up per
Auto Scaling group, which the dashboard shows.

Sources (Amazon CloudWatch User Guide): "Collect NVIDIA GPU metrics" (the ``nvidia_gpu`` section;
measurement ``utilization_gpu`` is published as ``nvidia_smi_utilization_gpu``, ``memory_used``
as ``nvidia_smi_memory_used`` ..., per GPU ``index``/``name``/``host``) and "Manually create or
edit the CloudWatch agent configuration file" (``append_dimensions`` accepts ``ImageId``,
``InstanceId``, ``InstanceType`` and ``AutoScalingGroupName``; ``aggregation_dimensions`` rolls
metrics up along the listed dimensions). The agent needs ``cloudwatch:PutMetricData`` and, to
resolve ``${aws:AutoScalingGroupName}`` from the instance's tags, ``ec2:DescribeTags``
(what the managed ``CloudWatchAgentServerPolicy`` grants; here scoped to the namespace).
"""

from __future__ import annotations

import json
from typing import Any

from service.metric_names import GPU_NAMESPACE

CONFIG_PATH = "/opt/aws/amazon-cloudwatch-agent/etc/amazon-cloudwatch-agent.json"
CTL = "/opt/aws/amazon-cloudwatch-agent/bin/amazon-cloudwatch-agent-ctl"
# The AWS-hosted package, if the distribution's repository does not have it.
AGENT_RPM = (
    "https://amazoncloudwatch-agent.s3.amazonaws.com/amazon_linux/amd64/latest/"
    "amazon-cloudwatch-agent.rpm"
)
ASG_DIMENSION = "AutoScalingGroupName"
INSTANCE_DIMENSION = "InstanceId"
# measurement in the agent config -> (metric name in CloudWatch, unit set here)
MEASUREMENTS: dict[str, tuple[str, str]] = {
    "utilization_gpu": ("nvidia_smi_utilization_gpu", "Percent"),
    "utilization_memory": ("nvidia_smi_utilization_memory", "Percent"),
    "memory_used": ("nvidia_smi_memory_used", "Megabytes"),
    "memory_total": ("nvidia_smi_memory_total", "Megabytes"),
}
GPU_UTILIZATION = MEASUREMENTS["utilization_gpu"][0]
GPU_MEMORY_USED = MEASUREMENTS["memory_used"][0]
GPU_MEMORY_TOTAL = MEASUREMENTS["memory_total"][0]
INTERVAL_S = 60


def agent_config(namespace: str = GPU_NAMESPACE, interval_s: int = INTERVAL_S) -> dict[str, Any]:
    """The agent's JSON configuration: nvidia_gpu only (CPU and memory come from Container
    Insights), with the instance and ASG as dimensions and a roll-up per ASG."""
    return {
        # cwagent: the unprivileged user the package creates; nvidia-smi needs no root.
        "agent": {"metrics_collection_interval": interval_s, "run_as_user": "cwagent"},
        "metrics": {
            "namespace": namespace,
            "append_dimensions": {
                ASG_DIMENSION: "${aws:AutoScalingGroupName}",
                INSTANCE_DIMENSION: "${aws:InstanceId}",
            },
            "aggregation_dimensions": [[ASG_DIMENSION]],
            "metrics_collected": {
                "nvidia_gpu": {
                    "measurement": [
                        {"name": name, "unit": unit} for name, (_, unit) in MEASUREMENTS.items()
                    ],
                    "metrics_collection_interval": interval_s,
                }
            },
        },
    }


def agent_script(namespace: str = GPU_NAMESPACE) -> str:
    """User-data lines that install, configure and start the agent. Best effort: a failure is
    logged to the console and never stops the instance from joining the ECS cluster (the ECS
    settings are written before this runs)."""
    config = json.dumps(agent_config(namespace), indent=2, sort_keys=True)
    return "\n".join(
        [
            "# GPU metrics: CloudWatch agent, nvidia_gpu (components/gpu/cloudwatch_agent.py)",
            "install_gpu_metrics() {",
            f"  dnf install -y amazon-cloudwatch-agent || rpm -U {AGENT_RPM}",
            f"  mkdir -p {CONFIG_PATH.rsplit('/', 1)[0]}",
            f"  cat > {CONFIG_PATH} <<'CWAGENT'",
            config,
            "CWAGENT",
            f"  {CTL} -a fetch-config -m ec2 -s -c file:{CONFIG_PATH}",
            "}",
            'install_gpu_metrics || echo "GPU metrics agent not started; see cloud-init log" >&2',
            "",
        ]
    )


def instance_role_statements(namespace: str = GPU_NAMESPACE) -> list[dict[str, Any]]:
    """What the agent needs on the instance role: publish in its namespace only; read tags for
    the Auto Scaling group dimension (DescribeTags has no resource-level permissions)."""
    return [
        {
            "Sid": "GpuMetricsPublish",
            "Effect": "Allow",
            "Action": "cloudwatch:PutMetricData",
            "Resource": "*",
            "Condition": {"StringEquals": {"cloudwatch:namespace": namespace}},
        },
        {
            "Sid": "GpuMetricsInstanceTags",
            "Effect": "Allow",
            "Action": "ec2:DescribeTags",
            "Resource": "*",
        },
    ]
