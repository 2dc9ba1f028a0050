"""``car sync status|history|retry`` (README, "Inspecting"): operator views over the data directory.

``sync_app`` is registered as ``car sync`` by ``cli/__init__.py``. Reads files (see
``sync/status.py``), so it works whether or not the runner is running; ``status`` also
probes the runner's lock and reads the registry in bounded time (``cli/status_view.py``).
"""

from __future__ import annotations

import json
import shutil
import sys
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console

from ..layout import DataDir, InstancePaths, default_data_dir
from ..sync.health import EXIT_NO_INSTANCES, exit_code
from ..sync.status import history_entries, retry_instance, select_instances
from .common import EXIT_USAGE, DataDirOption, fail
from .formats import iso_utc
from .history_view import render_table, render_tsv
from .status_view import collect, config_registry_urls, status_lines

sync_app = typer.Typer(no_args_is_help=True, help="Volume-sync status, history and retry.")

JsonOption = Annotated[bool, typer.Option("--json", help="Print one JSON document.")]
# Wider than any status line or history table, so rich never truncates off a terminal.
_UNLIMITED_WIDTH = 1000
InstanceArg = Annotated[
    str | None, typer.Argument(help="Instance id (default: every instance in the data dir).")
]


def _instances(data_dir: Any, instance: str | None) -> list[InstancePaths]:
    data = DataDir(data_dir or default_data_dir())
    try:
        return select_instances(data, instance)
    except KeyError:
        known = ", ".join(data.instance_ids())
        where = f"use one of {known}, or" if known else "it has no instances;"
        raise fail(
            f"unknown instance {instance!r} in {data.root}: {where} point --data-dir "
            "(or CAR_DATA_DIR) at the data dir of its runner",
            EXIT_USAGE,
        ) from None


def _console() -> Console:
    """Rich output that a pipe or a file gets whole: off a terminal rich assumes 80
    columns, which wraps status lines and squeezes the history table into "…" cells."""
    console = Console()
    if not console.is_terminal:
        console = Console(width=_UNLIMITED_WIDTH)
    return console


def _when(ts: Any) -> str:
    return iso_utc(ts)


def _short(cid: Any) -> str:
    return f"{cid[:20]}…" if isinstance(cid, str) and len(cid) > 20 else str(cid or "-")


STATUS_HELP = (
    "Health of each instance: runner, last publish/apply, the registry's record now, "
    "quarantine and halt.\n\n"
    'Exit codes (README, "Health and status"): 0 every listed instance is healthy; '
    "3 one is quarantined; 4 a runner is not alive, or the data dir has no instances; "
    "5 one is halted. With several problems the highest code wins. 2 for usage errors. "
    "An unreachable registry is a warning only."
)


@sync_app.command("status", help=STATUS_HELP)
def status(
    instance: InstanceArg = None,
    data_dir: DataDirOption = None,
    as_json: JsonOption = False,
    offline: Annotated[
        bool,
        typer.Option("--no-registry", "--offline", help="Do not read the registry."),
    ] = False,
    configs: Annotated[
        list[Path] | None,
        typer.Option(
            "--config",
            help="A runner config file (repeatable): its STORAGE.REGISTRY, with the password "
            "runner.json leaves out, is read for its instance.",
        ),
    ] = None,
) -> None:
    """See ``STATUS_HELP``; the verdict is ``sync/health.py``'s, the view ``status_view.py``'s."""
    urls = config_registry_urls(configs or [])
    statuses = collect(_instances(data_dir, instance), registry=not offline, urls=urls)
    code = exit_code(statuses) if statuses else EXIT_NO_INSTANCES
    if as_json:
        typer.echo(json.dumps(statuses, indent=2, sort_keys=True))
        raise typer.Exit(code)
    console = _console()
    if not statuses:
        root = DataDir(data_dir or default_data_dir()).root
        console.print(
            f"no instances in {root} (pass --data-dir or set CAR_DATA_DIR to the runner's)",
            highlight=False,
            soft_wrap=True,
        )
    for st in statuses:
        for line in status_lines(st):
            console.print(line, highlight=False, soft_wrap=True)
    raise typer.Exit(code)


@sync_app.command("history")
def history(
    instance: InstanceArg = None,
    data_dir: DataDirOption = None,
    sent: Annotated[bool, typer.Option("--sent", help="Only snapshots published.")] = False,
    received: Annotated[bool, typer.Option("--received", help="Only snapshots applied.")] = False,
    as_json: JsonOption = False,
    wide: Annotated[
        bool, typer.Option("--wide", help="Whole CIDs and every column, whatever the width.")
    ] = False,
) -> None:
    """Published and applied snapshots, oldest first (times in UTC).

    On a terminal the columns fit its width (CIDs shortened in the middle); piped, a
    header and tab-separated whole values.
    """
    both = not sent and not received
    rows = history_entries(
        _instances(data_dir, instance), sent=sent or both, received=received or both
    )
    if as_json:
        typer.echo(json.dumps([row.to_dict() for row in rows], indent=2, sort_keys=True))
        return
    if not rows:
        root = DataDir(data_dir or default_data_dir()).root
        whose = f"instance {instance}" if instance else "any instance"
        typer.echo(f"no history entries for {whose} in {root}")
        return
    if not sys.stdout.isatty():
        lines = render_tsv(rows)
    else:
        lines = render_table(rows, None if wide else shutil.get_terminal_size().columns)
    typer.echo("\n".join(lines))


@sync_app.command("retry")
def retry(
    instance: Annotated[str, typer.Argument(help="Instance id.")], data_dir: DataDirOption = None
) -> None:
    """Clear a halt and the quarantine so the next tick applies again."""
    (paths,) = _instances(data_dir, instance)
    reason, cleared = retry_instance(paths)
    halt = f"cleared halt ({reason})" if reason else "was not halted"
    typer.echo(f"{instance}: {halt}; {cleared} quarantine entries cleared")
