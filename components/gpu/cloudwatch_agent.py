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
# The installer the user data writes and starts as a transient systemd unit (see agent_script).
INSTALLER = "/usr/local/sbin/install-gpu-metrics-agent"
INSTALL_UNIT = "gpu-metrics-agent-install"
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
    """User-data lines that install, configure and start the agent -- in the background.

    Amazon ECS Developer Guide, "Installing the Amazon ECS container agent": "The systemd units
    for both ECS and Docker services have a directive to wait for cloud-init to finish before
    starting both services. The cloud-init process is not considered finished until your Amazon
    EC2 user data has finished running." A package install in the user data itself would hold
    the instance out of the cluster for as long as it takes (minutes with a slow or unreachable
    repository: dnf retries each mirror), delaying every GPU scale-out. So the user data only
    writes an installer and hands it to systemd (``systemd-run --no-block``, a transient unit,
    logs in ``journalctl -u gpu-metrics-agent-install``); a failure there never touches ECS."""
    config = json.dumps(agent_config(namespace), indent=2, sort_keys=True)
    installer = "\n".join(
        [
            "#!/bin/bash",
            "# GPU metrics: CloudWatch agent, nvidia_gpu (components/gpu/cloudwatch_agent.py)",
            "set -uo pipefail",
            f"timeout 900 dnf install -y amazon-cloudwatch-agent || timeout 300 rpm -U {AGENT_RPM} "
            "|| exit 1",
            f"mkdir -p {CONFIG_PATH.rsplit('/', 1)[0]} || exit 1",
            f"cat > {CONFIG_PATH} <<'CWAGENT' || exit 1",
            config,
            "CWAGENT",
            f"exec {CTL} -a fetch-config -m ec2 -s -c file:{CONFIG_PATH}",
        ]
    )
    return "\n".join(
        [
            "# GPU metrics: the CloudWatch agent, installed in the background so that ECS and",
            "# Docker, which start once this script ends, are not kept waiting for it.",
            f"cat > {INSTALLER} <<'GPUMETRICS'",
            installer,
            "GPUMETRICS",
            f"chmod 0755 {INSTALLER}",
            f"systemd-run --no-block --unit={INSTALL_UNIT} {INSTALLER} "
            '|| echo "GPU metrics agent not started; see the console log" >&2',
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
