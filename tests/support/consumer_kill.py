"""A consumer killed with SIGKILL in the middle of an apply, at a chosen point (``sigkill.py``).

``python -m container_apps.tests.support.consumer_kill TMP POINT`` runs a real consumer
on TMP that applies snapshot A (on its first run), then snapshot B until POINT, where it
pauses for the kill: ``journal_committed``, ``state_applied``, ``before_restart``,
``history_written`` or ``op_<n>`` (mid-commit, after operation n). ``kill_apply`` runs it;
the helpers build the same dirs, snapshots and consumer for the parent's restart.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

from container_apps.layout import DataDir, InstancePaths
from container_apps.sync.apply import ApplyTransaction
from container_apps.sync.apply_state import ApplyState
from container_apps.sync.history import HistoryLog
from container_apps.sync.records import SyncRecord

from .consumer_rig import (
    Env,
    build_snapshot,
    f,
    make_env,
    make_record,
    new_entries,
    seed_old,
)
from .sigkill import pause, run_and_kill

NOW = 1_764_400_000.0


def b_entries() -> list[Any]:
    """Snapshot B: A's entries, one of them replaced, one added."""
    return [*new_entries(), f("app/data/replace.txt", b"B bytes"), f("app/data/b.txt", b"B")]


def instance_paths(tmp: Path) -> InstancePaths:
    """The consumer's instance folders, the same in the child and after the restart."""
    paths = DataDir(tmp / "data").instance("consumer-1")
    paths.ensure()
    return paths


def recovery_env(tmp: Path, **kw: Any) -> Env:
    """A consumer on ``tmp``'s volume (seeded once) and instance folders."""
    volume = tmp / "volume"
    if not volume.exists():
        volume.mkdir(parents=True)
        seed_old(volume)
    return make_env(tmp, volume, paths=instance_paths(tmp), **kw)


def snapshots(tmp: Path) -> tuple[tuple[Path, SyncRecord], tuple[Path, SyncRecord]]:
    """Snapshots A and B with their records (rebuilt identically on every call)."""
    a = build_snapshot(tmp / "a.tar.zst", new_entries())
    b = build_snapshot(tmp / "b.tar.zst", b_entries())
    return (a, make_record(a)), (b, make_record(b, version=1_764_300_100))


# --- the child: apply A, then B up to a pause point ------------------------------------


def install_pause(env: Env, point: str) -> None:
    """Make the next apply stop dead at ``point`` (the parent then SIGKILLs us)."""
    tmp = env.tmp
    if point == "journal_committed":  # journal says committed; state still "applying"

        def paused_mark_applied(self: ApplyState, **kw: Any) -> Any:
            pause(tmp)

        ApplyState.mark_applied = paused_mark_applied  # type: ignore[method-assign]
    elif point == "state_applied":  # state "applied"; backups and journal still there
        ApplyTransaction.finish = lambda self: pause(tmp)  # type: ignore[assignment,method-assign,return-value]
    elif point == "before_restart":  # journal gone, state applied, app not started yet
        env.containers.start = lambda: pause(tmp)  # type: ignore[method-assign]
    elif point == "history_written":  # B's history entry written, last_apply.json not yet
        append = HistoryLog.append

        def paused_append(self: HistoryLog, entry: dict[str, Any]) -> Path:
            path = append(self, entry)
            pause(tmp)
            return path

        HistoryLog.append = paused_append  # type: ignore[method-assign]
    elif not point.startswith("op_"):  # op_<n>: see op_pause
        raise ValueError(point)


def op_pause(tmp: Path, point: str) -> Any:
    """For ``op_<n>``: the consumer's step hook pausing mid-commit after operation n."""
    if not point.startswith("op_"):
        return None
    index = int(point[3:])

    def on_step(i: int) -> None:
        if i == index and (tmp / "b-started").exists():
            pause(tmp)

    return on_step


def child_apply(tmp: Path, point: str) -> None:
    """Runs in a subprocess: apply A fully (first run only), then B until ``point``."""
    env = recovery_env(tmp, on_step=op_pause(tmp, point))
    (a_archive, a), (b_archive, b) = snapshots(tmp)
    if env.consumer.state.applied_cid() is None:
        env.publish(a_archive, a)
        outcome = env.consumer.tick(NOW)
        assert outcome is not None and outcome.applied, outcome
    env.publish(b_archive, b)
    (tmp / "b-started").write_text("1")
    install_pause(env, point)
    env.consumer.tick(NOW + 10)
    raise SystemExit(f"the apply of B never reached {point}")


def kill_apply(tmp: Path, point: str) -> None:
    """Run ``child_apply`` until it pauses at ``point``, then SIGKILL it."""
    run_and_kill(tmp, __name__, str(tmp), point)


if __name__ == "__main__":
    child_apply(Path(sys.argv[1]), sys.argv[2])
