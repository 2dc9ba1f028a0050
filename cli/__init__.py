"""The ``car`` command line: builds the Typer app and registers every command group.

One module per command group (``run``, ``demo``, ``sync``); each defines plain
functions (and ``sync`` its own sub-app), and this module is the only place that
registers them, so importing a command module has no side effect and no module imports
this one back. Exit codes and shared options live in ``cli/common.py``.
"""

from __future__ import annotations

import typer

from . import demo, run, sync, sync_ops

app = typer.Typer(add_completion=False, no_args_is_help=True, help="Container app runner.")


@app.callback()
def _root() -> None:
    """Container app runner with volume-sync."""


app.command("run")(run.run)
app.command("demo")(demo.demo)
for _name in ("publish", "snapshots", "restore", "unpin"):
    sync.sync_app.command(_name)(getattr(sync_ops, _name))
app.add_typer(sync.sync_app, name="sync")


def main() -> None:
    """Console-script entry point (``car``)."""
    app()
