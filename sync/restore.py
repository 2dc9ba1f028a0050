"""RestoreDesk: a consumer's side of ``car sync restore`` (README, "Snapshots, restore
and host-side publish").

The command writes ``sync_state/host-requests/restore.json`` (``{"cid", "request_id"}``);
the running consumer answers it in ``restore-response.json`` before its next apply
step. Only a snapshot the provider still keeps can be restored: its record comes from
the registry's kept list (``kept_records.py``), its blob must still be in the store, and
the record must parse. Then the pin is written (``pin.py``) and the normal apply puts
the consumer on it. Any refusal changes nothing: no pin, no apply.
"""

from __future__ import annotations

import contextlib
import logging
import time
from pathlib import Path
from typing import Any

from ..errors import BlobNotFound, CarError
from ..fsutil import atomic_write_json
from ..registries.base import Registry
from ..stores.base import BlobStore
from .host_control import RESTORE_FILE, RESTORE_RESPONSE_FILE, read_json_file
from .kept_records import read_kept
from .pin import Pin, save_pin
from .records import RecordInvalid, parse_record


class RestoreRefused(CarError):
    """A restore request names no snapshot that can be restored."""


class RestoreDesk:
    """Answers the pending restore request of one consumer, if any."""

    def __init__(
        self,
        host_dir: Path,
        sync_state: Path,
        key: str,
        registry: Registry,
        store: BlobStore,
        log: logging.Logger,
    ) -> None:
        self._dir = host_dir
        self._sync_state = sync_state
        self._key = key
        self._registry = registry
        self._store = store
        self._log = log

    def tick(self, now: float) -> None:
        """Handle a pending ``restore.json``; never raises."""
        path = self._dir / RESTORE_FILE
        if not path.exists():
            return
        body = read_json_file(path)
        with contextlib.suppress(FileNotFoundError):
            path.unlink()
        request_id = body.get("request_id") if isinstance(body, dict) else None
        answer: dict[str, Any] = {"request_id": request_id}
        try:
            pin = self._pin_for(body.get("cid") if isinstance(body, dict) else None, now)
        except CarError as exc:
            self._log.warning("volume-sync restore refused: %s", exc)
            answer.update(status="error", error=str(exc))
        else:
            save_pin(self._sync_state, pin)
            self._log.info("volume-sync restore: pinned to %s (version %s)", pin.cid, _v(pin))
            answer.update(status="ok", cid=pin.cid, version=pin.record.get("version"))
        answer["answered_timestamp"] = time.time()
        try:
            atomic_write_json(self._dir / RESTORE_RESPONSE_FILE, answer, mode=0o600)
        except OSError as exc:
            self._log.warning("could not answer the restore request: %s", exc)

    def _pin_for(self, cid: object, now: float) -> Pin:
        if not isinstance(cid, str) or not cid:
            raise RestoreRefused("restore request names no CID")
        kept = read_kept(self._registry, self._key) or []
        record = next((r for r in kept if r.get("cid") == cid), None)
        if record is None:
            known = ", ".join(str(r.get("cid")) for r in kept) or "none"
            raise RestoreRefused(
                f"{cid} is not a kept snapshot of key {self._key!r} (kept: {known}); "
                "see `car sync snapshots KEY`"
            )
        try:
            parse_record(Pin(cid, record, now).record_text)
        except RecordInvalid as exc:
            raise RestoreRefused(f"the kept record of {cid} is not valid: {exc}") from None
        try:
            self._store.get_range(cid, 0, 1)
        except BlobNotFound:
            raise RestoreRefused(f"{cid} is no longer in the blob store (retired)") from None
        return Pin(cid, record, now)


def _v(pin: Pin) -> Any:
    return pin.record.get("version")
