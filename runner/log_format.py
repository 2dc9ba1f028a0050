"""How a runner's log lines look: every line names its instance, text or JSON.

A host runs several ``car run`` processes (one per instance) into one journal, so every
line must say which instance wrote it, also the lines of module loggers that know nothing
about instances (retries, transfer progress, chunk writers). One ``car run`` process runs
one instance, so the instance is stamped by a filter on the handler: it sees every record
of every logger and thread of the process, set up once where logging is configured.

``json`` (README, "Logs and output") is one object per line for journald or Loki:
``ts`` (UTC, milliseconds), ``level``, ``logger``, ``instance``, ``message`` and
``exc_info`` (the formatted traceback) when an exception is logged.
"""

from __future__ import annotations

import json
import logging
import time
from typing import Final, TextIO

LOG_FORMATS: Final = ("text", "json")
TEXT_FORMAT: Final = "%(asctime)s %(levelname)s %(name)s [%(instance)s]: %(message)s"
NO_INSTANCE: Final = "-"


def utc_iso_ms(created: float) -> str:
    """``2026-12-01T15:43:34.123Z``: the same UTC spelling as ``car sync history``."""
    whole = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(created))
    return f"{whole}.{int(created % 1 * 1000):03d}Z"


class InstanceFilter(logging.Filter):
    """Stamps ``record.instance`` (unless the caller passed one in ``extra``)."""

    def __init__(self, instance: str) -> None:
        super().__init__()
        self.instance = instance

    def filter(self, record: logging.LogRecord) -> bool:
        if not getattr(record, "instance", None):
            record.instance = self.instance
        return True


class TextFormatter(logging.Formatter):
    """One line per event, UTC time first."""

    def __init__(self) -> None:
        super().__init__(TEXT_FORMAT)

    def formatTime(self, record: logging.LogRecord, datefmt: str | None = None) -> str:
        return utc_iso_ms(record.created)


class JsonFormatter(logging.Formatter):
    """One JSON object per line; a traceback stays inside its object (``exc_info``)."""

    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, object] = {
            "ts": utc_iso_ms(record.created),
            "level": record.levelname,
            "logger": record.name,
            "instance": getattr(record, "instance", NO_INSTANCE),
            "message": record.getMessage(),
        }
        if record.exc_info:
            entry["exc_info"] = self.formatException(record.exc_info)
        if record.stack_info:
            entry["stack_info"] = record.stack_info
        return json.dumps(entry, ensure_ascii=False, default=str)


def install(level: str, log_format: str, instance: str | None, stream: TextIO) -> None:
    """Replace the root handlers with one on ``stream`` in ``log_format``, tagged ``instance``."""
    handler = logging.StreamHandler(stream)
    handler.setFormatter(JsonFormatter() if log_format == "json" else TextFormatter())
    handler.addFilter(InstanceFilter(instance or NO_INSTANCE))
    logging.basicConfig(level=level, handlers=[handler], force=True)
