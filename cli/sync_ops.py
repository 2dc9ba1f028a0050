"""``car sync publish|snapshots|restore|unpin`` (README, "Snapshots, restore and
host-side publish").

``publish`` and ``restore`` hand a request to the running runner of an instance
(``sync/host_control.py``) and print its answer; ``snapshots`` reads the kept list from
the registry; ``unpin`` removes a consumer's pin file. The functions are registered on
``car sync`` by ``cli/__init__.py``.

Exit codes: 0 done, 2 usage (unknown instance, wrong role), 3 refused or failed (the
runner's answer says why), 4 no runner alive for the instance, 5 no answer in time.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, Any

import typer

from ..errors import CarError
from ..layout import DataDir, InstancePaths, default_data_dir
from ..registries.factory import default_registry_url, open_registry
from ..runner.config_file import load_runner_config
from ..sync import constants as C
from ..sync.host_control import (
    REQUEST_ID_HOST,
    RESTORE_FILE,
    RESTORE_RESPONSE_FILE,
    RunnerGone,
    host_requests_dir,
    new_request_id,
    runner_alive,
    submit,
    wait_answer,
)
from ..sync.kept_records import current_record, read_kept
from ..sync.pin import clear_pin
from ..sync.runner_state import RunnerState
from .common import EXIT_RUNTIME, EXIT_USAGE, DataDirOption, fail
from .formats import iso_utc

EXIT_REFUSED = 3
EXIT_NO_RUNNER = 4
EXIT_TIMEOUT = 5

InstanceArg = Annotated[str, typer.Argument(help="Instance id.")]
JsonOption = Annotated[bool, typer.Option("--json", help="Print one JSON document.")]
TimeoutOption = Annotated[
    float, typer.Option("--timeout", help="Seconds to wait for the runner's answer.")
]


def _instance(data_dir: Path | None, instance: str, role: str) -> InstancePaths:
    """The instance's paths; exits 2 unless it is a ``role`` instance, 4 without a runner."""
    data = DataDir(data_dir or default_data_dir())
    if instance not in data.instance_ids():
        raise fail(f"unknown instance {instance!r} in {data.root}", EXIT_USAGE)
    paths = data.instance(instance)
    state = RunnerState.load(paths.runner_state)
    if state.role != role:
        what = f"a {state.role}" if state.role else "not a sync instance (SYNC is off)"
        raise fail(f"instance {instance} is {what}; this command needs a {role}", EXIT_USAGE)
    if state.sync_disabled_reason:
        raise fail(f"volume-sync is off on {instance}: {state.sync_disabled_reason}", EXIT_USAGE)
    if not runner_alive(paths):
        raise fail(
            f"no runner is alive for instance {instance}: start it with `car run`",
            EXIT_NO_RUNNER,
        )
    return paths


def _await(paths: InstancePaths, answer: Path, request_id: str, timeout: float) -> dict[str, Any]:
    try:
        found = wait_answer(answer, request_id, timeout=timeout, alive=lambda: runner_alive(paths))
    except RunnerGone as exc:
        raise fail(f"{paths.instance_id}: {exc}", EXIT_NO_RUNNER) from None
    if found is None:
        raise fail(
            f"{paths.instance_id}: no answer within {timeout:.0f} s (the request stays queued)",
            EXIT_TIMEOUT,
        )
    return found


def publish(
    instance: InstanceArg,
    path: Annotated[
        list[str] | None,
        typer.Option(
            "--path",
            help="Container path to snapshot (repeatable; default: the provider's default paths).",
        ),
    ] = None,
    timeout: TimeoutOption = 600.0,
    data_dir: DataDirOption = None,
) -> None:
    """Ask the running provider for a snapshot now; print its response.json."""
    paths = _instance(data_dir, instance, C.ROLE_PROVIDER)
    directory = host_requests_dir(paths)
    if (directory / C.REQUEST_FILE).exists():
        raise fail(f"{instance}: a host-side request is already queued", EXIT_REFUSED)
    request_id = new_request_id(REQUEST_ID_HOST)
    body: dict[str, Any] = {"request_id": request_id}
    if path:
        body["archive_paths"] = list(path)
    submit(directory, C.REQUEST_FILE, body, C.RESPONSE_FILE)
    answer = _await(paths, directory / C.RESPONSE_FILE, request_id, timeout)
    typer.echo(json.dumps(answer, indent=2, sort_keys=True))
    if answer.get("status") != "ok":
        raise typer.Exit(EXIT_REFUSED)


def restore(
    instance: InstanceArg,
    cid: Annotated[str, typer.Option("--cid", help="CID of a kept snapshot.")],
    timeout: TimeoutOption = 120.0,
    data_dir: DataDirOption = None,
) -> None:
    """Put a consumer on a kept snapshot and pin it there until `car sync unpin`."""
    paths = _instance(data_dir, instance, C.ROLE_CONSUMER)
    request_id = new_request_id(REQUEST_ID_HOST)
    directory = host_requests_dir(paths)
    body = {"request_id": request_id, "cid": cid}
    submit(directory, RESTORE_FILE, body, RESTORE_RESPONSE_FILE)
    answer = _await(paths, directory / RESTORE_RESPONSE_FILE, request_id, timeout)
    if answer.get("status") != "ok":
        raise fail(f"{instance}: restore refused: {answer.get('error')}", EXIT_REFUSED)
    typer.echo(
        f"{instance}: pinned to {cid} (version {answer.get('version')}); the consumer applies "
        "it at its next tick and stays on it until `car sync unpin`"
    )


def unpin(instance: InstanceArg, data_dir: DataDirOption = None) -> None:
    """Let a restored consumer follow the registry's newest record again."""
    data = DataDir(data_dir or default_data_dir())
    if instance not in data.instance_ids():
        raise fail(f"unknown instance {instance!r} in {data.root}", EXIT_USAGE)
    removed = clear_pin(data.instance(instance).sync_state)
    if removed is None:
        typer.echo(f"{instance}: was not pinned")
    else:
        typer.echo(f"{instance}: unpinned from {removed.cid}; the next tick applies the newest")


def snapshots(
    key: Annotated[str, typer.Argument(help="Sync key (SYNC.KEY).")],
    registry: Annotated[
        str | None, typer.Option("--registry", help="Registry URL (docs/BACKENDS.md).")
    ] = None,
    config: Annotated[
        Path | None, typer.Option("--config", help="A runner config naming STORAGE.REGISTRY.")
    ] = None,
    data_dir: DataDirOption = None,
    as_json: JsonOption = False,
) -> None:
    """The snapshots the provider of KEY keeps (newest first)."""
    url = _registry_url(registry, config, data_dir)
    try:
        reg = open_registry(url)
        kept = read_kept(reg, key)
        if kept is None:  # a provider of the older runner: only the current record
            current = current_record(reg, key)
            kept = [current] if current is not None else []
    except CarError as exc:
        raise fail(f"registry {url}: {exc}", EXIT_RUNTIME) from None
    rows = [_row(r) for r in kept]
    if as_json:
        typer.echo(json.dumps(rows, indent=2, sort_keys=True))
        return
    if not rows:
        typer.echo(f"no snapshots of key {key!r} in {url}")
        return
    typer.echo("\t".join(("cid", "version", "time_utc", "node", "size", "format")))
    for row in rows:
        cells = (
            row["cid"],
            row["version"],
            row["time_utc"],
            row["node_id"],
            row["size"],
            row["format"],
        )
        typer.echo("\t".join("-" if c is None else str(c) for c in cells))


def _registry_url(registry: str | None, config: Path | None, data_dir: Path | None) -> str:
    if registry:
        return registry
    if config is not None:
        try:
            configured = load_runner_config(config).storage.registry
        except CarError as exc:
            raise fail(str(exc), EXIT_USAGE) from None
        if configured:
            return configured
    return default_registry_url(DataDir(data_dir or default_data_dir()).root)


def _row(record: dict[str, Any]) -> dict[str, Any]:
    raw_manifest = record.get("manifest")
    manifest: dict[str, Any] = raw_manifest if isinstance(raw_manifest, dict) else {}
    stamp = record.get("timestamp")
    when = iso_utc(stamp) if isinstance(stamp, int | float) else None
    return {
        "cid": record.get("cid"),
        "version": record.get("version"),
        "timestamp": stamp,
        "time_utc": when,
        "node_id": record.get("node_id"),
        "size": manifest.get("archive_size_bytes"),
        "format": manifest.get("archive_format"),
        "record": record,
    }
