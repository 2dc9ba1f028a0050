"""What every ``car`` command shares: exit codes, common options, logging, one-line errors.

Exit codes: 0 ok, 2 usage or config error (reported before Docker or any volume is
touched), 1 runtime failure; ``car sync status`` adds 3, 4 and 5 for unhealthy instances
(``sync/health.py``, README "Health and status"). Errors are one line naming the problem
and the fix; the runner logs one line per event to stderr.
"""

from __future__ import annotations

import logging
import sys
from pathlib import Path
from typing import Annotated

import typer

from ..runner.log_format import LOG_FORMATS, JsonFormatter, install

EXIT_OK = 0
EXIT_RUNTIME = 1
EXIT_USAGE = 2
LOG_LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR")

DataDirOption = Annotated[
    Path | None,
    typer.Option(
        "--data-dir",
        envvar="CAR_DATA_DIR",
        help="Data directory (default /var/lib/car as root, else ~/.local/share/car).",
        show_default=False,
    ),
]
LogLevelOption = Annotated[
    str, typer.Option("--log-level", help="DEBUG, INFO, WARNING or ERROR.", case_sensitive=False)
]
LogFormatOption = Annotated[
    str,
    typer.Option(
        "--log-format",
        help="text (one line per event) or json (one JSON object per line, for journald/Loki).",
        case_sensitive=False,
    ),
]


def configure_logging(level: str, log_format: str = "text", instance: str | None = None) -> None:
    """One line per event on stderr, each naming ``instance`` (README, "Logs and output").

    Raises:
        typer.BadParameter: an unknown level or format (exit 2).
    """
    name = level.upper()
    if name not in LOG_LEVELS:
        raise typer.BadParameter(f"must be one of {', '.join(LOG_LEVELS)}, got {level!r}")
    shape = log_format.lower()
    if shape not in LOG_FORMATS:
        raise typer.BadParameter(f"must be one of {', '.join(LOG_FORMATS)}, got {log_format!r}")
    install(name, shape, instance, sys.stderr)


def error_line(message: str) -> None:
    """``car: message`` on stderr; a JSON log object instead under ``--log-format json``,
    so a service's journal stays one JSON object per line up to its last line."""
    root = logging.getLogger()
    if any(isinstance(h.formatter, JsonFormatter) for h in root.handlers):
        logging.getLogger("car").error(message)
    else:
        typer.echo(f"car: {message}", err=True)


def fail(message: str, code: int) -> typer.Exit:
    """Print ``message`` as one line on stderr (``error_line``); return the Exit to raise."""
    error_line(message)
    return typer.Exit(code)
