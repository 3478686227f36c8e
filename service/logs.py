"""JSON logging: one object per line on stdout, the format the FireLens log router routes on.

Every record has ``time`` (ISO 8601, UTC), ``level``, ``logger`` and ``message``; extra fields
passed with ``extra=`` are added as keys. Exceptions carry their traceback in ``exc_info`` inside
the same record, so one failure is one line (and one CloudWatch event).

Access logs (logger name ``service.access``) have ``method``, ``path``, ``status`` (int),
``duration_ms``, ``user_agent`` and ``client``. They are written by :func:`access`, not through
``logging``: a ``LogRecord`` plus a JSON formatter plus a flushed write per request cost about a
third of a batch-1 request's CPU (measured with bench/). :func:`access` builds the same record
with orjson and hands the line to the :class:`LineWriter`, which writes the queued lines in
one system call 50 ms later (a timer on the event loop), and everything still pending at
shutdown (``flush_logs``, also run at exit). Other records go through
``logging`` as before and are written at once, after any pending access lines, so the order
on stdout is the order of logging and no two lines ever interleave.
"""

from __future__ import annotations

import asyncio
import atexit
import logging
import sys
import threading
import time
from collections import deque
from datetime import UTC, datetime
from typing import IO, Any

import orjson
from pythonjsonlogger.json import JsonFormatter

ACCESS_LOGGER = "service.access"
DOCUMENT = "document"  # extra key of a record written verbatim as one JSON object

_RENAMED = {"levelname": "level", "name": "logger"}


class _Formatter(JsonFormatter):
    """Always six fractional digits in ``time``: ``isoformat()`` drops them when they are zero,
    and the log router's time parser expects a fixed format.

    A record carrying a ``document`` (``extra={"document": {...}}``, e.g. an Embedded Metric
    Format record from service/emf.py) is written as that JSON object alone: it then goes through
    the same handler (and lock) as every other line, never interleaved with them."""

    def format(self, record: logging.LogRecord) -> str:
        document = getattr(record, DOCUMENT, None)
        if isinstance(document, dict):
            return orjson.dumps(document).decode()
        return super().format(record)

    def add_fields(
        self, log_data: dict[str, Any], record: logging.LogRecord, message_dict: dict[str, Any]
    ) -> None:
        super().add_fields(log_data, record, message_dict)
        log_data["time"] = datetime.fromtimestamp(record.created, tz=UTC).isoformat(
            timespec="microseconds"
        )


def json_formatter() -> logging.Formatter:
    """The formatter used for every handler of the service."""
    return _Formatter(
        "{levelname}{name}{message}",
        style="{",
        rename_fields=_RENAMED,
        timestamp="time",
        json_ensure_ascii=False,
    )


class _DropColorMessage(logging.Filter):
    """uvicorn adds an ANSI-coloured copy of each message; it has no place in JSON logs."""

    def filter(self, record: logging.LogRecord) -> bool:
        record.__dict__.pop("color_message", None)
        return True


class LineWriter:
    """Whole lines to one stream, in order, from any thread.

    ``buffer()`` queues a line (a deque append, atomic under the GIL); what is queued is
    written ``interval_s`` later by the event loop the line came from (a timer), or by a
    daemon thread for lines from other threads, and at once when ``high_water`` lines wait.
    ``write()`` writes the queued lines and its own at once (for records that must not wait,
    such as errors). ``flush()`` writes what is queued and returns when it is written (at
    shutdown). Lines go out only from under one lock, many in one write call, so they never
    interleave. When the reader of stdout falls behind and ``max_pending`` lines (or about
    ``max_pending_bytes``) are queued, ``buffer()`` writes them itself, so the caller waits as
    it did with a plain blocking write: lines are never dropped and memory stays bounded.
    """

    def __init__(
        self,
        stream: IO[str],
        interval_s: float = 0.05,
        high_water: int = 256,
        max_pending: int = 16384,
        max_pending_bytes: int = 8 * 1024 * 1024,
    ) -> None:
        self.stream = stream
        self.interval_s = interval_s
        self.high_water = high_water
        self.max_pending = max_pending
        self.max_pending_bytes = max_pending_bytes
        self._bytes = 0  # queued bytes, approximately (not locked: a bound, not a count)
        self._binary: IO[bytes] | None = getattr(stream, "buffer", None)
        self._pending: deque[bytes] = deque()
        self._write_lock = threading.Lock()  # one writer at a time: lines stay in order
        self._start_lock = threading.Lock()
        self._wake = threading.Event()
        self._closed = False
        self._failed = False
        self._thread: threading.Thread | None = None
        self._timer_loop: asyncio.AbstractEventLoop | None = None  # loop with a flush pending

    def buffer(self, line: bytes) -> None:
        """Queue one line (ending in a newline). On an event loop, the loop itself writes the
        queue ``interval_s`` later (a timer; no other thread has to take the GIL, which on a
        busy CPU can stall the loop for a scheduler time slice); from other threads, the
        background writer thread does."""
        pending = self._pending
        pending.append(line)
        self._bytes += len(line)
        queued = len(pending)
        if self._closed or queued >= self.max_pending or self._bytes >= self.max_pending_bytes:
            self.flush()
            return
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:
            loop = None
        if loop is not None:
            if queued >= self.high_water:
                self.flush()
            elif self._timer_loop is not loop:
                self._timer_loop = loop
                loop.call_later(self.interval_s, self._flush_on_loop)
            return
        if self._thread is None:
            self._start()
        if queued >= self.high_water:
            self._wake.set()

    def _flush_on_loop(self) -> None:
        self._timer_loop = None
        try:
            self.flush()
        except Exception as exc:  # stdout gone: say so (once) where it can still be seen
            self._report(exc)

    def _start(self) -> None:
        with self._start_lock:
            if self._thread is None and not self._closed:
                self._thread = threading.Thread(target=self._run, name="log-writer", daemon=True)
                self._thread.start()

    def write(self, line: bytes) -> None:
        """Write the queued lines and then ``line``, before returning."""
        with self._write_lock:
            self._emit(self._take() + line)

    def flush(self) -> None:
        """Write every queued line, before returning."""
        self._timer_loop = None  # the next line on a loop schedules a new timer
        with self._write_lock:
            data = self._take()
            if data:
                self._emit(data)

    def close(self) -> None:
        """Stop the background thread and write what is left; later lines are written at once."""
        self._closed = True
        self._wake.set()
        thread = self._thread
        if thread is not None and thread is not threading.current_thread():
            thread.join(timeout=5)
        self.flush()

    def _take(self) -> bytes:
        """Everything queued so far, joined (only under ``_write_lock``: one taker at a time,
        while other threads may append)."""
        pending = self._pending
        pop = pending.popleft
        self._bytes = 0
        return b"".join([pop() for _ in range(len(pending))])

    def _emit(self, data: bytes) -> None:
        if self._binary is not None:
            self.stream.flush()  # text written to the stream directly (print) goes first
            self._binary.write(data)
            self._binary.flush()
        else:  # a text-only stream (io.StringIO in tests)
            self.stream.write(data.decode("utf-8"))
            self.stream.flush()

    def _run(self) -> None:
        while not self._closed:
            self._wake.wait(self.interval_s)
            self._wake.clear()
            try:
                self.flush()
            except Exception as exc:  # stdout gone: say so (once) where it can still be seen
                self._report(exc)

    def _report(self, exc: Exception) -> None:
        if not self._failed:
            self._failed = True
            print(f"log writer: cannot write to stdout: {exc!r}", file=sys.stderr)


class _LineHandler(logging.Handler):
    """A handler writing each formatted record as one line through the shared writer, at once
    (after any pending access lines)."""

    def __init__(self, writer: LineWriter) -> None:
        super().__init__()
        self.writer = writer

    def emit(self, record: logging.LogRecord) -> None:
        try:
            line = self.format(record).encode("utf-8", "backslashreplace") + b"\n"
            self.writer.write(line)
        except Exception:
            self.handleError(record)


_writer: LineWriter | None = None
_handler: logging.Handler | None = None  # the root handler writing through _writer
_access_logger = logging.getLogger(ACCESS_LOGGER)
_second: tuple[int, str] = (-1, "")


def _iso_time(now: float) -> str:
    """``now`` as ISO 8601 in UTC with microseconds, like the formatter's ``time``; the date and
    time of day are formatted once per second."""
    global _second
    second, micro = divmod(round(now * 1e6), 1_000_000)
    cached = _second
    if cached[0] != second:
        cached = _second = (second, time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(second)))
    return f"{cached[1]}.{micro:06d}+00:00"


def access(
    method: str,
    path: str,
    status: int,
    duration_ms: float,
    user_agent: str,
    client: str | None,
) -> None:
    """Write one access-log record (INFO, logger ``service.access``), the same fields and values
    a ``logging`` call with these ``extra`` fields would write, at a fraction of the cost."""
    if not _access_logger.isEnabledFor(logging.INFO):
        return
    writer = _writer
    message = f"{method} {path} {status}"
    if writer is not None and _handler in logging.root.handlers:
        try:
            line = orjson.dumps(
                {
                    "level": "INFO",
                    "logger": ACCESS_LOGGER,
                    "message": message,
                    "method": method,
                    "path": path,
                    "status": status,
                    "duration_ms": duration_ms,
                    "user_agent": user_agent,
                    "client": client,
                    "time": _iso_time(time.time()),
                },
                option=orjson.OPT_APPEND_NEWLINE,
            )
        except orjson.JSONEncodeError:  # e.g. a lone surrogate: logging's json escapes it
            pass
        else:
            writer.buffer(line)
            return
    # logging is not (or no longer) the service's own, e.g. in an app that embeds this one
    _access_logger.info(
        message,
        extra={
            "method": method,
            "path": path,
            "status": status,
            "duration_ms": duration_ms,
            "user_agent": user_agent,
            "client": client,
        },
    )


def flush_logs() -> None:
    """Write every pending log line now (at shutdown; tests reading stdout)."""
    if _writer is not None:
        _writer.flush()


def _close_writer() -> None:
    global _writer
    writer, _writer = _writer, None
    if writer is not None:
        try:
            writer.close()
        except (OSError, ValueError) as exc:  # its stream is closed already: nowhere to write
            print(f"log writer: cannot write to stdout: {exc!r}", file=sys.stderr)


atexit.register(_close_writer)


def configure_logging(level: str = "INFO") -> None:
    """Route the root logger (and uvicorn's) to one JSON handler on stdout.

    uvicorn's own access log is silenced: the service writes a richer one itself.
    """
    global _writer, _handler
    _close_writer()  # configured again (tests): what the previous writer holds goes out first
    _writer = LineWriter(sys.stdout)
    handler = _handler = _LineHandler(_writer)
    handler.setFormatter(json_formatter())
    handler.addFilter(_DropColorMessage())
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level)
    for name in ("uvicorn", "uvicorn.error"):
        lg = logging.getLogger(name)
        lg.handlers[:] = []
        lg.propagate = True
    access_logger = logging.getLogger("uvicorn.access")
    access_logger.handlers[:] = []
    access_logger.propagate = False
    access_logger.disabled = True
