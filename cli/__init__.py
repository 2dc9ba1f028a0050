"""The ``car`` command line: builds the Typer app and registers every command group.

One module per command group (``run``, ``demo``, ``sync``, ``keys``); each defines plain
functions (and ``sync`` its own sub-app), and this module is the only place that
registers them, so importing a command module has no side effect and no module imports
this one back. Exit codes and shared options live in ``cli/common.py``.
"""

from __future__ import annotations

from importlib.metadata import PackageNotFoundError, version
from typing import Annotated

import typer

from . import demo, keys, run, sync, sync_ops

# add_completion: Typer's --install-completion / --show-completion (README, "Logs and output").
app = typer.Typer(add_completion=True, no_args_is_help=True, help="Container app runner.")


def _installed_version() -> str:
    """The version pip installed (package metadata), so it never drifts from pyproject."""
    try:
        return version("container_apps")
    except PackageNotFoundError:
        return "unknown (not installed; run `pip install -e .`)"


def _print_version(value: bool) -> None:
    if value:
        typer.echo(f"car {_installed_version()}")
        raise typer.Exit()


@app.callback()
def _root(
    _version: Annotated[
        bool,
        typer.Option(
            "--version", callback=_print_version, is_eager=True, help="Print the version and exit."
        ),
    ] = False,
) -> None:
    """Container app runner with volume-sync."""


app.command("run")(run.run)
app.command("demo")(demo.demo)
for _name in ("publish", "snapshots", "restore", "unpin"):
    sync.sync_app.command(_name)(getattr(sync_ops, _name))
app.add_typer(sync.sync_app, name="sync")
app.add_typer(keys.keys_app, name="keys")


def main() -> None:
    """Console-script entry point (``car``)."""
    app()
