"""StartupRecovery: what a consumer that died mid-apply left, resolved before any start.

An unfinished journal is rolled back (or finished) before the container starts (README,
"Lifecycle"). ``sync/rollback.py`` does that to the volumes; this class adds what the
consumer's durable state needs afterwards:

- finished (the journal said ``committed``): the CID becomes the applied one; its
  history entry and ``last_apply.json`` follow at the first tick
  (``ApplyReporter.finish_recovered``), as after any apply;
- rolled back: ``failed_rolled_back``, and the interruption is counted apart from
  failures (``Quarantine.record_interruption``): a crash is retried at once, a few
  times, because it says nothing about the snapshot;
- unprovable: the instance halts;
- then every orphan ``.car-sync-*`` backup dir of ours is removed from the volumes.
"""

from __future__ import annotations

import logging

from ..errors import ApplyFailed
from . import constants as C
from .apply_state import ApplyState
from .journal import Journal
from .paths import PathResolver
from .quarantine import Quarantine
from .rollback import (
    RECOVERY_FINISHED,
    RECOVERY_ROLLED_BACK,
    recover,
    sweep_orphan_backup_dirs,
)


class StartupRecovery:
    """Resolves the apply journal and the consumer state at start-up."""

    def __init__(
        self,
        state: ApplyState,
        quarantine: Quarantine,
        journal: Journal,
        resolver: PathResolver,
        log: logging.Logger,
    ) -> None:
        self._state = state
        self._quarantine = quarantine
        self._journal = journal
        self._resolver = resolver
        self._log = log

    def run(self, now: float) -> None:
        """Roll back or finish an unfinished apply; halt when that cannot be proven."""
        current = self._state.load()
        try:
            outcome, header = recover(self._journal, self._log)
        except ApplyFailed as exc:
            self._state.enter_halt(current.cid, current.version, str(exc), now=now)
            self._log.error("sync halted, container stays stopped: %s", exc)
            return  # the journal and its backup dirs stay for the operator
        if outcome == RECOVERY_FINISHED and header is not None:
            if self._state.applied_cid() != header.cid:
                self._state.finish_by_recovery(header.cid, header.version, now=now)
        elif outcome == RECOVERY_ROLLED_BACK and header is not None:
            self._interrupted(header.cid, header.version, now, "rolled back at start-up")
            # Not after a halt: the operator fixed the cause and `car sync retry` cleared
            # the quarantine on purpose.
            if current.state != C.APPLY_STATE_UNCERTAIN:
                self._count_interruption(header.cid, header.manifest_digest, now)
        elif current.state in (C.APPLY_STATE_PREPARING, C.APPLY_STATE_APPLYING):
            # No journal header: nothing was written (or a rollback already completed).
            self._interrupted(current.cid, current.version, now, "interrupted")
        # The journal is resolved: a backup dir still in a volume has lost its journal.
        sweep_orphan_backup_dirs(self._resolver.syncable_roots(), self._log)

    def _interrupted(self, cid: str, version: int | None, now: float, what: str) -> None:
        self._state.roll_back_by_recovery(cid, version, f"apply {what}", now=now)

    def _count_interruption(self, cid: str, manifest_digest: str, now: float) -> None:
        error = "commit interrupted (runner stopped mid-apply); rolled back at start-up"
        entry = self._quarantine.record_interruption(cid, manifest_digest, error=error, now=now)
        if entry is None:
            self._log.warning("apply of %s was interrupted by a crash; retrying it now", cid)
        else:
            self._log.warning(
                "snapshot %s: %s; quarantined until +%.0fs", cid, entry.error, entry.retry_at - now
            )
