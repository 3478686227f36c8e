"""Choosing ONNX Runtime execution providers.

``onnxruntime-gpu`` lists CUDAExecutionProvider even on a machine without a GPU, and ORT
silently falls back to CPU when CUDA cannot start. So "auto" picks CUDA only when the provider is
built in *and* an NVIDIA device is visible, and the provider a session really uses is read back
from the session, logged and reported.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path

CUDA = "CUDAExecutionProvider"
CPU = "CPUExecutionProvider"


class ProviderUnavailable(RuntimeError):
    """The requested execution provider cannot be used on this machine."""


def nvidia_gpu_present(root: Path = Path("/")) -> bool:
    """True when the NVIDIA driver exposes at least one GPU to this container."""
    if os.environ.get("NVIDIA_VISIBLE_DEVICES", "") in ("void", "none"):
        return False
    gpus = root / "proc/driver/nvidia/gpus"
    if gpus.is_dir() and any(gpus.iterdir()):
        return True
    return (root / "dev/nvidia0").exists()


def resolve_providers(choice: str, available: Sequence[str], gpu_present: bool) -> list[str]:
    """Execution providers for a session, most preferred first.

    ``choice`` is the EXECUTION_PROVIDER setting: auto, cuda or cpu.
    """
    if choice == "cpu":
        return [CPU]
    cuda_ok = CUDA in available and gpu_present
    if choice == "cuda":
        if CUDA not in available:
            raise ProviderUnavailable(
                f"EXECUTION_PROVIDER=cuda but this ONNX Runtime build has no {CUDA}; "
                f"available: {list(available)}"
            )
        if not gpu_present:
            raise ProviderUnavailable(
                "EXECUTION_PROVIDER=cuda but no NVIDIA GPU is visible "
                "(no /dev/nvidia0 or /proc/driver/nvidia/gpus); use auto or cpu"
            )
        return [CUDA, CPU]
    if choice == "auto":
        return [CUDA, CPU] if cuda_ok else [CPU]
    raise ProviderUnavailable(f"EXECUTION_PROVIDER={choice!r} is not one of: auto, cuda, cpu")
