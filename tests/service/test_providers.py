"""Execution provider choice: CUDA only when both built in and a GPU is really there."""

from __future__ import annotations

from pathlib import Path

import pytest

from service.providers import CPU, CUDA, ProviderUnavailable, nvidia_gpu_present, resolve_providers

GPU_BUILD = ["TensorrtExecutionProvider", CUDA, CPU]


def test_auto_uses_cuda_only_with_a_gpu_present() -> None:
    assert resolve_providers("auto", GPU_BUILD, gpu_present=True) == [CUDA, CPU]
    assert resolve_providers("auto", GPU_BUILD, gpu_present=False) == [CPU]
    assert resolve_providers("auto", [CPU], gpu_present=True) == [CPU]


def test_cpu_forced() -> None:
    assert resolve_providers("cpu", GPU_BUILD, gpu_present=True) == [CPU]


def test_cuda_required_fails_clearly_without_gpu_or_build() -> None:
    with pytest.raises(ProviderUnavailable, match="no NVIDIA GPU is visible"):
        resolve_providers("cuda", GPU_BUILD, gpu_present=False)
    with pytest.raises(ProviderUnavailable, match="has no CUDAExecutionProvider"):
        resolve_providers("cuda", [CPU], gpu_present=True)
    with pytest.raises(ProviderUnavailable, match="not one of: auto, cuda, cpu"):
        resolve_providers("tpu", GPU_BUILD, gpu_present=True)


def test_gpu_detection_reads_driver_files(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.delenv("NVIDIA_VISIBLE_DEVICES", raising=False)
    assert not nvidia_gpu_present(tmp_path)
    gpus = tmp_path / "proc/driver/nvidia/gpus"
    (gpus / "0000:00:1e.0").mkdir(parents=True)
    assert nvidia_gpu_present(tmp_path)
    monkeypatch.setenv("NVIDIA_VISIBLE_DEVICES", "void")
    assert not nvidia_gpu_present(tmp_path)
