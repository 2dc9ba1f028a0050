"""SnapshotSchedule: ``SYNC.SCHEDULE`` on a provider (README, "Snapshots, restore and
host-side publish").

Every ``SCHEDULE`` seconds the provider asks itself for a snapshot by writing a host
request (``request_id`` ``schedule-<ns>``, default paths) into
``sync_state/host-requests/``, where ``car sync publish`` writes too; the publisher
handles it like any request, so a scheduled snapshot is claimed, answered and recorded
in the sent history the same way. While any request is pending or in progress (the
app's or the host's, e.g. a publish waiting for the registry) a due snapshot waits for
a later tick instead of queueing behind it.
"""

from __future__ import annotations

import logging
from pathlib import Path

from ..errors import CarError
from . import constants as C
from .host_control import REQUEST_ID_SCHEDULE, new_request_id, submit


class SnapshotSchedule:
    """Writes a host request every ``interval`` seconds of wall-clock time."""

    def __init__(self, interval: float, host_dir: Path, app_dir: Path, log: logging.Logger) -> None:
        self.interval = interval
        self._host_dir = host_dir
        self._app_dir = app_dir
        self._log = log
        self._next_due: float | None = None
        self._waited = False

    def tick(self, now: float) -> bool:
        """Request a snapshot when one is due and nothing is in flight; True if requested."""
        if self._next_due is None:
            self._next_due = now + self.interval
        if now < self._next_due:
            return False
        if self._busy():
            if not self._waited:
                self._log.info("scheduled snapshot waits: a request is in progress")
                self._waited = True
            return False
        self._waited = False
        self._next_due = now + self.interval
        try:
            submit(
                self._host_dir,
                C.REQUEST_FILE,
                {"request_id": new_request_id(REQUEST_ID_SCHEDULE)},
            )
        except (OSError, CarError) as exc:
            self._log.warning("scheduled snapshot not requested: %s", exc)
            return False
        return True

    def _busy(self) -> bool:
        pending = (
            self._host_dir / C.REQUEST_FILE,
            self._host_dir / C.PROCESSING_FILE,
            self._app_dir / C.PROCESSING_FILE,
        )
        return any(p.exists() or p.is_symlink() for p in pending)
