"""Content-addressed image tags: the same build inputs give the same tag, other inputs another.

Why: the ECR repositories are ``IMMUTABLE`` (a tag can never be re-pointed at other code), and
``awsx.ecr.Image`` without ``image_tag`` tags every build with a hash of the build *settings*
(context path, Dockerfile path, args, stack), not of the content: the second ``pulumi up``
after any change in the context pushes different content under the same tag and ECR refuses it
(``ImageTagAlreadyExistsException``). Here the tag is a SHA-256 over what Docker would send as
the build context (every file the context's ``.dockerignore`` lets through, by path and bytes;
docker-py's implementation of the ``.dockerignore`` rules), the Dockerfile, the build args, the
target and the platform. Unchanged inputs keep the tag, so an unchanged image is not pushed
again; changed inputs always get a new tag.

Docker reads ``<Dockerfile>.dockerignore`` next to the Dockerfile when it exists, else
``.dockerignore`` at the context root; so does this module.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from pathlib import Path

from docker.utils.build import exclude_paths

TAG_HEX_DIGITS = 24  # 96 bits: collisions are not a practical concern for one repository


def dockerignore_patterns(context: Path, dockerfile: Path) -> list[str]:
    """The ignore patterns Docker applies to this build (comments and blank lines dropped)."""
    beside = dockerfile.with_name(dockerfile.name + ".dockerignore")
    source = beside if beside.is_file() else context / ".dockerignore"
    if not source.is_file():
        return []
    lines = (line.strip() for line in source.read_text(encoding="utf-8").splitlines())
    return [line for line in lines if line and not line.startswith("#")]


def context_files(context: str | Path, dockerfile: str | Path) -> list[str]:
    """Files (relative POSIX paths, sorted) that Docker would send as the build context."""
    root = Path(context).resolve()
    dockerfile_path = (
        (root / dockerfile) if not Path(dockerfile).is_absolute() else Path(dockerfile)
    )
    relative_dockerfile = (
        dockerfile_path.resolve().relative_to(root).as_posix()
        if dockerfile_path.resolve().is_relative_to(root)
        else None
    )
    included = exclude_paths(
        str(root), dockerignore_patterns(root, dockerfile_path), dockerfile=relative_dockerfile
    )
    return sorted(p.replace("\\", "/") for p in included if (root / p).is_file())


def content_tag(
    context: str | Path,
    dockerfile: str | Path,
    *,
    args: Mapping[str, str] | None = None,
    target: str | None = None,
    platform: str | None = None,
    prefix: str = "",
) -> str:
    """``<prefix><24 hex digits>``: a digest of the build context's files, the Dockerfile, the
    build args, target and platform. ``dockerfile`` is relative to ``context`` unless absolute."""
    root = Path(context).resolve()
    dockerfile_path = Path(dockerfile) if Path(dockerfile).is_absolute() else root / dockerfile
    digest = hashlib.sha256()

    def add(label: str, data: bytes) -> None:
        digest.update(label.encode() + b"\0" + len(data).to_bytes(8, "big") + data)

    for relative in context_files(root, dockerfile_path):
        add(f"file:{relative}", (root / relative).read_bytes())
    add("dockerfile", dockerfile_path.read_bytes())
    for key, value in sorted((args or {}).items()):
        add(f"arg:{key}", value.encode())
    add("target", (target or "").encode())
    add("platform", (platform or "").encode())
    return f"{prefix}{digest.hexdigest()[:TAG_HEX_DIGITS]}"
