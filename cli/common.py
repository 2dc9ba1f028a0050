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

EXIT_OK = 0
EXIT_RUNTIME = 1
EXIT_USAGE = 2
LOG_LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR")
LOG_FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"

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


def configure_logging(level: str) -> None:
    """One line per event on stderr.

    Raises:
        typer.BadParameter: an unknown level (exit 2).
    """
    name = level.upper()
    if name not in LOG_LEVELS:
        raise typer.BadParameter(f"must be one of {', '.join(LOG_LEVELS)}, got {level!r}")
    logging.basicConfig(level=name, format=LOG_FORMAT, stream=sys.stderr, force=True)


def fail(message: str, code: int) -> typer.Exit:
    """Print ``message`` as one line on stderr; return the Exit to raise."""
    typer.echo(f"car: {message}", err=True)
    return typer.Exit(code)
