"""GPU instance types the ECS GPU-optimized AMI can serve, and what a task may ask of them.

Validation runs at preview time: a typo in the instance type, or a task that can never fit on
the chosen instance, otherwise surfaces only after deployment as tasks stuck in PROVISIONING
while the capacity provider launches instances that can never take them.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass

# NVIDIA families that the Amazon Linux 2023 ECS GPU-optimized AMI (x86_64) supports.
SUPPORTED_FAMILIES: frozenset[str] = frozenset(
    {"g4dn", "g5", "g6", "g6e", "gr6", "p3", "p3dn", "p4d", "p4de", "p5", "p5e", "p5en"}
)

# Families people reach for that cannot work here, with the reason we tell them.
REJECTED_FAMILIES: dict[str, str] = {
    "g4ad": "its AMD Radeon GPUs are not supported by ECS GPU scheduling (NVIDIA only)",
    "g5g": "it is Graviton (arm64) and there is no arm64 ECS GPU-optimized AMI",
    "p2": "its K80 GPUs are not supported by the NVIDIA driver in the AL2023 GPU AMI",
    "g3": "its M60 GPUs are not supported by the NVIDIA driver in the AL2023 GPU AMI",
    "g3s": "its M60 GPUs are not supported by the NVIDIA driver in the AL2023 GPU AMI",
    "inf1": "it has Inferentia (Neuron) accelerators, not GPUs; use the ECS Neuron AMI",
    "inf2": "it has Inferentia (Neuron) accelerators, not GPUs; use the ECS Neuron AMI",
    "trn1": "it has Trainium (Neuron) accelerators, not GPUs; use the ECS Neuron AMI",
}

# Share of nominal memory the kernel leaves to the ECS agent (MemTotal is below the
# advertised size); conservative, so that a task we accept always fits.
OS_MEMORY_SHARE = 0.93


@dataclass(frozen=True)
class InstanceShape:
    """Nominal size of one instance type (from the EC2 instance type documentation)."""

    vcpus: int
    memory_gib: int
    gpus: int


def _sizes(**by_size: tuple[int, int, int]) -> dict[str, InstanceShape]:
    return {size: InstanceShape(*shape) for size, shape in by_size.items()}


_G_SMALL = {
    "xlarge": (4, 16, 1),
    "2xlarge": (8, 32, 1),
    "4xlarge": (16, 64, 1),
    "8xlarge": (32, 128, 1),
    "12xlarge": (48, 192, 4),
    "16xlarge": (64, 256, 1),
}

# Known sizes; a supported family with a size missing here is accepted without fit checks.
KNOWN_SHAPES: dict[str, dict[str, InstanceShape]] = {
    "g4dn": _sizes(**_G_SMALL, metal=(96, 384, 8)),
    "g5": _sizes(**_G_SMALL, **{"24xlarge": (96, 384, 4), "48xlarge": (192, 768, 8)}),
    "g6": _sizes(**_G_SMALL, **{"24xlarge": (96, 384, 4), "48xlarge": (192, 768, 8)}),
    "g6e": _sizes(
        xlarge=(4, 32, 1),
        **{
            "2xlarge": (8, 64, 1),
            "4xlarge": (16, 128, 1),
            "8xlarge": (32, 256, 1),
            "12xlarge": (48, 384, 4),
            "16xlarge": (64, 512, 1),
            "24xlarge": (96, 768, 4),
            "48xlarge": (192, 1536, 8),
        },
    ),
    "p3": _sizes(**{"2xlarge": (8, 61, 1), "8xlarge": (32, 244, 4), "16xlarge": (64, 488, 8)}),
    "p3dn": _sizes(**{"24xlarge": (96, 768, 8)}),
    "p4d": _sizes(**{"24xlarge": (96, 1152, 8)}),
    "p4de": _sizes(**{"24xlarge": (96, 1152, 8)}),
    "p5": _sizes(**{"4xlarge": (16, 256, 1), "48xlarge": (192, 2048, 8)}),
    "p5e": _sizes(**{"48xlarge": (192, 2048, 8)}),
    "p5en": _sizes(**{"48xlarge": (192, 2048, 8)}),
}

_TYPE_RE = re.compile(r"^(?P<family>[a-z][a-z0-9-]*)\.(?P<size>[a-z0-9-]+)$")


def parse_gpu_instance_type(instance_type: str) -> tuple[str, str]:
    """Split ``g6.xlarge`` into (family, size), rejecting anything that is not a supported
    NVIDIA GPU family with a message that says what is accepted."""
    match = _TYPE_RE.match(instance_type or "")
    if match is None:
        raise ValueError(
            f"instance_type {instance_type!r} is not an EC2 instance type like 'g6.xlarge'"
        )
    family, size = match["family"], match["size"]
    if family in REJECTED_FAMILIES:
        raise ValueError(
            f"instance_type {instance_type!r} cannot serve GPU tasks on ECS: "
            f"{REJECTED_FAMILIES[family]}"
        )
    if family not in SUPPORTED_FAMILIES:
        raise ValueError(
            f"instance_type {instance_type!r} is not an NVIDIA GPU instance family supported by "
            f"the ECS GPU-optimized AMI; use one of: {', '.join(sorted(SUPPORTED_FAMILIES))}"
        )
    return family, size


def instance_shape(instance_type: str) -> InstanceShape | None:
    """The nominal shape of a supported GPU instance type, or None when the size is unknown."""
    family, size = parse_gpu_instance_type(instance_type)
    return KNOWN_SHAPES.get(family, {}).get(size)


def schedulable_memory_mib(shape: InstanceShape, reserved_memory_mib: int) -> int:
    """Memory the ECS agent will offer to tasks: a conservative share of the nominal size, less
    ``ECS_RESERVED_MEMORY``, rounded down to 128 MiB."""
    usable = math.floor(shape.memory_gib * 1024 * OS_MEMORY_SHARE) - reserved_memory_mib
    return usable - usable % 128


@dataclass(frozen=True)
class GpuTaskSize:
    """Task-level cpu units / memory MiB and GPUs per task for the EC2 task definition."""

    cpu: int
    memory: int
    gpu_count: int


def gpu_task_size(
    instance_type: str,
    gpu_count: int = 1,
    cpu: int | None = None,
    memory: int | None = None,
    reserved_memory_mib: int = 256,
) -> GpuTaskSize:
    """Validate (or default) a task's size against the instance it must land on.

    Defaults take the whole instance minus headroom for the ECS agent, because
    ``distinctInstance`` places one task per instance anyway.
    """
    if isinstance(gpu_count, bool) or not isinstance(gpu_count, int) or gpu_count < 1:
        raise ValueError(f"gpu_count must be an integer >= 1, got {gpu_count!r}")
    if cpu is not None and cpu < 128:
        raise ValueError(f"task cpu must be at least 128 units, got {cpu}")
    if memory is not None and memory < 512:
        raise ValueError(f"task memory must be at least 512 MiB, got {memory}")
    shape = instance_shape(instance_type)
    if shape is None:
        if cpu is None or memory is None:
            raise ValueError(
                f"instance_type {instance_type!r} has no size on record; set task cpu and "
                f"memory explicitly (known sizes: "
                f"{', '.join(sorted(KNOWN_SHAPES[parse_gpu_instance_type(instance_type)[0]]))})"
            )
        return GpuTaskSize(cpu=cpu, memory=memory, gpu_count=gpu_count)
    if gpu_count > shape.gpus:
        raise ValueError(
            f"gpu_count {gpu_count} exceeds the {shape.gpus} GPU(s) of {instance_type}"
        )
    max_cpu = shape.vcpus * 1024
    max_memory = schedulable_memory_mib(shape, reserved_memory_mib)
    task_cpu = cpu if cpu is not None else max_cpu - 256
    task_memory = memory if memory is not None else max_memory
    if task_cpu > max_cpu:
        raise ValueError(
            f"task cpu {task_cpu} exceeds {instance_type}'s {shape.vcpus} vCPU ({max_cpu} units)"
        )
    if task_memory > max_memory:
        raise ValueError(
            f"task memory {task_memory} MiB does not fit on {instance_type} "
            f"({shape.memory_gib} GiB nominal, at most {max_memory} MiB schedulable after the OS "
            f"and ECS_RESERVED_MEMORY={reserved_memory_mib})"
        )
    return GpuTaskSize(cpu=task_cpu, memory=task_memory, gpu_count=gpu_count)
