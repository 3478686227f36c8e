"""The model repository: Triton's layout on disk, and the registry of loaded versions.

Layout: ``<MODEL_DIR>/<model>/<version>/model.onnx`` with numeric version folders. Folders whose
name starts with ``.`` are ignored: the publisher (``service.sync``) writes each version into a
hidden folder and renames it into place only when complete, so a scan never sees half a model.

Every version present is loaded (and warmed); unversioned requests go to the highest version that
is ready. A version that fails to load is recorded with its reason and the others keep serving.
``sync()`` reconciles the registry with the disk and is what the poller calls: a new version is
loaded and warmed *before* it becomes visible, and a removed version is dropped from the table
while requests already holding it finish on it.
"""

from __future__ import annotations

import logging
import re
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from enum import StrEnum
from pathlib import Path

from service.errors import ModelNotFound, ModelNotReady
from service.model import MODEL_FILENAME, ModelVersion
from service.model_config_files import CONFIG_FILENAMES
from service.version_policy import VersionPolicy

log = logging.getLogger("service.repository")

Loader = Callable[[str, int, Path], ModelVersion]


class State(StrEnum):
    READY = "READY"
    UNAVAILABLE = "UNAVAILABLE"


@dataclass(slots=True)
class VersionRecord:
    """What the registry knows about one version on disk."""

    model: str
    version: int
    path: Path
    state: State
    reason: str = ""
    loaded: ModelVersion | None = None
    fingerprint: tuple[int, ...] | None = None


@dataclass(slots=True)
class SyncReport:
    """What one reconciliation changed."""

    loaded: list[str] = field(default_factory=list)
    failed: list[str] = field(default_factory=list)
    removed: list[str] = field(default_factory=list)

    @property
    def changed(self) -> bool:
        return bool(self.loaded or self.failed or self.removed)


def _fingerprint(path: Path) -> tuple[int, ...] | None:
    """What a reload depends on: the model file and its model's configuration file."""
    try:
        stat = path.stat()
    except OSError:
        return None
    config_part: tuple[int, ...] = ()
    for name in CONFIG_FILENAMES:
        try:
            config = (path.parent.parent / name).stat()
        except OSError:
            config_part += (-1,)  # absent: appearing later changes the fingerprint
        else:
            config_part += (config.st_mtime_ns, config.st_size)
    return (stat.st_mtime_ns, stat.st_size, *config_part)


def _reason(exc: OSError) -> str:
    return f"{type(exc).__name__}: {exc}"


_VERSION = re.compile(r"[1-9][0-9]{0,17}")  # ASCII, no leading zero, fits in an int64


def version_number(text: str) -> int | None:
    """The version a folder name or URL segment denotes, or None. Only canonical numbers:
    ``01`` or a full-width one (U+FF11) are not version 1 (``int()`` would say they are, and a
    folder ``07`` would silently replace ``007``)."""
    return int(text) if _VERSION.fullmatch(text) else None


ROOT = ""  # in ``unreadable``: the model directory itself could not be listed


def scan(root: Path, unreadable: set[str] | None = None) -> dict[str, dict[int, Path]]:
    """Find ``<model>/<version>/model.onnx`` under ``root``; hidden and non-numeric are skipped.

    A folder that cannot be listed (permissions, a failing mount) is logged with the reason and
    its model name (``ROOT`` for ``root`` itself) added to ``unreadable``; it never stops the
    other models from being found.
    """
    found: dict[str, dict[int, Path]] = {}
    unreadable = set() if unreadable is None else unreadable
    if not root.is_dir():
        return found
    try:
        model_dirs = sorted(root.iterdir())
    except OSError as exc:
        log.error(
            "model directory cannot be read", extra={"path": str(root), "reason": _reason(exc)}
        )
        unreadable.add(ROOT)
        return found
    for model_dir in model_dirs:
        if model_dir.name.startswith(".") or not model_dir.is_dir():
            continue
        try:
            version_dirs = list(model_dir.iterdir())
        except OSError as exc:
            log.error(
                "model folder cannot be read",
                extra={"model": model_dir.name, "path": str(model_dir), "reason": _reason(exc)},
            )
            unreadable.add(model_dir.name)
            continue
        versions: dict[int, Path] = {}
        for version_dir in version_dirs:
            if version_dir.name.startswith(".") or not version_dir.is_dir():
                continue
            number = version_number(version_dir.name)
            if number is None:
                log.warning(
                    "ignoring folder that is not a version number (1, 2, ...: ASCII digits, "
                    "no leading zero)",
                    extra={"model": model_dir.name, "path": str(version_dir)},
                )
                continue
            versions[number] = version_dir / MODEL_FILENAME
        if versions:
            found[model_dir.name] = versions
    return found


class ModelRegistry:
    """Loaded model versions, keyed by model name and version number.

    Readers (request handlers) take no lock: they read a dict that writers replace whole.
    """

    def __init__(
        self,
        root: Path,
        loader: Loader,
        *,
        warmup: bool = True,
        on_unload: Callable[[ModelVersion], None] | None = None,
        version_policy: Callable[[Path], VersionPolicy] | None = None,
        on_load_failure: Callable[[str, int], None] | None = None,
    ) -> None:
        self.root = root
        self._loader = loader
        self._warmup = warmup
        self._on_unload = on_unload
        self._version_policy = version_policy
        self._on_load_failure = on_load_failure
        self._models: dict[str, dict[int, VersionRecord]] = {}
        self._write_lock = threading.Lock()
        self._disabled: set[str] = set()  # unloaded through the repository API
        self.initial_load_done = False

    # -- loading ---------------------------------------------------------------------------
    def _load(self, model: str, version: int, path: Path) -> VersionRecord:
        fingerprint = _fingerprint(path)
        started = time.perf_counter()
        try:
            with path.open("rb"):  # FileNotFoundError / PermissionError, in the OS's words
                pass
            loaded = self._loader(model, version, path)
            warm_s = loaded.warmup() if self._warmup else 0.0
        except Exception as exc:
            reason = f"{type(exc).__name__}: {exc}"
            log.error(
                "model version failed to load",
                extra={"model": model, "version": version, "path": str(path), "reason": reason},
                exc_info=True,
            )
            # Clients see the reason (503s, the index): paths in it are relative to the
            # repository, so the service's file layout does not leak.
            reason = self._without_root(reason)
            if self._on_load_failure is not None:
                self._on_load_failure(model, version)
            return VersionRecord(model, version, path, State.UNAVAILABLE, reason, None, fingerprint)
        log.info(
            "model version ready",
            extra={
                "model": model,
                "version": version,
                "provider": loaded.provider,
                "load_ms": round((time.perf_counter() - started) * 1000, 1),
                "warmup_ms": round(warm_s * 1000, 1),
                "inputs": [s.describe() for s in loaded.inputs],
            },
        )
        return VersionRecord(model, version, path, State.READY, "", loaded, fingerprint)

    def _without_root(self, text: str) -> str:
        root = str(self.root).rstrip("/")
        resolved = str(self.root.resolve()).rstrip("/")
        for prefix in {resolved, root}:
            if prefix:
                text = text.replace(prefix + "/", "").replace(prefix, "<model repository>")
        return text

    def sync(self, only: set[str] | None = None, force: bool = False) -> SyncReport:
        """Reconcile with the disk: load new (or changed, or earlier failed) versions, drop gone.

        ``only`` limits the work to those model names and ``force`` reloads even unchanged
        versions (the repository API's load, which also re-enables an unloaded model).
        """
        report = SyncReport()
        with self._write_lock:
            try:
                unreadable: set[str] = set()
                on_disk = self._apply_policies(scan(self.root, unreadable))
                if not self.root.is_dir():
                    log.error("model directory does not exist", extra={"path": str(self.root)})
                names = set(on_disk) | set(self._models)
                # What cannot be read now is not gone: keep serving it, look again next poll.
                names = set() if ROOT in unreadable else names - unreadable
                if only is not None:
                    names &= only
                for name in sorted(names):
                    if force:
                        self._disabled.discard(name)
                    elif name in self._disabled:
                        continue
                    self._sync_model(name, on_disk.get(name, {}), report, force)
            finally:
                self.initial_load_done = True  # ready/not-ready is decided, never "loading" forever
        if report.changed:
            log.info(
                "model repository synchronised",
                extra={"loaded": report.loaded, "failed": report.failed, "removed": report.removed},
            )
        return report

    def _apply_policies(self, on_disk: dict[str, dict[int, Path]]) -> dict[str, dict[int, Path]]:
        """Keep the versions each model's version policy selects. A policy that cannot be read
        selects every version: each then fails to load with the configuration error as reason."""
        if self._version_policy is None:
            return on_disk
        selected: dict[str, dict[int, Path]] = {}
        for name, versions in on_disk.items():
            try:
                keep = self._version_policy(self.root / name).select(versions)
            except (ValueError, OSError):
                keep = set(versions)
            selected[name] = {v: p for v, p in versions.items() if v in keep}
        return selected

    def _sync_model(
        self, name: str, disk: dict[int, Path], report: SyncReport, force: bool = False
    ) -> None:
        current = self._models.get(name, {})
        updated = dict(current)
        for version, path in sorted(disk.items()):
            record = current.get(version)
            if not force and record is not None and record.fingerprint == _fingerprint(path):
                continue  # unchanged (ready, or failed for the same file: no retry storm)
            new = self._load(name, version, path)
            if new.state is not State.READY and record is not None and record.loaded is not None:
                # A serving version whose files changed or became unreadable and does not load
                # again keeps serving what it loaded; the next change of the file is retried.
                record.fingerprint, record.reason = new.fingerprint, new.reason
                report.failed.append(f"{name}/{version}")
                continue
            updated[version] = new
            (report.loaded if new.state is State.READY else report.failed).append(
                f"{name}/{version}"
            )
        for version in sorted(set(current) - set(disk)):
            updated.pop(version)
            report.removed.append(f"{name}/{version}")
        self._publish(name, updated, current)

    def _publish(
        self, name: str, updated: dict[int, VersionRecord], previous: dict[int, VersionRecord]
    ) -> None:
        models = dict(self._models)
        if updated:
            models[name] = updated
        else:
            models.pop(name, None)
        self._models = models  # one reference swap: readers see old or new, never half
        for version, old in previous.items():
            replaced = updated.get(version)
            gone = replaced is None or replaced.loaded is not old.loaded
            if old.loaded is not None and gone and self._on_unload is not None:
                self._on_unload(old.loaded)

    def load_model(self, name: str) -> SyncReport:
        """(Re)load one model from disk; 404 when it is not in the repository."""
        if name not in scan(self.root):
            raise ModelNotFound(f"model '{name}' is not in the repository")
        return self.sync(only={name}, force=True)

    def unload_model(self, name: str) -> None:
        """Stop serving a model until it is loaded again (the poller leaves it alone)."""
        with self._write_lock:
            previous = self._models.get(name)
            if previous is None:
                raise ModelNotFound(f"model '{name}' is not loaded")
            self._disabled.add(name)
            self._publish(name, {}, previous)
        log.info("model unloaded", extra={"model": name})

    # -- lookups ---------------------------------------------------------------------------
    def names(self) -> list[str]:
        return sorted(self._models)

    def knows(self, name: str) -> bool:
        return name in self._models

    def ready_count(self) -> int:
        """Versions loaded and serving (no disk access: safe on the event loop)."""
        return sum(1 for versions in self._models.values() for r in versions.values() if r.loaded)

    def serving_state(self) -> tuple[dict[str, int], int]:
        """(versions serving per execution provider in use, versions that cannot serve), for
        the metrics; no disk access."""
        ready: dict[str, int] = {}
        unavailable = 0
        for versions in self._models.values():
            for r in versions.values():
                if r.loaded is not None:
                    ready[r.loaded.provider] = ready.get(r.loaded.provider, 0) + 1
                if r.state is not State.READY:
                    unavailable += 1
        return ready, unavailable

    def get(self, name: str, version: str | None = None) -> ModelVersion:
        """The version to serve: the given one, or the highest ready version."""
        versions = self._models.get(name)
        if versions is None:
            # Not the list of models: which models a service holds is not every client's business.
            raise ModelNotFound(f"unknown model '{name}'")
        if version is None or version == "":
            ready = [r for r in versions.values() if r.loaded is not None]
            if not ready:
                latest = versions[max(versions)]
                raise ModelNotReady(f"model '{name}' is not ready: {latest.reason}")
            return max(ready, key=lambda r: r.version).loaded  # type: ignore[return-value]
        number = version_number(version)
        if number is None:
            raise ModelNotFound(
                f"model '{name}' has no version {version!r}: versions are positive integers "
                "written without leading zeros (1, 2, ...)"
            )
        record = versions.get(number)
        if record is None:
            raise ModelNotFound(
                f"model '{name}' has no version {version}; versions: {sorted(versions)}"
            )
        if record.loaded is None:
            raise ModelNotReady(f"model '{name}' version {version} is not ready: {record.reason}")
        return record.loaded

    def versions(self, name: str) -> list[int]:
        return sorted(self._models.get(name, {}))

    def ready(self, strict: bool = False) -> bool:
        """Server readiness: initial load finished and some (strict: every) version ready."""
        if not self.initial_load_done or not self._models:
            return False
        records = [r for versions in self._models.values() for r in versions.values()]
        states = [r.state is State.READY for r in records]
        return all(states) if strict else any(states)

    def _not_loaded_reason(self, name: str) -> str:
        if name in self._models and self._version_policy is not None:
            return "not selected by the model's version_policy"
        return "not loaded"

    def index(self, ready_only: bool = False) -> list[dict[str, str]]:
        """The repository extension's index: every version on disk or loaded, with its state
        (``ready_only``: the request's ``{"ready": true}``, only versions that can serve)."""
        entries = []
        on_disk = scan(self.root)
        for name in sorted(set(on_disk) | set(self._models)):
            loaded = self._models.get(name, {})
            for version in sorted(set(on_disk.get(name, {})) | set(loaded)):
                record = loaded.get(version)
                entry = {
                    "name": name,
                    "version": str(version),
                    "state": record.state.value if record else State.UNAVAILABLE.value,
                    "reason": record.reason if record else self._not_loaded_reason(name),
                }
                if ready_only and entry["state"] != State.READY.value:
                    continue
                entries.append(entry)
        return entries
