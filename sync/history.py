"""HistoryLog: the JSON audit trail in ``sync_history/{sent,received}/`` (docs/FORMAT.md,
"Host-side layout").

One file per event, named ``<version:010d>__<cid[:12] sanitised>.json``; a name that
already exists gets a numeric suffix, never an overwrite. "Latest" is the most recently
*written* entry (a nanosecond write stamp stored in the entry as ``_written_ns``), not
the highest version: a back-dated record must not make an older entry look newer.
What an entry holds is ``sync/state_records.py`` (``SentEntry``, ``ReceivedEntry``).
"""

from __future__ import annotations

import json
import re
import time
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..fsutil import atomic_write_json
from .state_records import Deletion, HistoryRecord, ReceivedEntry, SentEntry

_UNSAFE = re.compile(r"[^A-Za-z0-9]")
WRITE_STAMP = "_written_ns"


def empty_deletion() -> dict[str, Any]:
    """The ``deletion`` sub-record before retirement: all null."""
    return Deletion().to_dict()


@dataclass(frozen=True, slots=True)
class HistoryEntry:
    """One history file: its JSON object as read (kept whole, so rewriting its
    ``deletion`` loses nothing another runner wrote) and typed views of it."""

    path: Path
    data: dict[str, Any]

    @property
    def cid(self) -> str:
        return str(self.data.get("cid", ""))

    @property
    def written_ns(self) -> int:
        value = self.data.get(WRITE_STAMP)
        return value if isinstance(value, int) else 0

    @property
    def content(self) -> dict[str, Any]:
        """The entry as its writer wrote it, without this log's write stamp."""
        return {k: v for k, v in self.data.items() if k != WRITE_STAMP}

    @property
    def deletion(self) -> Deletion:
        return Deletion.from_dict(self.data.get("deletion"))

    def sent(self) -> SentEntry:
        """This entry read as a sent one (``sync_history/sent/``)."""
        return SentEntry.from_dict(self.content)

    def received(self) -> ReceivedEntry:
        """This entry read as a received one (``sync_history/received/``)."""
        return ReceivedEntry.from_dict(self.content)


class HistoryLog:
    """Append-only (plus deletion updates) JSON history in one directory."""

    def __init__(self, directory: Path) -> None:
        self.directory = directory

    def _name_for(self, version: int, cid: str) -> Path:
        stem = f"{int(version):010d}__{_UNSAFE.sub('_', cid[:12])}"
        candidate = self.directory / f"{stem}.json"
        n = 1
        while candidate.exists():
            candidate = self.directory / f"{stem}.{n}.json"
            n += 1
        return candidate

    def append(self, entry: HistoryRecord | Mapping[str, Any]) -> Path:
        """Write a new entry (with an all-null ``deletion`` if absent); return its path.

        Args:
            entry: a typed entry, or a JSON object another writer made (as read).

        Raises:
            OSError: the write failed; no partial file is left.
        """
        self.directory.mkdir(parents=True, exist_ok=True)
        data = entry.to_dict() if isinstance(entry, SentEntry | ReceivedEntry) else dict(entry)
        data.setdefault("deletion", empty_deletion())
        # Strictly increasing even when two appends land in the same clock tick.
        last = max((e.written_ns for e in self.entries()), default=0)
        data[WRITE_STAMP] = max(time.time_ns(), last + 1)
        path = self._name_for(int(data.get("version") or 0), str(data.get("cid", "")))
        atomic_write_json(path, data)
        return path

    def entries(self) -> list[HistoryEntry]:
        """Every readable entry, oldest write first. Unreadable files are skipped."""
        if not self.directory.is_dir():
            return []
        out: list[HistoryEntry] = []
        for path in self.directory.glob("*.json"):
            try:
                data = json.loads(path.read_text(encoding="utf-8"))
            except (OSError, ValueError):
                continue
            if isinstance(data, dict):
                out.append(HistoryEntry(path, data))
        out.sort(key=lambda e: (e.written_ns, e.path.name))
        return out

    def latest(self) -> HistoryEntry | None:
        """The most recently written entry, or None."""
        entries = self.entries()
        return entries[-1] if entries else None

    def update_deletion(
        self, entry: HistoryEntry, *, succeeded: bool, error: str | None, at: float
    ) -> HistoryEntry:
        """Record a retirement outcome in an existing entry (atomic rewrite)."""
        deletion = Deletion(deleted_at=at, deletion_succeeded=succeeded, deletion_error=error)
        data = {**entry.data, "deletion": deletion.to_dict()}
        atomic_write_json(entry.path, data)
        return HistoryEntry(entry.path, data)
