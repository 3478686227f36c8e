"""User data for ECS GPU container instances: join the cluster and configure the ECS agent.

Kept apart from the component so the exact agent settings can be read and unit-tested as text.
"""

from __future__ import annotations

import base64
import re

_CLUSTER_NAME_RE = re.compile(r"^[A-Za-z0-9_-]{1,255}$")


def ecs_agent_config(
    cluster_name: str, *, spot: bool = False, reserved_memory_mib: int = 256
) -> dict[str, str]:
    """The /etc/ecs/ecs.config entries, in order. Why each one:

    - ECS_CLUSTER: register with our cluster rather than "default".
    - ECS_ENABLE_GPU_SUPPORT: advertise the GPUs so ``resourceRequirements`` GPU can be placed.
    - ECS_ENABLE_TASK_IAM_ROLE: tasks get credentials from their task role, never the instance's.
    - ECS_AWSVPC_BLOCK_IMDS: awsvpc tasks cannot reach the instance metadata service, so they
      cannot borrow the instance role (belt and braces with the IMDS hop limit of 1).
    - ECS_ENABLE_CONTAINER_METADATA: the metadata file gives containers their task/ports.
    - ECS_RESERVED_MEMORY: memory kept back for the OS, agent and Docker.
    - ECS_CONTAINER_INSTANCE_PROPAGATE_TAGS_FROM: container instances carry the EC2 tags.
    - ECS_ENABLE_SPOT_INSTANCE_DRAINING (spot only): drain tasks on the 2-minute interruption.
    """
    if not _CLUSTER_NAME_RE.match(cluster_name):
        raise ValueError(f"ECS cluster name {cluster_name!r} is not a valid cluster name")
    config = {
        "ECS_CLUSTER": cluster_name,
        "ECS_ENABLE_GPU_SUPPORT": "true",
        "ECS_ENABLE_TASK_IAM_ROLE": "true",
        "ECS_AWSVPC_BLOCK_IMDS": "true",
        "ECS_ENABLE_CONTAINER_METADATA": "true",
        "ECS_RESERVED_MEMORY": str(reserved_memory_mib),
        "ECS_CONTAINER_INSTANCE_PROPAGATE_TAGS_FROM": "ec2_instance",
    }
    if spot:
        config["ECS_ENABLE_SPOT_INSTANCE_DRAINING"] = "true"
    return config


def user_data_script(
    cluster_name: str, *, spot: bool = False, reserved_memory_mib: int = 256
) -> str:
    """A bash script for cloud-init that appends the agent settings before ecs-init starts."""
    lines = [
        f"{key}={value}"
        for key, value in ecs_agent_config(
            cluster_name, spot=spot, reserved_memory_mib=reserved_memory_mib
        ).items()
    ]
    return "\n".join(
        [
            "#!/bin/bash",
            "set -euo pipefail",
            "cat >> /etc/ecs/ecs.config <<'EOF'",
            *lines,
            "EOF",
            "",
        ]
    )


def user_data_base64(
    cluster_name: str, *, spot: bool = False, reserved_memory_mib: int = 256, extra: str = ""
) -> str:
    """The script base64-encoded, as EC2 launch templates require; ``extra`` lines run after
    the agent settings are written (the GPU metrics agent: components/gpu/cloudwatch_agent.py)."""
    script = user_data_script(cluster_name, spot=spot, reserved_memory_mib=reserved_memory_mib)
    script += extra
    return base64.b64encode(script.encode()).decode()
