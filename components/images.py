"""Container images: build and push to ECR, or take prebuilt URIs from stack config.

CI builds once per commit and deploys with ``serviceImage``/``logRouterImage`` set to the
commit-hash tag, so ``pulumi up`` builds nothing. Without them (a developer's stack), the images
are built from the repository with awsx and pushed to repositories created here.

Repositories: scan on push, tag immutability (a tag can never be re-pointed at other code), KMS
encryption, and a lifecycle policy so old images do not pile up. Built images are tagged by
content (:mod:`components.image_tags`): awsx's default tag is a hash of the build *settings*, the
same for every build, which an immutable repository refuses the second time the content changes.

The service image comes in two variants (build arg ``ORT_VARIANT``): ``cpu`` for Fargate
(CPU-only ONNX Runtime, no CUDA/cuDNN wheels) and ``cuda`` for GPU instances.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

import pulumi
import pulumi_aws as aws
import pulumi_awsx as awsx

from components.image_tags import content_tag


@dataclass(frozen=True)
class ImageSpec:
    """One image: prebuilt URI, or what to build."""

    role: str  # "service" / "log-router": names the repository
    dockerfile: str  # relative to the repository root
    context: str = "."
    prebuilt: str | None = None
    args: Mapping[str, str] = field(default_factory=dict)  # docker build --build-arg
    tag_prefix: str = ""  # e.g. "cpu-": says which variant a tag is


def lifecycle_policy(keep_tagged: int = 30, untagged_days: int = 7) -> awsx.ecr.LifecyclePolicyArgs:
    """Expire untagged layers after ``untagged_days`` and keep the newest ``keep_tagged``."""
    return awsx.ecr.LifecyclePolicyArgs(
        rules=[
            awsx.ecr.LifecyclePolicyRuleArgs(
                description=f"untagged images after {untagged_days} days",
                tag_status=awsx.ecr.LifecycleTagStatus.UNTAGGED,
                maximum_age_limit=untagged_days,
            ),
            awsx.ecr.LifecyclePolicyRuleArgs(
                description=f"keep the newest {keep_tagged} images",
                tag_status=awsx.ecr.LifecycleTagStatus.ANY,
                maximum_number_of_images=keep_tagged,
            ),
        ]
    )


VARIANT_PLACEHOLDER = "{variant}"


def prebuilt_uri(spec: ImageSpec) -> str:
    """The prebuilt URI with ``{variant}`` replaced by the variant this stack builds (``cpu`` or
    ``cuda``), so CI can pass one ``serviceImage`` for every stack: ``repo:<sha>-{variant}``."""
    assert spec.prebuilt is not None
    variant = spec.args.get("ORT_VARIANT")
    if VARIANT_PLACEHOLDER in spec.prebuilt and variant is None:
        raise ValueError(f"image URI {spec.prebuilt!r} has {VARIANT_PLACEHOLDER} but no variant")
    return spec.prebuilt.replace(VARIANT_PLACEHOLDER, variant or "")


def image_uri(
    name: str,
    spec: ImageSpec,
    platform: str = "linux/amd64",
    tags: Mapping[str, str] | None = None,
    opts: pulumi.ResourceOptions | None = None,
) -> pulumi.Output[str]:
    """The image to run: the prebuilt URI as is, or a fresh build pushed to a new repository.

    The built image is referenced by digest (awsx's ``image_uri``), so a task definition changes
    exactly when the image content does.
    """
    if spec.prebuilt:
        return pulumi.Output.from_input(prebuilt_uri(spec))
    repository = awsx.ecr.Repository(
        f"{name}-{spec.role}-repo",
        image_scanning_configuration=aws.ecr.RepositoryImageScanningConfigurationArgs(
            scan_on_push=True
        ),
        image_tag_mutability="IMMUTABLE",
        encryption_configurations=[
            aws.ecr.RepositoryEncryptionConfigurationArgs(encryption_type="KMS")
        ],
        lifecycle_policy=lifecycle_policy(),
        force_delete=False,
        tags=dict(tags or {}),
        opts=opts,
    )
    image = awsx.ecr.Image(
        f"{name}-{spec.role}-image",
        repository_url=repository.url,
        context=spec.context,
        dockerfile=spec.dockerfile,
        platform=platform,
        args=dict(spec.args) or None,
        # The repository root is the project directory, where Pulumi runs the program.
        image_tag=content_tag(
            spec.context,
            _relative_to_context(spec.context, spec.dockerfile),
            args=spec.args,
            platform=platform,
            prefix=spec.tag_prefix,
        ),
        opts=opts,
    )
    return image.image_uri


def _relative_to_context(context: str, dockerfile: str) -> str:
    """awsx takes the Dockerfile relative to the project; content_tag relative to the context."""
    return str(Path(dockerfile).resolve().relative_to(Path(context).resolve()))


def service_image_spec(role: str, variant: str, prebuilt: str | None) -> ImageSpec:
    """The service image (service/Dockerfile, context: the repository root) in ``variant``
    ("cpu" or "cuda"), or the prebuilt URI with ``{variant}`` filled in."""
    return ImageSpec(
        role,
        dockerfile="service/Dockerfile",
        context=".",
        prebuilt=prebuilt,
        args={"ORT_VARIANT": variant},
        tag_prefix=f"{variant}-",
    )
