"""Which versions of a model to serve: Triton's ``version_policy``.

``latest { num_versions: N }`` serves the N highest version folders, ``all`` serves every one,
``specific { versions: [...] }`` serves the listed ones. In ``config.json`` the same policy reads
``{"version_policy": {"latest": {"num_versions": 2}}}``, ``{"all": {}}`` or
``{"specific": {"versions": [1, 3]}}``.

Defaults: a ``config.pbtxt`` without a policy means ``latest { num_versions: 1 }``, as on Triton,
so a Triton repository behaves as it did there. Without a config file, or with a ``config.json``
that names no policy, every version is served (this service's behaviour before policies existed;
unversioned requests still go to the highest).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any, Literal

Kind = Literal["latest", "all", "specific"]


@dataclass(frozen=True, slots=True)
class VersionPolicy:
    kind: Kind = "all"
    num_versions: int = 1
    versions: tuple[int, ...] = ()

    def select(self, available: Iterable[int]) -> set[int]:
        """The versions to serve out of those present."""
        present = set(available)
        if self.kind == "latest":
            return set(sorted(present)[-self.num_versions :])
        if self.kind == "specific":
            return present & set(self.versions)
        return present

    def describe(self) -> str:
        if self.kind == "latest":
            return f"latest {{ num_versions: {self.num_versions} }}"
        if self.kind == "specific":
            return f"specific {{ versions: {list(self.versions)} }}"
        return "all { }"

    def to_json(self) -> dict[str, Any]:
        """Triton's JSON form (what ``GET .../config`` returns)."""
        if self.kind == "latest":
            return {"latest": {"num_versions": self.num_versions}}
        if self.kind == "specific":
            return {"specific": {"versions": list(self.versions)}}
        return {"all": {}}


ALL = VersionPolicy("all")
LATEST_ONE = VersionPolicy("latest", 1)


def policy(kind: str, num_versions: int = 1, versions: Iterable[int] = ()) -> VersionPolicy:
    """Build a policy; ValueError names what is wrong."""
    if kind == "latest":
        if num_versions < 1:
            raise ValueError(
                f"version_policy latest: num_versions must be >= 1, got {num_versions}"
            )
        return VersionPolicy("latest", num_versions)
    if kind == "specific":
        chosen = tuple(sorted(set(versions)))
        if not chosen or any(v < 1 for v in chosen):
            raise ValueError(
                f"version_policy specific: versions must be a non-empty list of positive version "
                f"numbers, got {list(versions)}"
            )
        return VersionPolicy("specific", versions=chosen)
    if kind == "all":
        return ALL
    raise ValueError(f"version_policy {kind!r}: use latest, all or specific")


def policy_from_json(raw: Any) -> VersionPolicy:
    """The ``version_policy`` value of a ``config.json``."""
    if not isinstance(raw, dict) or len(raw) != 1:
        raise ValueError(
            'version_policy must be one of {"latest": {"num_versions": N}}, {"all": {}}, '
            f'{{"specific": {{"versions": [..]}}}}; got {raw!r}'
        )
    ((kind, body),) = raw.items()
    body = body or {}
    if not isinstance(body, dict):
        raise ValueError(f"version_policy {kind}: must be an object, got {body!r}")
    num = body.get("num_versions", 1)
    versions = body.get("versions", [])
    if not isinstance(num, int) or isinstance(num, bool):
        raise ValueError(f"version_policy latest: num_versions must be an integer, got {num!r}")
    if not isinstance(versions, list) or not all(
        isinstance(v, int) and not isinstance(v, bool) for v in versions
    ):
        raise ValueError(f"version_policy specific: versions must be integers, got {versions!r}")
    return policy(kind, num, versions)
