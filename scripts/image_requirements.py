"""Print the service's runtime requirements for one container image variant, one per line.

Why: ``pyproject.toml`` picks the ONNX Runtime package by platform (``onnxruntime-gpu`` on Linux
x86_64, ``onnxruntime`` elsewhere), but the image variant is a choice, not a platform: the
Fargate (CPU) image on x86_64 wants the small CPU-only ``onnxruntime`` and no CUDA/cuDNN wheels,
the GPU image wants ``onnxruntime-gpu[cuda,cudnn]``. Environment markers cannot say that, so the
Dockerfile's build stage runs this script (stdlib only: it runs in ``python:3.11-slim``):

    python scripts/image_requirements.py cpu  > requirements.txt   # Fargate
    python scripts/image_requirements.py cuda > requirements.txt   # GPU EC2

Every other runtime dependency is passed through unchanged, so ``pyproject.toml`` stays the one
list. Exactly one ONNX Runtime package is kept (they overwrite each other's files).
"""

from __future__ import annotations

import argparse
import re
import sys
import tomllib
from pathlib import Path

VARIANTS = ("cpu", "cuda")
_NAME = re.compile(r"^\s*([A-Za-z0-9][A-Za-z0-9._-]*)")
_ORT = {"onnxruntime", "onnxruntime-gpu"}


def _canonical(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def _name(requirement: str) -> str:
    match = _NAME.match(requirement)
    if match is None:
        raise ValueError(f"cannot read a package name from requirement {requirement!r}")
    return _canonical(match.group(1))


def _without_marker(requirement: str) -> str:
    return requirement.split(";", 1)[0].strip()


def image_requirements(pyproject: dict, variant: str) -> list[str]:
    """The runtime requirements of ``variant`` ("cpu" or "cuda"), markers resolved for Linux."""
    if variant not in VARIANTS:
        raise ValueError(f"image variant {variant!r} is not one of {VARIANTS}")
    project = pyproject["project"]
    dependencies: list[str] = list(project["dependencies"])
    ort = [r for r in dependencies if _name(r) in _ORT]
    by_name = {_name(r): _without_marker(r) for r in ort}
    if set(by_name) != _ORT:
        raise ValueError(
            f"pyproject.toml must list both onnxruntime and onnxruntime-gpu (with platform "
            f"markers) among the dependencies; found {sorted(by_name)}"
        )
    if variant == "cpu":
        chosen = by_name["onnxruntime"]
    else:
        cuda = [
            r for r in project["optional-dependencies"]["cuda"] if _name(r) == "onnxruntime-gpu"
        ]
        if len(cuda) != 1:
            raise ValueError("the `cuda` extra must list onnxruntime-gpu[cuda,cudnn] exactly once")
        chosen = _without_marker(cuda[0])
    rest = [r for r in dependencies if _name(r) not in _ORT]
    return [chosen, *rest]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("variant", choices=VARIANTS)
    parser.add_argument("--pyproject", type=Path, default=Path("pyproject.toml"))
    args = parser.parse_args(argv)
    data = tomllib.loads(args.pyproject.read_text(encoding="utf-8"))
    sys.stdout.write("".join(f"{line}\n" for line in image_requirements(data, args.variant)))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
