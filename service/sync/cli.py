"""Publish model versions from S3 (or a folder) into the service's model repository on EFS.

    python -m service.sync --source s3://bucket/prefix --dest /models [--keep 3] [--dry-run]

Each option defaults from the environment (SYNC_SOURCE, MODEL_DIR, SYNC_KEEP, SYNC_LOG_FORMAT)
so the ECS task definition can carry the settings and the command stays the same everywhere.
Exit codes: 0 ok / up to date, 1 unexpected error, 2 usage, 3 source unreadable, 4 checksum
or model invalid, 5 another sync running, 6 repository not writable. See docs/operations.md.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import signal
import sys
from collections.abc import Sequence
from pathlib import Path
from types import FrameType
from typing import Any

from rich.console import Console

from service.sync.errors import SyncError, UsageError
from service.sync.publish import run_sync
from service.sync.sources import open_source
from service.sync.ui import Reporter, configure_logger

DEFAULT_KEEP = 3


def _env_int(name: str, default: int) -> int:
    raw = os.environ.get(name, "")
    if not raw:
        return default
    try:
        return int(raw)
    except ValueError:
        raise UsageError(f"{name}={raw!r} is not an integer") from None


def build_parser() -> argparse.ArgumentParser:
    """The command line; defaults are read from the environment when the parser is built."""
    parser = argparse.ArgumentParser(
        prog="python -m service.sync",
        description="Copy model versions atomically into the model repository (EFS).",
    )
    parser.add_argument(
        "--source",
        default=os.environ.get("SYNC_SOURCE", ""),
        help="s3://bucket/prefix or a local folder, laid out <model>/<version>/model.onnx "
        "(env SYNC_SOURCE)",
    )
    parser.add_argument(
        "--dest",
        type=Path,
        default=Path(os.environ.get("MODEL_DIR", "/models")),
        help="model repository root (env MODEL_DIR, default /models)",
    )
    parser.add_argument(
        "--keep",
        type=int,
        default=_env_int("SYNC_KEEP", DEFAULT_KEEP),
        help="versions to keep per model, newest first; 0 keeps all (env SYNC_KEEP, default 3)",
    )
    parser.add_argument(
        "--dry-run", action="store_true", help="say what would change, change nothing"
    )
    parser.add_argument(
        "--log-format",
        choices=["auto", "json", "text"],
        default=os.environ.get("SYNC_LOG_FORMAT", "auto"),
        help="json lines (for the log router) or text; auto: text on a terminal",
    )
    return parser


def _terminate(signum: int, frame: FrameType | None) -> None:
    """ECS stops a task with SIGTERM: unwind so staging folders are removed on the way out."""
    raise SystemExit(128 + signum)


def main(
    argv: Sequence[str] | None = None,
    *,
    s3_client: Any | None = None,
    console: Console | None = None,
) -> int:
    """Run the publisher; returns the process exit code. Clients are injectable for tests."""
    console = console or Console(stderr=True)
    try:
        parser = build_parser()
    except UsageError as exc:
        console.print(f"error: {exc}", markup=False)
        return exc.exit_code
    args = parser.parse_args(argv)
    log = configure_logger(console, args.log_format)
    if args.keep < 0:
        log.error("--keep must be 0 (keep all) or a positive number, got %d", args.keep)
        return UsageError.exit_code
    with contextlib.suppress(ValueError):  # not the main thread (e.g. a test runner's thread)
        signal.signal(signal.SIGTERM, _terminate)
    try:
        source = open_source(args.source, s3_client=s3_client)
        with Reporter(console, log) as reporter:
            report = run_sync(source, args.dest, args.keep, reporter, dry_run=args.dry_run)
    except SyncError as exc:
        log.error("sync failed: %s", exc, extra={"exit_code": exc.exit_code})
        return exc.exit_code
    except Exception as exc:
        log.exception("sync failed unexpectedly: %s", exc, extra={"exit_code": 1})
        return 1
    if report.failures:
        log.error(
            "sync finished with %d failure(s); the first: %s",
            len(report.failures),
            report.failures[0],
            extra={"exit_code": report.exit_code},
        )
    return report.exit_code


def run() -> None:
    """Console entry: exit with :func:`main`'s code."""
    sys.exit(main())


if __name__ == "__main__":
    run()
