"""The ``car`` command line (SPEC §10).

Exit codes: 0 ok, 2 usage or config error (reported before Docker or any volume is
touched), 1 runtime failure. Errors are one line naming the problem and the fix; the
runner logs one line per event to stderr.
"""

from __future__ import annotations

import logging
import sys
from pathlib import Path
from typing import Annotated

import typer

from .config_file import load_runner_config
from .container_app_runner import ContainerAppRunnerPlugin
from .errors import CarError, ConfigError
from .layout import DataDir, default_data_dir
from .shutdown import ForcedExit

EXIT_OK = 0
EXIT_RUNTIME = 1
EXIT_USAGE = 2
LOG_LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR")
LOG_FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"

app = typer.Typer(add_completion=False, no_args_is_help=True, help="Container app runner.")
sync_app = typer.Typer(no_args_is_help=True, help="Volume-sync status, history and retry.")
app.add_typer(sync_app, name="sync")

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


@app.callback()
def _root() -> None:
    """Container app runner with volume-sync."""


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


@app.command()
def run(
    config: Annotated[Path, typer.Argument(help="Runner config file (JSON, or YAML).")],
    data_dir: DataDirOption = None,
    log_level: LogLevelOption = "INFO",
) -> None:
    """Run one app container in the foreground until SIGINT/SIGTERM (or RESTART_POLICY gives up)."""
    configure_logging(log_level)
    try:
        cfg = load_runner_config(config)
    except ConfigError as exc:
        for problem in exc.problems:
            typer.echo(f"car: config error: {problem}", err=True)
        fix = exc.hint or "fix the problems above"
        raise fail(f"cannot use config {config}: {fix}", EXIT_USAGE) from None
    root = data_dir or default_data_dir()
    runner = ContainerAppRunnerPlugin(cfg, DataDir(root.absolute()))
    try:
        code = runner.run_forever()
    except ForcedExit:
        raise fail(
            "forced exit: cleanup abandoned; run the same `car run` again to sweep leftovers",
            EXIT_RUNTIME,
        ) from None
    except CarError as exc:
        raise fail(str(exc), EXIT_RUNTIME) from None
    raise typer.Exit(code)


# --- further command modules ---------------------------------------------------------
# Importing these registers `car demo` and `car sync status|history|retry` on `app`.
from . import cli_demo, cli_sync  # noqa: E402, F401


def main() -> None:
    """Console-script entry point (``car``)."""
    app()
