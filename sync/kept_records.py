"""The provider's kept snapshots, published beside the current record (docs/BACKENDS.md,
"Kept snapshots").

``car sync snapshots KEY`` and ``car sync restore`` must work on any node that reaches
the registry, so after each publish (and its retirement) the provider writes the list of
the records it still keeps into the registry under its own hash key
(``CHAINSTORE_SYNC_KEPT``, field = the sync key), which the older runner never reads.
Each entry is the record's JSON object exactly as the registry held it when it was
published (re-read after the ack), so fields other parts add to a record (signatures)
stay with it. The provider keeps the same list in ``sync_state/kept_records.json``,
since a record that is no longer current cannot be re-read from the registry.
"""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Any

from ..errors import CarError
from ..fsutil import atomic_write_json
from ..registries.base import Registry
from . import constants as C
from .chunked_retention import newest_cids
from .history import HistoryLog
from .host_control import read_json_file

KEPT_HKEY = "CHAINSTORE_SYNC_KEPT"
KEPT_SCHEMA_VERSION = 1


class KeptListInvalid(CarError):
    """The registry's kept list is not one this runner can read."""


class KeptRecords:
    """Keeps the kept list up to date after each successful publish (never raises)."""

    def __init__(
        self,
        registry: Registry,
        key: str,
        history: HistoryLog,
        state_file: Path,
        log: logging.Logger,
    ) -> None:
        self._registry = registry
        self._key = key
        self._history = history
        self._file = state_file
        self._log = log

    def published(self, cid: str) -> None:
        """Add the record of ``cid`` (just published), drop what retirement deleted."""
        try:
            self._update(cid)
        except Exception as exc:  # housekeeping: the publish itself already succeeded
            self._log.warning("kept snapshots list not updated after %s: %s", cid, exc)

    def _update(self, cid: str) -> None:
        records = [r for r in self._load() if r.get("cid") != cid]
        current = self._current(cid)
        if current is not None:
            records.insert(0, current)
        kept = set(newest_cids(self._history.entries(), 2**31)) | {cid}
        records = [r for r in records if r.get("cid") in kept]
        records.sort(key=_newest_first)
        atomic_write_json(self._file, records, mode=0o600)
        value = json.dumps(
            {"schema_version": KEPT_SCHEMA_VERSION, "key": self._key, "records": records},
            sort_keys=True,
            separators=(",", ":"),
        )
        if not self._registry.hset(KEPT_HKEY, self._key, value):
            self._log.warning("kept snapshots list not acknowledged by the registry")

    def _current(self, cid: str) -> dict[str, Any] | None:
        """The registry's record if it still is ``cid``'s (as published, with every field)."""
        text = self._registry.hget(C.CHAINSTORE_HKEY, self._key)
        try:
            record = json.loads(text) if text is not None else None
        except ValueError:
            record = None
        if isinstance(record, dict) and record.get("cid") == cid:
            return record
        self._log.warning("record %s is no longer current; not added to the kept list", cid)
        return None

    def _load(self) -> list[dict[str, Any]]:
        raw = read_json_file(self._file)
        if not isinstance(raw, list):
            return []
        return [r for r in raw if isinstance(r, dict)]


def _newest_first(record: dict[str, Any]) -> tuple[float, float]:
    version = record.get("version")
    stamp = record.get("timestamp")
    return (
        -float(version) if isinstance(version, int | float) else 0.0,
        -float(stamp) if isinstance(stamp, int | float) else 0.0,
    )


def read_kept(registry: Registry, key: str) -> list[dict[str, Any]] | None:
    """The kept records of ``key``, newest first; None when no provider published a list.

    Raises:
        RegistryError: the registry cannot be read (``RegistryUnavailable`` when transient).
        KeptListInvalid: the value is not a kept list.
    """
    registry.hsync(KEPT_HKEY)
    text = registry.hget(KEPT_HKEY, key)
    if text is None:
        return None
    try:
        value = json.loads(text)
    except ValueError as exc:
        raise KeptListInvalid(f"kept snapshots list of {key!r} is not JSON: {exc}") from None
    records = value.get("records") if isinstance(value, dict) else None
    if not isinstance(records, list) or not all(
        isinstance(r, dict) and isinstance(r.get("cid"), str) for r in records
    ):
        raise KeptListInvalid(f"kept snapshots list of {key!r} has no list of records")
    return records


def current_record(registry: Registry, key: str) -> dict[str, Any] | None:
    """The registry's current record of ``key`` as a JSON object, or None."""
    registry.hsync(C.CHAINSTORE_HKEY)
    text = registry.hget(C.CHAINSTORE_HKEY, key)
    try:
        record = json.loads(text) if text is not None else None
    except ValueError:
        return None
    return record if isinstance(record, dict) else None
