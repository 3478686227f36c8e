"""Images: content-addressed tags in immutable repositories, and the two service variants."""

from __future__ import annotations

import importlib.util
import json
import re
import tomllib
from pathlib import Path

import pytest

from components.image_tags import content_tag, context_files
from components.images import ImageSpec, image_uri
from tests.pulumi_mocks import run
from tests.test_stack_dev import DEV, NAME, _mock_fixes, run_stack  # noqa: F401
from tests.test_stack_prod import PROD

ROOT = Path(__file__).resolve().parents[2]
IMAGE = "awsx:ecr:Image"
REPO = "awsx:ecr:Repository"
TAG = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}$")  # ECR / Docker tag syntax


def _load_image_requirements():  # scripts/ is not a package: load the file the Dockerfile runs
    spec = importlib.util.spec_from_file_location(
        "image_requirements", ROOT / "scripts" / "image_requirements.py"
    )
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _context(tmp_path: Path) -> Path:
    (tmp_path / "app").mkdir()
    (tmp_path / "app" / "main.py").write_text("print('v1')\n")
    (tmp_path / "Dockerfile").write_text("FROM scratch\nCOPY app /app\n")
    (tmp_path / "Pulumi.dev.yaml").write_text("config: {}\n")
    (tmp_path / ".dockerignore").write_text(
        "# stack files are not part of the image\nPulumi.*.yaml\n"
    )
    return tmp_path


def _build(context: Path) -> tuple[str, str]:
    """Run image_uri under the mocks: (the image's tag, the repository's tag mutability)."""
    mocks = run(
        lambda: image_uri(
            "demo",
            ImageSpec("service", dockerfile=str(context / "Dockerfile"), context=str(context)),
        )
    )
    return mocks.one(IMAGE).inputs["imageTag"], mocks.one(REPO).inputs["imageTagMutability"]


def test_tag_changes_with_the_context_content_under_mocks(tmp_path: Path) -> None:
    """ECR User Guide, "Image tag mutability": in an IMMUTABLE repository a push of an existing
    tag fails with ImageTagAlreadyExistsException. awsx's default tag is a hash of the build
    settings, the same whatever the content; so the tag must follow the content: two runs with
    different content give different tags, an unchanged context the same one."""
    context = _context(tmp_path)
    first, again = _build(context), _build(context)
    (context / "app" / "main.py").write_text("print('v2')\n")
    changed = _build(context)
    assert first[0] == again[0]
    assert changed[0] != first[0]
    assert all(TAG.match(tag) for tag, _ in (first, changed))
    assert first[1] == changed[1] == "IMMUTABLE"


def test_tag_ignores_what_dockerignore_excludes_and_follows_args(tmp_path: Path) -> None:
    context = _context(tmp_path)
    before = content_tag(context, "Dockerfile")
    (context / "Pulumi.dev.yaml").write_text("config: {changed: true}\n")  # pulumi config set
    assert content_tag(context, "Dockerfile") == before
    (context / "app" / "new.py").write_text("")
    added = content_tag(context, "Dockerfile")
    assert added != before
    assert content_tag(context, "Dockerfile", args={"ORT_VARIANT": "cuda"}) != added
    assert content_tag(context, "Dockerfile", platform="linux/arm64") != added
    (context / "Dockerfile").write_text("FROM scratch\nCOPY app /srv\n")
    assert content_tag(context, "Dockerfile") != added
    assert content_tag(context, "Dockerfile", prefix="cpu-").startswith("cpu-")


def test_service_context_is_only_what_the_image_needs() -> None:
    """The repository's .dockerignore is an allow-list, so neither `pulumi config set` (it
    rewrites Pulumi.<stack>.yaml at the root of the build context) nor tests or docs change the
    service image's tag."""
    files = context_files(ROOT, "service/Dockerfile")
    assert "pyproject.toml" in files
    assert "scripts/image_requirements.py" in files
    assert "service/Dockerfile" in files and "service/app.py" in files
    outside = [f for f in files if not f.startswith(("service/", "ops/"))]
    # Docker always sends .dockerignore itself; ops/ holds the smoke probe the image runs
    assert sorted(outside) == [".dockerignore", "pyproject.toml", "scripts/image_requirements.py"]
    assert "ops/smoke_probe.py" in files
    assert not any("__pycache__" in f for f in files)


def test_stacks_build_the_variant_their_capacity_needs() -> None:
    """Fargate stacks deploy the lean CPU image; GPU stacks the CUDA one (issue 13, item 5), and
    their model sync, a Fargate task, the CPU one."""
    for config, variant in ((DEV, "cpu"), (PROD, "cuda")):
        mocks, _ = run_stack(config)
        image = mocks.one(IMAGE, f"{NAME}-service-image").inputs
        assert image["args"] == {"ORT_VARIANT": variant}
        assert image["imageTag"].startswith(f"{variant}-")
        router = mocks.one(IMAGE, f"{NAME}-log-router-image").inputs
        assert TAG.match(router["imageTag"])
    sync_image = mocks.one(IMAGE, f"{NAME}-model-sync-image").inputs  # prod: GPU + model sync
    assert sync_image["args"] == {"ORT_VARIANT": "cpu"}
    sync_task = mocks.one("aws:ecs/taskDefinition:TaskDefinition", f"{NAME}-model-sync-taskdef")
    sync_container = json.loads(sync_task.inputs["containerDefinitions"])[0]
    assert sync_container["image"].endswith(f"/{NAME}-model-sync-image@sha256:0")


@pytest.mark.parametrize("variant", ["cpu", "cuda"])
def test_image_requirements_keep_exactly_one_onnx_runtime(variant: str) -> None:
    module = _load_image_requirements()
    pyproject = tomllib.loads((ROOT / "pyproject.toml").read_text())
    requirements = module.image_requirements(pyproject, variant)
    ort = [r for r in requirements if r.startswith("onnxruntime")]
    assert ort == (["onnxruntime>=1.20"] if variant == "cpu" else [ort[0]])
    if variant == "cuda":
        assert ort[0].startswith("onnxruntime-gpu[cuda,cudnn]")
    assert not any(";" in r for r in ort)  # the variant, not the build machine, decides
    others = [d.split(";")[0] for d in pyproject["project"]["dependencies"]]
    assert set(requirements) - set(ort) == {d for d in others if not d.startswith("onnxruntime")}
    with pytest.raises(ValueError, match="variant 'rocm'"):
        module.image_requirements(pyproject, "rocm")


def test_dockerfile_installs_from_a_bind_mount_not_a_copied_layer() -> None:
    """Docker docs, "RUN --mount=type=bind": files of another stage mounted for one RUN are not
    part of any layer; `COPY --from=build /wheels` followed by `rm -rf /wheels` ships the
    wheels in the COPY layer anyway."""
    text = (ROOT / "service" / "Dockerfile").read_text()
    assert "COPY --from=build" not in text
    assert "--mount=type=bind,from=build,source=/wheels,target=/wheels" in text
    assert "--no-deps" in text  # the package's own platform markers would ask for the other ORT
    assert re.search(r"^ARG ORT_VARIANT=cpu$", text, re.M)


def test_prebuilt_service_image_takes_the_stacks_variant() -> None:
    """CI passes one serviceImage for every stack, `<repo>:<sha>-{variant}`; each stack runs the
    variant its capacity needs (.github/workflows/deploy.yml builds both)."""
    registry = "123456789012.dkr.ecr.us-east-1.amazonaws.com"
    images = {
        "serviceImage": f"{registry}/onnx:0c0ffee-{{variant}}",
        "logRouterImage": f"{registry}/router:0c0ffee",
    }
    for config, variant in ((DEV, "cpu"), (PROD, "cuda")):
        mocks, exports = run_stack(config, images)
        assert not mocks.of_type(IMAGE)
        assert exports["serviceImage"] == f"{registry}/onnx:0c0ffee-{variant}"
    sync_task = mocks.one("aws:ecs/taskDefinition:TaskDefinition", f"{NAME}-model-sync-taskdef")
    sync_container = json.loads(sync_task.inputs["containerDefinitions"])[0]
    assert sync_container["image"] == f"{registry}/onnx:0c0ffee-cpu"
