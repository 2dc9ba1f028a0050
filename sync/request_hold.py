"""RequestHold: answer a provider's request ``in_progress`` while its backends are down.

Publishing stops the app for the snapshot and then needs the blob store and the
registry; while the backend gate is shut (``sync/backend_gate.py``) that would stop the
app for a publish that cannot land. So the request is claimed (``request.json`` becomes
``request.json.processing``, as for any publish) and answered ``in_progress``, and the
app knows it was seen. When the backends are back, ``release`` gives the claimed request
back as ``request.json`` (the re-queue of a start), and the publisher handles it at once.
A runner that dies meanwhile re-queues it at start the same way, and a newer request
from the app replaces the held one (a pending request wins: docs/FORMAT.md,
"request.json (app → provider)").
"""

from __future__ import annotations

import logging
from typing import Any

from ..errors import CarError
from .request_channels import RequestChannel


class RequestHold:
    """Holds the pending request of one provider, answered ``in_progress``."""

    def __init__(self, control: RequestChannel, log: logging.Logger) -> None:
        self._control = control
        self._log = log
        self._holding = False

    def hold(self) -> None:
        """Claim a newly pending request, if any, and answer it ``in_progress``."""
        try:
            claimed = self._control.claim()
        except CarError as exc:
            self._log.debug("volume-sync request not held: %s", exc)
            return
        if claimed is None:
            return
        self._holding = True
        fields: dict[str, Any] = {"archive_paths": claimed.archive_paths}
        if claimed.request_id is not None:
            fields["request_id"] = claimed.request_id
        self._control.in_progress(**fields)
        self._log.info("volume-sync request held until the backends are reachable")

    def release(self) -> None:
        """Give a held request back as ``request.json`` for the publisher."""
        if not self._holding:
            return
        self._holding = False
        try:
            self._control.recover_stale_processing()
        except CarError as exc:
            self._log.warning("volume-sync could not re-queue the held request: %s", exc)
