"""HostSide: what a runner does for its operator beside the app's requests (README,
"Snapshots, restore and host-side publish").

One object the manager calls around each tick, so the manager's outline stays the
app's: a provider's ``SYNC.SCHEDULE`` before the publish step and the kept-snapshot list
after a publish; a consumer's pending restore before its apply step; and, when sync is
off, an answer to a ``request.json`` the app wrote anyway (an error naming why sync is
off, one log line per request) so the app never waits for nothing.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

from ..errors import CarError
from . import constants as C
from .control_files import ControlDir
from .kept_records import KeptRecords
from .provider import PublishOutcome
from .restore import RestoreDesk
from .schedule import SnapshotSchedule


@dataclass
class HostSide:
    """The optional host-side parts of one role; each may be None."""

    log: logging.Logger
    schedule: SnapshotSchedule | None = None
    kept: KeptRecords | None = None
    restore: RestoreDesk | None = None
    idle_control: ControlDir | None = None  # the app's control dir while sync is off
    disabled_reason: str | None = None

    def before_publish(self, now: float) -> None:
        if self.schedule is not None:
            self.schedule.tick(now)

    def after_publish(self, outcome: PublishOutcome | None) -> None:
        if self.kept is None or outcome is None or outcome.status != "ok":
            return
        if outcome.cid is not None:
            self.kept.published(outcome.cid)

    def before_apply(self, now: float) -> None:
        if self.restore is not None:
            self.restore.tick(now)

    def answer_while_disabled(self) -> None:
        """Answer a pending app request with why sync is off (never raises)."""
        if self.idle_control is None:
            return
        try:
            claimed = self.idle_control.claim()
        except CarError:  # no control directory (no system volume): nobody can ask
            return
        if claimed is None:
            return
        error = f"volume-sync is disabled on this runner: {self.disabled_reason}"
        self.log.warning("volume-sync request answered with an error: %s", error)
        self.idle_control.fail_claimed(claimed, C.STAGE_VALIDATION, error)
