"""``car sync status``: each instance's health, its runner, and the registry's record now.

README "Health and status": the status object of ``sync/status.py`` plus ``runner``
(liveness from ``runner.lock``), ``registry_now`` (what the registry holds for the key,
or why it could not be read), ``healthy``, ``problems`` and ``warnings``. The verdict and
the exit code come from ``sync/health.py``; this module gathers and renders.
"""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

from ..backend_urls import redact_url
from ..errors import ConfigError
from ..layout import InstancePaths
from ..runner.config_file import load_runner_config
from ..runner.instance_lock import runner_alive
from ..sync.health import problems, warnings
from ..sync.registry_view import registry_view
from ..sync.status import instance_status
from .common import EXIT_USAGE, fail
from .formats import iso_utc

# The local snapshot the registry's record is compared with, by role.
_LOCAL = {"provider": ("last_published", "published"), "consumer": ("last_applied", "applied")}


def config_registry_urls(configs: list[Path]) -> dict[str, str]:
    """Instance id -> STORAGE.REGISTRY of each runner config file given with ``--config``.

    ``runner.json`` keeps the registry URL without its password; the config file has it.

    Raises:
        typer.Exit: a config file cannot be read or is invalid (exit 2, one line).
    """
    urls: dict[str, str] = {}
    for path in configs:
        try:
            cfg = load_runner_config(path)
        except ConfigError as exc:
            raise fail(f"cannot use config {path}: {exc}", EXIT_USAGE) from None
        if cfg.storage.registry:
            urls[cfg.instance_id] = cfg.storage.registry
    return urls


def _registry_url(st: dict[str, Any], urls: dict[str, str]) -> str | None:
    """The config file's URL when it is the registry ``runner.json`` names, else that one."""
    full = urls.get(st["instance_id"])
    return full if full and redact_url(full) == st["registry"] else st["registry"]


def collect(
    instances: list[InstancePaths], *, registry: bool, urls: dict[str, str] | None = None
) -> list[dict[str, Any]]:
    """Status objects with the verdict; registry reads run side by side, each bounded."""
    statuses = [instance_status(paths) for paths in instances]
    for paths, st in zip(instances, statuses, strict=True):
        st["runner"] = runner_alive(paths.root / "runner.lock").to_dict()
    if registry and statuses:
        with ThreadPoolExecutor(max_workers=min(8, len(statuses))) as pool:
            views = list(
                pool.map(
                    lambda st: registry_view(_registry_url(st, urls or {}), st["key"]), statuses
                )
            )
    else:
        views = [None] * len(statuses)
    for st, view in zip(statuses, views, strict=True):
        st["registry_now"] = _compared(st, view)
        found = problems(st)
        st["healthy"] = not found
        st["problems"] = [p.to_dict() for p in found]
        st["warnings"] = warnings(st)
    return statuses


def _compared(st: dict[str, Any], view: dict[str, Any] | None) -> dict[str, Any] | None:
    """``view`` with ``matches_local``: the record is the one this instance published/applied."""
    if view is None:
        return None
    field, _ = _LOCAL.get(st.get("role") or "", (None, None))
    local = st.get(field) if field else None
    record = view.get("record")
    matches = None if not (record and local) else record["cid"] == local["cid"]
    return {**view, "matches_local": matches}


def _when(ts: Any) -> str:
    return iso_utc(ts)


def _short(cid: Any) -> str:
    return f"{cid[:20]}…" if isinstance(cid, str) and len(cid) > 20 else str(cid or "-")


def status_lines(st: dict[str, Any]) -> list[str]:
    """The text view of one status object (rich markup)."""
    kinds = ", ".join(p["kind"].replace("_", " ") for p in st["problems"])
    verdict = f"[red]UNHEALTHY[/red] ({kinds})" if kinds else "[green]healthy[/green]"
    lines = [
        f"[bold]{st['instance_id']}[/bold]  role={st['role'] or '-'}  key={st['key'] or '-'}"
        f"  {verdict}"
    ]
    lines.append(_runner_line(st["runner"]))
    if st.get("blob_store") or st.get("registry"):
        lines.append(f"  backends   blobs={st.get('blob_store')}  registry={st.get('registry')}")
    if st.get("sync_disabled_reason"):
        lines.append(f"  sync off   {st['sync_disabled_reason']}")
    for label, key in (("published", "last_published"), ("applied", "last_applied")):
        rec = st.get(key)
        if rec:
            lines.append(
                f"  {label:<10} {rec['cid']} v{rec['version']} at {_when(rec['timestamp'])}"
            )
    lines.extend(_registry_lines(st))
    lines.extend(_state_lines(st))
    lines.extend(f"  [yellow]warning[/yellow]    {w}" for w in st["warnings"])
    return lines


def _runner_line(runner: dict[str, Any]) -> str:
    if runner["alive"]:
        pid = f" (PID {runner['pid']})" if runner.get("pid") else ""
        return f"  runner     alive{pid}"
    if runner["alive"] is None:
        return f"  runner     [red]UNKNOWN[/red]: {runner['detail']}"
    return f"  runner     [red]NOT ALIVE[/red]: {runner['detail']}"


def _registry_lines(st: dict[str, Any]) -> list[str]:
    view = st.get("registry_now")
    if not view or view.get("error") or view.get("invalid"):
        return []  # shown among the warnings
    record = view.get("record")
    if record is None:
        return [f"  registry   no record for key {st['key']}"]
    _, label = _LOCAL.get(st.get("role") or "", (None, "local"))
    same = {True: f"  (= {label})", False: f"  (differs from {label})", None: ""}
    node = record.get("node_id") or "-"
    return [
        f"  registry   {record['cid']} v{record['version']} at {_when(record['timestamp'])}"
        f" node={node}{same[view.get('matches_local')]}"
    ]


def _state_lines(st: dict[str, Any]) -> list[str]:
    lines: list[str] = []
    if st.get("apply_state"):
        err = f" ({st['apply_error']})" if st.get("apply_error") else ""
        lines.append(f"  apply      {st['apply_state']}{err}")
    if st.get("records"):
        lines.append(f"  records    {st['records']}")
    if st.get("pinned"):
        lines.append(
            f"  pinned     {st['pinned']} (restored; `car sync unpin` follows the registry)"
        )
    if lease := st.get("lease"):
        lines.append(_lease_line(lease))
    for q in st.get("quarantine") or []:
        lines.append(
            f"  quarantine {_short(q.get('cid'))} {q.get('kind')} x{q.get('failures')}: "
            f"{q.get('error')} (retry at {_when(q.get('retry_at'))})"
        )
    if st.get("halt"):
        lines.append(f"  [red]HALTED[/red]     {st['halt']} (fix, then `car sync retry`)")
    return lines


def _lease_line(lease: dict[str, Any]) -> str:
    """The key's lease holder (README, "One writer per key")."""
    who = f"node {lease.get('holder_node_id')} instance {lease.get('holder_instance_id')}"
    held = "held by this instance" if lease.get("held") else f"held by {who}"
    return f"  lease      {held} until {_when(lease.get('expires_at'))}"
