"""What the publisher tells its operator: log lines plus byte progress bars for big files.

On a terminal: rich log lines and transient progress bars (bytes, speed, ETA). In an ECS task
(no terminal): one JSON object per line on stdout, the format the log router routes on, and
one line per copied file instead of bars.
"""

from __future__ import annotations

import logging
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from types import TracebackType

from rich.console import Console
from rich.logging import RichHandler
from rich.progress import (
    BarColumn,
    DownloadColumn,
    Progress,
    TextColumn,
    TimeRemainingColumn,
    TransferSpeedColumn,
)

from service.logs import json_formatter

LOGGER = "service.sync"


def configure_logger(console: Console, log_format: str) -> logging.Logger:
    """The publisher's logger, writing JSON lines or rich text (``auto``: JSON unless a TTY)."""
    if log_format == "auto":
        log_format = "text" if console.is_terminal else "json"
    handler: logging.Handler
    if log_format == "json":
        handler = logging.StreamHandler(sys.stdout)
        handler.setFormatter(json_formatter())
    else:
        handler = RichHandler(
            console=console, show_time=False, show_path=False, markup=False, rich_tracebacks=False
        )
        handler.setFormatter(logging.Formatter("%(message)s"))
    logger = logging.getLogger(LOGGER)
    logger.handlers[:] = [handler]
    logger.propagate = False
    logger.setLevel(logging.INFO)
    return logger


class Reporter:
    """Logger plus progress bars; use as a context manager around the whole run."""

    def __init__(self, console: Console, logger: logging.Logger) -> None:
        self.console = console
        self.log = logger
        self.bytes_copied = 0
        self._progress = Progress(
            TextColumn("{task.description}"),
            BarColumn(),
            DownloadColumn(),
            TransferSpeedColumn(),
            TimeRemainingColumn(),
            console=console,
            transient=True,
            disable=not console.is_terminal,
        )

    def __enter__(self) -> Reporter:
        self._progress.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self._progress.stop()

    @contextmanager
    def transfer(self, label: str, total: int) -> Iterator[Callable[[int], None]]:
        """A bytes-done callback for one file (boto3 calls it from its transfer threads)."""
        task = self._progress.add_task(label, total=total)
        started = time.monotonic()
        done = 0

        def advance(n: int) -> None:
            nonlocal done
            done += n
            self._progress.update(task, advance=n)

        try:
            yield advance
        finally:
            self._progress.remove_task(task)
            self.bytes_copied += done
        elapsed = max(time.monotonic() - started, 1e-6)
        self.log.info(
            "copied %s (%d bytes, %.1f MB/s)",
            label,
            done,
            done / elapsed / 1e6,
            extra={"file": label, "bytes": done},
        )
