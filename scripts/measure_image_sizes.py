"""Measure what each service image variant installs, without a Docker engine.

For each variant ("cpu", "cuda") this resolves the image's requirements
(``scripts/image_requirements.py``) for the image's platform (CPython 3.11, glibc manylinux,
x86_64; ``python:3.11-slim-bookworm`` has glibc 2.36), installs them with pip into an empty
``--target`` folder, and sums the installed files:

- site-packages: everything pip put in the target folder except ``bin/`` (libraries, and the
  CUDA/cuDNN shared objects in ``nvidia/``);
- total: the whole target folder, i.e. what the image's install layer adds on top of the base
  image (console scripts included). The service's own wheel is a few hundred KiB on top.

    python scripts/measure_image_sizes.py [--work /tmp/image-sizes] [--keep]

Prints a Markdown table. Downloads several GB for the CUDA variant (pip's cache is used).
"""

from __future__ import annotations

import argparse
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "scripts"))

from image_requirements import VARIANTS, image_requirements  # noqa: E402

# glibc 2.36 runs wheels for every manylinux_2_x up to 2.36; older pips do not expand the list.
PLATFORMS = [f"manylinux_2_{minor}_x86_64" for minor in range(36, 4, -1)] + [
    "manylinux2014_x86_64",
    "manylinux2010_x86_64",
    "manylinux1_x86_64",
]


def folder_bytes(path: Path) -> int:
    return sum(p.stat().st_size for p in path.rglob("*") if p.is_file() and not p.is_symlink())


def install(variant: str, target: Path) -> None:
    import tomllib

    pyproject = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))
    requirements = target.parent / f"requirements-{variant}.txt"
    requirements.write_text("\n".join(image_requirements(pyproject, variant)) + "\n")
    subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "install",
            "--quiet",
            "--target",
            str(target),
            *(arg for platform in PLATFORMS for arg in ("--platform", platform)),
            "--python-version",
            "3.11",
            "--implementation",
            "cp",
            "--only-binary=:all:",
            "-r",
            str(requirements),
        ],
        check=True,
    )


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--work", type=Path, default=None)
    parser.add_argument("--keep", action="store_true", help="keep the installed folders")
    args = parser.parse_args()
    work = args.work or Path(tempfile.mkdtemp(prefix="image-sizes-"))
    rows = []
    for variant in VARIANTS:
        target = work / variant
        if target.exists():
            shutil.rmtree(target)
        target.mkdir(parents=True)
        install(variant, target)
        total = folder_bytes(target)
        scripts = folder_bytes(target / "bin") if (target / "bin").exists() else 0
        rows.append((variant, total - scripts, total))
        if not args.keep:
            shutil.rmtree(target)
    mib = 1024 * 1024
    print("| image | site-packages (MiB) | total installed (MiB) |")
    print("| --- | ---: | ---: |")
    for variant, site, total in rows:
        print(f"| {variant} | {site / mib:,.0f} | {total / mib:,.0f} |")
    (_, _, cpu_total), (_, _, cuda_total) = rows
    print(f"\ncpu / cuda total: {cpu_total / cuda_total:.1%}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
