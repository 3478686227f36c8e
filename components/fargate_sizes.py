"""Fargate's allowed task CPU/memory pairs, checked at preview time.

ECS rejects any other pair only at deploy time, after the rest of the stack has been created; a
preview that fails with the list of valid memory values is much cheaper. Source: "Task CPU and
memory" in the Amazon ECS developer guide (Linux containers, platform version 1.4.0).
"""

from __future__ import annotations

# cpu units -> allowed memory in MiB
FARGATE_MEMORY_BY_CPU: dict[int, tuple[int, ...]] = {
    256: (512, 1024, 2048),
    512: tuple(range(1024, 4096 + 1, 1024)),
    1024: tuple(range(2048, 8192 + 1, 1024)),
    2048: tuple(range(4096, 16384 + 1, 1024)),
    4096: tuple(range(8192, 30720 + 1, 1024)),
    8192: tuple(range(16384, 61440 + 1, 4096)),
    16384: tuple(range(32768, 122880 + 1, 8192)),
}

ARCHITECTURES = ("X86_64", "ARM64")


def validate_fargate_size(cpu: int, memory: int) -> None:
    """Raise ValueError naming the valid values when (cpu, memory) is not a Fargate size."""
    allowed = FARGATE_MEMORY_BY_CPU.get(cpu)
    if allowed is None:
        raise ValueError(
            f"Fargate cpu {cpu} is not valid; use one of {sorted(FARGATE_MEMORY_BY_CPU)} "
            "(CPU units, 1024 = 1 vCPU)"
        )
    if memory not in allowed:
        raise ValueError(
            f"Fargate memory {memory} MiB is not valid for cpu {cpu}; valid memory values for "
            f"cpu {cpu}: {', '.join(map(str, allowed))}"
        )


def validate_architecture(architecture: str) -> None:
    """Fargate runs Linux on X86_64 or ARM64 (Graviton)."""
    if architecture not in ARCHITECTURES:
        raise ValueError(
            f"cpu architecture {architecture!r} is not valid; use one of {ARCHITECTURES}"
        )
