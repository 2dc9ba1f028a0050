"""The apply journal in ``sync_state/``: the plan and the commit state
(docs/FORMAT.md, "Host-side layout").

Two files:

- ``journal.plan.jsonl``: every planned operation, one JSON line each, written while
  the app still runs (``sync/staging.py``) and fsynced. Streaming it keeps memory flat
  for archives with up to ``MAX_MEMBERS`` members.
- ``journal.json``: the header, written atomically (fsync'd) **before the first write
  to a volume**. It names the CID, the plan, and each volume's per-apply backup dir,
  and holds the state: ``committing`` -> ``committed`` (or ``rolling_back``).

Recovery reads only these two files plus the markers in the backup dirs
(``sync/apply.py``): with no header nothing was written; ``committing``/``rolling_back``
is rolled back; ``committed`` is finished (backup dirs removed).
"""

from __future__ import annotations

import contextlib
import json
import os
from collections.abc import Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import IO, Any

from ..fsutil import atomic_write_json, fsync_dir
from . import constants as C
from .state_fields import read_int, read_str

KIND_DIR = "dir"  # a directory member: create, or update an existing dir's metadata
KIND_FILE = "file"  # a regular-file member: create or replace
KIND_PARENT = "parent"  # an implicit ancestor directory: create if missing
# (mirror mode adds "remove" ops after these: sync/mirror.py)
PLAN_FILE = "journal.plan.jsonl"

STATE_COMMITTING = "committing"
STATE_COMMITTED = "committed"
STATE_ROLLING_BACK = "rolling_back"


@dataclass(frozen=True, slots=True)
class PlannedOp:
    """One planned operation on one host path (host paths: private to sync_state)."""

    index: int
    kind: str
    ordinal: int  # position of the tar member this op comes from
    container_path: str
    host_path: str
    volume: str  # the volume's host root
    size: int
    mode: int
    mtime: float
    # Exact nanoseconds when the snapshot has them (chunked); tar members have seconds.
    mtime_ns: int | None = None

    def to_line(self) -> str:
        # Built by hand: dataclasses.asdict deep-copies and is ~10x slower per member.
        fields = {name: getattr(self, name) for name in self.__slots__}
        return json.dumps(fields, separators=(",", ":")) + "\n"

    @classmethod
    def from_line(cls, line: str) -> PlannedOp:
        return cls(**json.loads(line))


@dataclass(frozen=True, slots=True)
class JournalHeader:
    """The content of ``journal.json``."""

    apply_id: str
    cid: str
    version: int | None
    state: str
    ops: int
    backup_dirs: dict[str, str] = field(default_factory=dict)  # volume root -> backup dir
    manifest_digest: str = ""  # quarantine key half, for an apply interrupted by a crash

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, raw: Any) -> JournalHeader:
        """Read a header, trusting nothing: recovery acts on every field.

        Raises:
            ValueError: a field is missing or of the wrong type (recovery must halt).
        """
        if not isinstance(raw, dict):
            raise ValueError("journal.json is malformed: not an object")
        problems = _header_problems(raw)
        if problems:
            raise ValueError(f"journal.json is malformed: bad field(s) {', '.join(problems)}")
        return cls(**raw)


_HEADER_STATES = (STATE_COMMITTING, STATE_COMMITTED, STATE_ROLLING_BACK)


def _header_problems(raw: dict[str, Any]) -> list[str]:
    """The fields of a header as read that are missing, of the wrong type, or unknown."""
    dirs = raw.get("backup_dirs", {})
    good = {
        "apply_id": read_str(raw, "apply_id") is not None,
        "cid": read_str(raw, "cid") is not None,
        "version": "version" in raw
        and (raw["version"] is None or read_int(raw, "version") is not None),
        "state": raw.get("state") in _HEADER_STATES,
        "ops": read_int(raw, "ops") is not None,
        "backup_dirs": isinstance(dirs, dict)
        and all(isinstance(k, str) and isinstance(v, str) for k, v in dirs.items()),
        "manifest_digest": isinstance(raw.get("manifest_digest", ""), str),
    }
    return [name for name, ok in good.items() if not ok] + [n for n in raw if n not in good]


class Journal:
    """Reads and writes the journal files in one ``sync_state`` directory."""

    def __init__(self, sync_state_dir: Path) -> None:
        self.dir = sync_state_dir

    @property
    def header_path(self) -> Path:
        return self.dir / C.JOURNAL_FILE

    @property
    def plan_path(self) -> Path:
        return self.dir / PLAN_FILE

    @contextlib.contextmanager
    def plan_writer(self) -> Iterator[IO[str]]:
        """Write a new plan; it replaces the old one only if the block completes.

        Raises:
            OSError: the plan could not be written (no partial plan is left).
        """
        self.dir.mkdir(parents=True, exist_ok=True)
        tmp = self.dir / f".{PLAN_FILE}.tmp"
        try:
            with open(tmp, "w", encoding="utf-8") as handle:
                yield handle
                handle.flush()
                os.fsync(handle.fileno())
            os.replace(tmp, self.plan_path)
            fsync_dir(self.dir)
        finally:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(tmp)

    def ops(self) -> Iterator[PlannedOp]:
        """The planned operations in order."""
        with open(self.plan_path, encoding="utf-8") as handle:
            for line in handle:
                if line.strip():
                    yield PlannedOp.from_line(line)

    def append_ops(self, ops: list[PlannedOp]) -> None:
        """Add operations to the end of the plan (fsynced); before the header is written.

        Raises:
            OSError: the plan could not be extended (nothing was written to a volume).
        """
        if not ops:
            return
        with open(self.plan_path, "a", encoding="utf-8") as handle:
            handle.writelines(op.to_line() for op in ops)
            handle.flush()
            os.fsync(handle.fileno())

    def write_header(self, header: JournalHeader) -> None:
        """Durably write ``journal.json`` (atomic replace + directory fsync)."""
        atomic_write_json(self.header_path, header.to_dict())
        fsync_dir(self.dir)

    def read_header(self) -> JournalHeader | None:
        """The header, or None if there is none.

        Raises:
            ValueError: the header exists but cannot be parsed (recovery must halt).
        """
        try:
            raw = json.loads(self.header_path.read_text(encoding="utf-8"))
        except FileNotFoundError:
            return None
        return JournalHeader.from_dict(raw)

    def has_plan(self) -> bool:
        return self.plan_path.exists()

    def remove(self) -> None:
        """Delete the header first (the commit/rollback is over), then the plan."""
        for path in (self.header_path, self.plan_path):
            with contextlib.suppress(FileNotFoundError):
                os.unlink(path)
        fsync_dir(self.dir)
