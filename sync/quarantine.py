"""Quarantine: failed snapshots wait out an exponential backoff (README, "Consumer").

A record that failed once (bad manifest, failed download, digest mismatch, bad member,
no space, failed stop or commit) would otherwise be retried every tick, and a failure
after the stop would stop the app every tick. Entries are keyed by (CID, manifest
digest), so a re-published record with the same CID but a different manifest gets a
fresh chance. Backoff is 60 s x 2^(n-1), capped at 3600 s. The state lives in
``sync_state/quarantine.json`` so it survives runner restarts; times are wall-clock
seconds for the same reason.

A runner that died mid-commit (the apply was rolled back at the next start) says
nothing about the snapshot, so such an *interruption* is counted apart from failures
and retried at once, up to ``CRASH_RETRIES`` times in a row; past that it is counted
as a ``commit`` failure with the normal backoff (a snapshot that kills the runner every
time must not stop the app every start). A success clears both counts.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from ..fsutil import atomic_write_json
from . import constants as C
from .state_fields import read_int, read_number, read_str, required

# Failure kinds; "stop" is the confirmed stop failing before any write.
KIND_VALIDATION = "validation"
KIND_DOWNLOAD = "download"
KIND_DIGEST = "digest"
KIND_EXTRACT = "extract"
KIND_SPACE = "space"
KIND_COMMIT = "commit"
KIND_STOP = "stop"
FAILURE_KINDS = (
    KIND_VALIDATION,
    KIND_DOWNLOAD,
    KIND_DIGEST,
    KIND_EXTRACT,
    KIND_SPACE,
    KIND_COMMIT,
    KIND_STOP,
)


# A crash-interrupted apply is retried at once this many times before it counts as a
# failure with backoff.
CRASH_RETRIES = C.CRASH_RETRIES


def backoff_seconds(
    failures: int, base: float = C.QUARANTINE_BASE_SECONDS, cap: float = C.QUARANTINE_CAP_SECONDS
) -> float:
    """60 s x 2^(n-1) capped at 3600 s for the n-th consecutive failure (n >= 1)."""
    exponent = min(max(failures, 1) - 1, 32)  # 2^32 x 60 s is far past any cap
    return float(min(base * (2**exponent), cap))


@dataclass(frozen=True, slots=True)
class QuarantineEntry:
    """One quarantined (CID, manifest digest) and why."""

    cid: str
    manifest_digest: str
    failures: int
    kind: str
    stage: str | None
    error: str
    first_failed_at: float
    last_failed_at: float
    retry_at: float

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, raw: Mapping[str, Any]) -> QuarantineEntry:
        """Read one entry of ``entries`` (unknown fields ignored).

        Raises:
            ValueError: a field is missing or of the wrong type (the entry is dropped).
        """
        return cls(
            cid=required(read_str(raw, "cid"), "cid"),
            manifest_digest=required(read_str(raw, "manifest_digest"), "manifest_digest"),
            failures=required(read_int(raw, "failures"), "failures"),
            kind=required(read_str(raw, "kind"), "kind"),
            stage=read_str(raw, "stage"),
            error=required(read_str(raw, "error"), "error"),
            first_failed_at=required(read_number(raw, "first_failed_at"), "first_failed_at"),
            last_failed_at=required(read_number(raw, "last_failed_at"), "last_failed_at"),
            retry_at=required(read_number(raw, "retry_at"), "retry_at"),
        )


@dataclass(frozen=True, slots=True)
class Interruption:
    """How often in a row an apply of one (CID, manifest digest) was cut by a crash."""

    cid: str
    manifest_digest: str
    count: int
    error: str
    last_at: float

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, raw: Mapping[str, Any]) -> Interruption:
        """Read one entry of ``interruptions`` (unknown fields ignored).

        Raises:
            ValueError: a field is missing or of the wrong type (the entry is dropped).
        """
        return cls(
            cid=required(read_str(raw, "cid"), "cid"),
            manifest_digest=required(read_str(raw, "manifest_digest"), "manifest_digest"),
            count=required(read_int(raw, "count"), "count"),
            error=required(read_str(raw, "error"), "error"),
            last_at=required(read_number(raw, "last_at"), "last_at"),
        )


class Quarantine:
    """Persistent quarantine table in ``sync_state/quarantine.json``."""

    def __init__(self, path: Path) -> None:
        self.path = path

    def _read(self) -> dict[str, Any]:
        try:
            raw = json.loads(self.path.read_text(encoding="utf-8"))
        except FileNotFoundError:
            return {}
        except (OSError, ValueError):
            # A damaged file must not block applies forever; start afresh.
            return {}
        return raw if isinstance(raw, dict) else {}

    def _load(self) -> dict[str, QuarantineEntry]:
        out: dict[str, QuarantineEntry] = {}
        for item in _list(self._read().get("entries")):
            try:
                entry = QuarantineEntry.from_dict(item)
            except ValueError:  # one damaged entry: that snapshot is simply retried
                continue
            out[_key(entry.cid, entry.manifest_digest)] = entry
        return out

    def _load_interruptions(self) -> dict[str, Interruption]:
        out: dict[str, Interruption] = {}
        for item in _list(self._read().get("interruptions")):
            try:
                entry = Interruption.from_dict(item)
            except ValueError:
                continue
            out[_key(entry.cid, entry.manifest_digest)] = entry
        return out

    def _save(
        self,
        table: dict[str, QuarantineEntry],
        interruptions: dict[str, Interruption] | None = None,
    ) -> None:
        if interruptions is None:
            interruptions = self._load_interruptions()
        self.path.parent.mkdir(parents=True, exist_ok=True)
        entries = [e.to_dict() for e in sorted(table.values(), key=lambda e: e.last_failed_at)]
        crashes = [i.to_dict() for i in sorted(interruptions.values(), key=lambda i: i.last_at)]
        atomic_write_json(self.path, {"entries": entries, "interruptions": crashes})

    def record_failure(
        self,
        cid: str,
        manifest_digest: str,
        *,
        kind: str,
        error: str,
        now: float,
        stage: str | None = None,
    ) -> QuarantineEntry:
        """Count one more failure and set the next retry time.

        Args:
            kind: one of ``FAILURE_KINDS``.
            now: wall-clock seconds.

        Returns:
            The updated entry.
        """
        table = self._load()
        old = table.get(_key(cid, manifest_digest))
        failures = (old.failures if old else 0) + 1
        entry = QuarantineEntry(
            cid=cid,
            manifest_digest=manifest_digest,
            failures=failures,
            kind=kind,
            stage=stage,
            error=error,
            first_failed_at=old.first_failed_at if old else now,
            last_failed_at=now,
            retry_at=now + backoff_seconds(failures),
        )
        table[_key(cid, manifest_digest)] = entry
        self._save(table)
        return entry

    def record_interruption(
        self, cid: str, manifest_digest: str, *, error: str, now: float
    ) -> QuarantineEntry | None:
        """Count one apply cut short by a runner crash (rolled back at start-up).

        Returns:
            None while the count is at most ``CRASH_RETRIES`` (retry at once); past that
            the ``commit`` failure entry it was counted as (normal backoff).
        """
        crashes = self._load_interruptions()
        key = _key(cid, manifest_digest)
        old = crashes.get(key)
        count = (old.count if old else 0) + 1
        crashes[key] = Interruption(cid, manifest_digest, count, error, now)
        self._save(self._load(), crashes)
        if count <= CRASH_RETRIES:
            return None
        return self.record_failure(
            cid,
            manifest_digest,
            kind=KIND_COMMIT,
            error=f"{error}; interrupted by a runner crash {count} times in a row",
            now=now,
            stage=C.STAGE_COMMIT,
        )

    def interruptions(self, cid: str, manifest_digest: str) -> int:
        """How many applies of this snapshot in a row a runner crash cut short."""
        entry = self._load_interruptions().get(_key(cid, manifest_digest))
        return entry.count if entry else 0

    def blocking(self, cid: str, manifest_digest: str, now: float) -> QuarantineEntry | None:
        """The entry if its backoff has not expired at ``now``, else None."""
        entry = self._load().get(_key(cid, manifest_digest))
        if entry is not None and now < entry.retry_at:
            return entry
        return None

    def clear(self, cid: str | None = None) -> None:
        """Forget entries for ``cid`` (all entries when None), e.g. after a success."""
        table = self._load()
        crashes = self._load_interruptions()
        kept = {k: e for k, e in table.items() if cid is not None and e.cid != cid}
        kept_crashes = {k: i for k, i in crashes.items() if cid is not None and i.cid != cid}
        if kept != table or kept_crashes != crashes:
            self._save(kept, kept_crashes)

    def entries(self) -> list[QuarantineEntry]:
        """Every entry, oldest failure first (for ``car sync status``)."""
        return sorted(self._load().values(), key=lambda e: e.last_failed_at)


def _key(cid: str, manifest_digest: str) -> str:
    return f"{cid}|{manifest_digest}"


def _list(value: Any) -> list[Any]:
    return [v for v in value if isinstance(v, dict)] if isinstance(value, list) else []
