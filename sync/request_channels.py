"""RequestChannels: the provider's two request sources behind one ``ControlDir`` face.

The app writes ``request.json`` into its ``/r1en_system/volume-sync``; the operator
(``car sync publish``) and ``SYNC.SCHEDULE`` write one into the runner-private
``sync_state/host-requests/``. The publisher claims, validates and answers both the
same way (README, "Snapshots, restore and host-side publish"): this class claims the
app's request first, else the host's, and sends every answer to the directory the
claimed request came from. A host request without ``archive_paths`` gets the
provider's default paths (``default_paths``).
"""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import Callable, Sequence
from typing import Any, Protocol

from ..errors import CarError
from ..volumes.binding import VolumeBinding
from .control_files import ClaimedRequest, ControlDir
from .history import HistoryLog


class RequestChannel(Protocol):
    """What the publisher and ``RequestHold`` use of a control directory."""

    def claim(self) -> ClaimedRequest | None: ...
    def in_progress(self, **fields: Any) -> None: ...
    def succeed(self, payload: dict[str, Any]) -> None: ...
    def fail_claimed(self, claimed: ClaimedRequest, stage: str, error: str) -> None: ...
    def recover_stale_processing(self) -> None: ...


class RequestChannels:
    """The app's control directory, then the host's; answers go where the claim came from."""

    def __init__(
        self,
        app: ControlDir,
        host: ControlDir,
        default_paths: Callable[[], list[str]],
        log: logging.Logger,
    ) -> None:
        self.app = app
        self.host = host
        self._default_paths = default_paths
        self._log = log
        self._active = app

    def claim(self) -> ClaimedRequest | None:
        """The app's pending request, else the host's (with default paths filled in).

        Raises:
            SyncError: the app's control directory is not usable and the host had none.
        """
        app_error: CarError | None = None
        try:
            claimed = self.app.claim()
        except CarError as exc:
            claimed, app_error = None, exc
        if claimed is not None:
            self._active = self.app
            return claimed
        host_claimed = self._claim_host()
        if host_claimed is not None:
            return host_claimed
        if app_error is not None:
            raise app_error
        return None

    def _claim_host(self) -> ClaimedRequest | None:
        try:
            claimed = self.host.claim()
        except CarError as exc:
            self._log.debug("host request not claimed: %s", exc)
            return None
        if claimed is None:
            return None
        self._active = self.host
        body = claimed.body
        if isinstance(body, dict) and "archive_paths" not in body:
            body = {**body, "archive_paths": self._default_paths()}
            claimed = dataclasses.replace(claimed, body=body)
        self._log.info("volume-sync: host-side request %s claimed", claimed.request_id or "-")
        return claimed

    def in_progress(self, **fields: Any) -> None:
        self._active.in_progress(**fields)

    def succeed(self, payload: dict[str, Any]) -> None:
        self._active.succeed(payload)

    def fail_claimed(self, claimed: ClaimedRequest, stage: str, error: str) -> None:
        self._active.fail_claimed(claimed, stage, error)

    def recover_stale_processing(self) -> None:
        """Re-queue what either directory holds unanswered (at start, after a hold)."""
        self.app.recover_stale_processing()
        try:
            self.host.recover_stale_processing()
        except CarError as exc:
            self._log.debug("host requests not recovered: %s", exc)


def default_paths(history: HistoryLog, bindings: Sequence[VolumeBinding]) -> list[str]:
    """What a host-side snapshot without ``--path`` captures.

    The paths of the last published snapshot as its request named them, so a scheduled
    snapshot repeats what the app asked for; before any publish, every syncable volume.
    """
    try:
        latest = history.latest()
    except Exception:  # an unreadable history falls back to the volumes
        latest = None
    request = latest.data.get("request") if latest is not None else None
    paths = request.get("archive_paths") if isinstance(request, dict) else None
    if isinstance(paths, list) and paths and all(isinstance(p, str) for p in paths):
        return list(paths)
    return [b.container_path for b in bindings if b.syncable]
