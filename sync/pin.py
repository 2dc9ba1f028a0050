"""The pin of a restored consumer (README, "Snapshots, restore and host-side publish").

``car sync restore INSTANCE --cid CID`` puts a consumer on a kept snapshot and keeps it
there: ``sync_state/pin.json`` holds that snapshot's record (as the provider published
it), and while it exists ``PinnedRecordSource`` hands the consumer that record instead
of the registry's current one, so the normal apply (validate, stop, journal, rollback)
runs on it once and newer records are ignored. ``car sync unpin`` removes the file; the
next tick reads the registry again and the consumer moves to the newest record.
"""

from __future__ import annotations

import contextlib
import json
import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..fsutil import atomic_write_json
from ..registries.base import Registry
from .host_control import PIN_FILE, read_json_file
from .record_source import RecordSource


@dataclass(frozen=True, slots=True)
class Pin:
    """The snapshot a consumer stays on: its CID and record JSON as published."""

    cid: str
    record: dict[str, Any]
    pinned_timestamp: float

    @property
    def record_text(self) -> str:
        return json.dumps(self.record, sort_keys=True, separators=(",", ":"))


def pin_path(sync_state: Path) -> Path:
    return sync_state / PIN_FILE


def load_pin(sync_state: Path) -> Pin | None:
    """The pin, or None (no file, or one that is not a pin: ignored, never applied)."""
    raw = read_json_file(pin_path(sync_state))
    if not isinstance(raw, dict):
        return None
    cid, record, stamp = raw.get("cid"), raw.get("record"), raw.get("pinned_timestamp")
    if not isinstance(cid, str) or not isinstance(record, dict) or record.get("cid") != cid:
        return None
    return Pin(cid, record, float(stamp) if isinstance(stamp, int | float) else 0.0)


def save_pin(sync_state: Path, pin: Pin) -> None:
    body = {"cid": pin.cid, "record": pin.record, "pinned_timestamp": pin.pinned_timestamp}
    atomic_write_json(pin_path(sync_state), body, mode=0o600)


def clear_pin(sync_state: Path) -> Pin | None:
    """Remove the pin; the pin that was removed, or None."""
    pin = load_pin(sync_state)
    with contextlib.suppress(FileNotFoundError):
        pin_path(sync_state).unlink()
    return pin


class PinnedRecordSource(RecordSource):
    """A ``RecordSource`` that answers the pinned record while a pin exists."""

    def __init__(
        self,
        registry: Registry,
        key: str,
        hsync_interval: float,
        log: logging.Logger,
        sync_state: Path,
    ) -> None:
        super().__init__(registry, key, hsync_interval, log)
        self._sync_state = sync_state
        self._pinned: str | None = None  # the CID last logged as pinned
        self._pin_log = log

    def read(self, now: float) -> str | None:
        pin = load_pin(self._sync_state)
        if pin is not None:
            if self._pinned != pin.cid:
                self._pin_log.info(
                    "volume-sync pinned to %s: newer records are ignored until `car sync unpin`",
                    pin.cid,
                )
                self._pinned = pin.cid
            return pin.record_text
        if self._pinned is not None:
            self._pin_log.info("volume-sync unpinned: following the registry's record again")
            self._pinned = None
        return super().read(now)
