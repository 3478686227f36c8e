"""JSON logging: one object per line on stdout, the format the FireLens log router routes on.

Every record has ``time`` (ISO 8601, UTC), ``level``, ``logger`` and ``message``; extra fields
passed with ``extra=`` are added as keys. Exceptions carry their traceback in ``exc_info`` inside
the same record, so one failure is one line (and one CloudWatch event).

Access logs come from the logger ``service.access`` with ``method``, ``path``, ``status`` (int),
``duration_ms`` and ``user_agent``.
"""

from __future__ import annotations

import logging
import sys
from datetime import UTC, datetime
from typing import Any

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


def configure_logging(level: str = "INFO") -> None:
    """Route the root logger (and uvicorn's) to one JSON handler on stdout.

    uvicorn's own access log is silenced: the service writes a richer one itself.
    """
    handler = logging.StreamHandler(sys.stdout)
    handler.setFormatter(json_formatter())
    handler.addFilter(_DropColorMessage())
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level)
    for name in ("uvicorn", "uvicorn.error"):
        lg = logging.getLogger(name)
        lg.handlers[:] = []
        lg.propagate = True
    access = logging.getLogger("uvicorn.access")
    access.handlers[:] = []
    access.propagate = False
    access.disabled = True
