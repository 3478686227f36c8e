"""Plan and carry out one publishing run: copy, verify, load, rename; then retention.

A version becomes visible only after every file matched its checksum and ``model.onnx``
loaded in ONNX Runtime. Versions are processed newest first, so a service watching the
repository switches once, to the newest good version. A model that does not exist yet is
staged in a hidden folder and appears at once, with its model-level files and at least
one verified version, or not at all. Versions already present are never touched:
versions are immutable, publish a new number to change a model.
"""

from __future__ import annotations

import logging
import secrets
from dataclasses import dataclass, field
from pathlib import Path

from service.sync.checksum import file_digests, is_manifest, published_sha256, verify
from service.sync.errors import (
    DestinationError,
    SourceError,
    SyncError,
    VerificationError,
)
from service.sync.repo import (
    TMP_PREFIX,
    discard,
    leftovers,
    replace_file,
    repository_lock,
    retention_victims,
    retire,
    reveal,
    seal,
    staging_dir,
    visible_versions,
)
from service.sync.sources import Source, SourceFile, SourceModel, SourceVersion
from service.sync.ui import Reporter

MODEL_FILE = "model.onnx"


@dataclass
class ModelPlan:
    """What one run will do to one model."""

    source: SourceModel
    present: list[int]
    copy: list[int]  # newest first
    extras: list[str]  # model-level files that are missing or differ
    delete: list[int]  # predicted, assuming every copy succeeds

    @property
    def idle(self) -> bool:
        """Nothing to do for this model."""
        return not (self.copy or self.extras or self.delete)


@dataclass
class SyncReport:
    """The outcome of a run, for the summary line and the exit code."""

    models: int = 0
    copied: list[str] = field(default_factory=list)
    updated: list[str] = field(default_factory=list)
    deleted: list[str] = field(default_factory=list)
    cleaned: list[str] = field(default_factory=list)
    failures: list[SyncError] = field(default_factory=list)

    @property
    def exit_code(self) -> int:
        """0, or the exit code of the first failure."""
        return self.failures[0].exit_code if self.failures else 0


def validate_onnx(path: Path, label: str) -> None:
    """Prove the model loads: one CPU InferenceSession, the same check the service makes."""
    import onnxruntime as ort  # lazy: --help and --dry-run stay fast

    opts = ort.SessionOptions()
    opts.log_severity_level = 3
    opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_DISABLE_ALL
    try:
        ort.InferenceSession(str(path), sess_options=opts, providers=["CPUExecutionProvider"])
    except Exception as exc:
        msg = f"{label}: {MODEL_FILE} is not a loadable ONNX model: {exc}"
        raise VerificationError(msg) from exc


def _extra_differs(source: Source, item: SourceFile, existing: Path) -> bool:
    if not existing.is_file():
        return True
    expected = source.expected(item)
    if not expected:
        return True  # no cheap digest: fetch it and compare (see _update_extra)
    return file_digests(existing, expected.keys()) != expected


def plan_model(source: Source, model: SourceModel, dest: Path, keep: int) -> ModelPlan:
    """Copy the source versions that will be among the newest ``keep``; prune the rest."""
    present = visible_versions(dest / model.name)
    union = sorted(set(present) | set(model.versions), reverse=True)
    wanted = set(union[:keep]) if keep > 0 else set(union)
    copy = sorted((v for v in model.versions if v in wanted and v not in present), reverse=True)
    extras = [
        rel
        for rel, item in sorted(model.extras.items())
        if _extra_differs(source, item, dest / model.name / rel)
    ]
    delete = retention_victims(present + copy, keep, copy)
    return ModelPlan(model, present, copy, extras, delete)


def _staging(parent: Path, label: str, what: str) -> Path:
    try:
        return staging_dir(parent, label)
    except OSError as exc:
        raise DestinationError(f"cannot stage {what} in {parent}: {exc}") from exc


class Publisher:
    """Carries out plans against one destination repository."""

    def __init__(self, source: Source, dest: Path, keep: int, reporter: Reporter) -> None:
        self.source = source
        self.dest = dest
        self.keep = keep
        self.reporter = reporter
        self.log = reporter.log

    # -- one file --------------------------------------------------------------------------
    def _fetch_verified(
        self,
        item: SourceFile,
        path: Path,
        expected: dict[str, str],
        label: str,
        required: bool = True,
    ) -> None:
        if required and not expected:
            raise VerificationError(
                f"cannot verify {label}: the source gives no usable checksum (multipart or "
                f"SSE-KMS upload); publish {item.rel}.sha256 or SHA256SUMS in its version folder"
            )
        path.parent.mkdir(parents=True, exist_ok=True)
        with self.reporter.transfer(label, item.size) as progress:
            read = self.source.fetch(item, path, progress)
        want = dict(expected)
        for algorithm, digest in read.items():
            if want.setdefault(algorithm, digest) != digest:
                raise VerificationError(f"{label} changed at the source during the copy")
        size = path.stat().st_size
        if size != item.size:
            raise VerificationError(f"size mismatch for {label}: expected {item.size}, got {size}")
        if want:
            verify(path, want, label)

    def _expected(self, item: SourceFile, published: dict[str, str], label: str) -> dict[str, str]:
        expected = self.source.expected(item)
        if item.rel in published:
            if expected.get("sha256", published[item.rel]) != published[item.rel]:
                raise VerificationError(
                    f"checksum mismatch for {label}: the published SHA-256 disagrees with the "
                    "source's own checksum"
                )
            expected["sha256"] = published[item.rel]
        return expected

    # -- one version -----------------------------------------------------------------------
    def _fill(self, version: SourceVersion, staged: Path) -> None:
        origin = f"{self.source.url}/{version.model}/{version.version}"
        if MODEL_FILE not in version.files:
            raise VerificationError(f"{origin}: no {MODEL_FILE} in the version folder")
        manifests = {r: f for r, f in version.files.items() if is_manifest(r)}
        texts: dict[str, str] = {}
        for rel, item in sorted(manifests.items()):
            # Verified when the source can, but not required: a damaged manifest can only make
            # the files it lists fail their check, never pass it.
            label = f"{version.model}/{version.version}/{rel}"
            expected = self.source.expected(item)
            self._fetch_verified(item, staged / rel, expected, label, required=False)
            texts[rel] = (staged / rel).read_text(encoding="utf-8", errors="replace")
        published = published_sha256(texts, origin)
        missing = sorted(set(published) - set(version.files))
        if missing:
            raise VerificationError(f"{origin}: checksums published for missing files {missing}")
        for rel, item in sorted(version.files.items()):
            if rel in manifests:
                continue
            label = f"{version.model}/{version.version}/{rel}"
            expected = self._expected(item, published, label)
            self._fetch_verified(item, staged / rel, expected, label)

    def publish_version(self, version: SourceVersion, model_dir: Path) -> None:
        """Stage, verify, load and reveal one version; on any failure remove the staging."""
        label = f"{version.model}/{version.version}"
        staged = _staging(model_dir, str(version.version), label)
        try:
            try:
                self._fill(version, staged)
                validate_onnx(staged / MODEL_FILE, label)
                seal(staged)
                reveal(staged, model_dir / str(version.version))
            except OSError as exc:
                raise DestinationError(f"writing {label} to {model_dir}: {exc}") from exc
        except BaseException:
            discard(staged)
            raise

    # -- model-level files -----------------------------------------------------------------
    def _update_extra(self, model: SourceModel, rel: str, model_dir: Path) -> bool:
        item = model.extras[rel]
        final = model_dir / rel
        staged = model_dir / f"{TMP_PREFIX}{rel}-{secrets.token_hex(4)}"
        label = f"{model.name}/{rel}"
        try:
            expected = self.source.expected(item)
            if not expected:
                raise VerificationError(f"cannot verify {label}: the source gives no checksum")
            self._fetch_verified(item, staged, expected, label)
            if final.is_file() and file_digests(final) == file_digests(staged):
                discard(staged)
                return False
            replace_file(staged, final)
            return True
        except OSError as exc:
            discard(staged)
            raise DestinationError(f"writing {label}: {exc}") from exc
        except BaseException:
            discard(staged)
            raise

    # -- one model -------------------------------------------------------------------------
    def publish_model(self, plan: ModelPlan, report: SyncReport) -> None:
        """Apply one model's plan; failures are recorded and the next model still runs."""
        model = plan.source
        final_dir = self.dest / model.name
        new = not final_dir.exists()
        work_dir = _staging(self.dest, f"model-{model.name}", model.name) if new else final_dir
        failed: list[SyncError] = []
        published: list[int] = []
        updated: list[str] = []
        try:
            for v in plan.copy:
                try:
                    self.publish_version(model.versions[v], work_dir)
                except SyncError as exc:
                    failed.append(exc)
                    self.log.error("not published: %s", exc)
                    continue
                published.append(v)
                if not new:
                    self.log.info("published %s/%d", model.name, v)
            extras_ok = True
            for rel in plan.extras:
                try:
                    if self._update_extra(model, rel, work_dir):
                        updated.append(f"{model.name}/{rel}")
                except SyncError as exc:
                    failed.append(exc)
                    extras_ok = False
                    self.log.error("not updated: %s", exc)
            if new:
                # A new model appears at once, with its config and at least one good version.
                if not (published and extras_ok):
                    discard(work_dir)
                    published.clear()
                    updated.clear()
                else:
                    seal(work_dir)
                    reveal(work_dir, final_dir)
                    self.log.info(
                        "published new model %s (versions %s)",
                        model.name,
                        ", ".join(map(str, sorted(published))),
                    )
        except BaseException:
            if new:
                discard(work_dir)
            raise
        report.copied.extend(f"{model.name}/{v}" for v in sorted(published))
        report.updated.extend(updated)
        for name in updated:
            self.log.info("updated %s", name)
        report.failures.extend(failed)
        if failed:
            self.log.warning("retention skipped for %s because of the failure above", model.name)
            return
        for v in retention_victims(visible_versions(final_dir), self.keep, published):
            retire(final_dir / str(v))
            report.deleted.append(f"{model.name}/{v}")
            self.log.info("removed old version %s/%d (keep %d)", model.name, v, self.keep)


def run_sync(
    source: Source, dest: Path, keep: int, reporter: Reporter, dry_run: bool = False
) -> SyncReport:
    """One publishing run. Raises SyncError for failures that stop the whole run."""
    log = reporter.log
    if not dest.is_dir():
        raise DestinationError(
            f"model repository {dest} does not exist: is the file system mounted there?"
        )
    models = source.scan()
    if not models:
        raise SourceError(
            f"no model versions found under {source.url} "
            f"(expected <model>/<numeric version>/{MODEL_FILE})"
        )
    report = SyncReport(models=len(models))
    if dry_run:
        plans = [plan_model(source, m, dest, keep) for m in models]
        for path in leftovers(dest):
            log.info("would remove leftover %s", path)
        _describe(plans, log, keep, prefix="would ")
        return report
    with repository_lock(dest):
        for path in leftovers(dest):
            discard(path)
            report.cleaned.append(str(path))
            log.info("removed leftover %s from an interrupted run", path)
        plans = [plan_model(source, m, dest, keep) for m in models]
        if all(p.idle for p in plans):
            log.info("up to date: %d models, nothing to copy", len(models))
            return report
        _describe(plans, log, keep, prefix="will ")
        publisher = Publisher(source, dest, keep, reporter)
        for plan in plans:
            if not plan.idle:
                publisher.publish_model(plan, report)
    log.info(
        "done: %d versions published, %d model files updated, %d old versions removed, %d failures",
        len(report.copied),
        len(report.updated),
        len(report.deleted),
        len(report.failures),
        extra={"published": report.copied, "removed": report.deleted},
    )
    return report


def _describe(plans: list[ModelPlan], log: logging.Logger, keep: int, prefix: str) -> None:
    for p in plans:
        name = p.source.name
        if p.idle:
            log.info("%s: up to date (versions %s)", name, _fmt(p.present))
            continue
        parts = []
        if p.copy:
            parts.append(f"{prefix}copy versions {_fmt(sorted(p.copy))}")
        if p.extras:
            parts.append(f"{prefix}update {', '.join(p.extras)}")
        if p.delete:
            parts.append(f"{prefix}remove versions {_fmt(p.delete)} (keep {keep})")
        log.info("%s: %s", name, "; ".join(parts))


def _fmt(versions: list[int]) -> str:
    return ", ".join(map(str, versions)) or "none"
