"""An apply's commit killed with SIGKILL after a chosen operation (``sigkill.py``).

``python -m container_apps.tests.support.apply_kill TMP VOLUME N [MODE]`` stages the
snapshot ``TMP/snap.tar.zst`` and commits it into VOLUME (MODE ``mirror`` also removes
what the snapshot lacks), pausing for the kill after operation N (-1: after "committed",
before the backups were removed). ``kill_commit`` runs it.
"""

from __future__ import annotations

import sys
from collections.abc import Callable
from pathlib import Path

from container_apps.sync.apply import ApplyTransaction
from container_apps.sync.journal import Journal
from container_apps.sync.paths import PathResolver
from container_apps.sync.preflight import ConsumerLimits
from container_apps.volumes.binding import VolumeBinding

from .consumer_rig import LOG, MOUNT, make_record
from .sigkill import pause, run_and_kill


def transaction(
    tmp: Path, volume: Path, on_step: Callable[[int], None] | None = None, *, mirror: bool = False
) -> tuple[ApplyTransaction, Journal]:
    """An apply transaction into ``volume`` (mounted at ``MOUNT``), journal in ``tmp``."""
    journal = Journal(tmp / "sync_state")
    resolver = PathResolver([VolumeBinding("data", "legacy", volume, MOUNT)])
    return ApplyTransaction(journal, resolver, LOG, on_step=on_step, mirror=mirror), journal


def child_commit(tmp: Path, volume: Path, pause_after: int, mode: str = "overlay") -> None:
    """Runs in a subprocess: commit, pausing forever after op ``pause_after``."""

    def on_step(index: int) -> None:
        if index == pause_after:
            pause(tmp)

    archive = tmp / "snap.tar.zst"
    txn, _ = transaction(tmp, volume, on_step, mirror=mode == "mirror")
    txn.stage(archive, make_record(archive), ConsumerLimits())
    txn.commit()
    if pause_after < 0:  # crash after "committed", before the backups were removed
        pause(tmp)


def kill_commit(tmp: Path, volume: Path, pause_after: int, mode: str = "overlay") -> None:
    """Start a committing subprocess, wait until it pauses, SIGKILL it."""
    run_and_kill(tmp, __name__, str(tmp), str(volume), str(pause_after), mode)


if __name__ == "__main__":
    child_commit(Path(sys.argv[1]), Path(sys.argv[2]), int(sys.argv[3]), *sys.argv[4:5])
