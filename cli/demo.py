"""``car demo``: the main job on the embedded backends (see ``cli/demo_scenario.py``)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from ..errors import CarError
from .common import EXIT_RUNTIME, EXIT_USAGE, fail
from .demo_scenario import Demo


def demo(
    data_dir: Annotated[
        Path | None,
        typer.Option("--data-dir", help="Data directory (default: a new temporary one)."),
    ] = None,
    keep: Annotated[
        bool, typer.Option("--keep", help="Keep the data directory and runner logs.")
    ] = False,
) -> None:
    """Replicate a provider app's volume to a consumer app on this host and report timings."""
    if data_dir is not None and data_dir.exists() and not data_dir.is_dir():
        raise fail(
            f"--data-dir {data_dir} is not a directory: pass a directory (created if missing)",
            EXIT_USAGE,
        )
    typer.echo("car demo: provider -> consumer volume-sync on this host")
    try:
        report = Demo(data_dir, keep=keep, say=typer.echo).run()
    except (CarError, OSError) as exc:  # OSError: e.g. the data dir is not writable
        raise fail(f"demo failed: {exc}", EXIT_RUNTIME) from None
    typer.echo("")
    for line in report.lines():
        typer.echo(line)
    typer.echo("car demo: ok")
