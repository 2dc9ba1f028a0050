"""History entries and ``last_apply.json`` as typed records (docs/FORMAT.md).

One frozen dataclass per JSON object the runner writes about a snapshot it sent or
applied: ``SentEntry`` ("Sent history entry"), ``ReceivedEntry`` ("Received history
entry") with their ``Deletion`` and durations sub-records, and ``LastApply``
("last_apply.json (consumer → app)"). Each ``to_dict()`` is the one place that spells
the fields of its file. The history is shared with the older runner and operators
script against it, so the fields and their values are those of docs/FORMAT.md exactly.

``from_dict()`` reads what this or an older runner wrote and never raises: a missing
field, or one of the wrong type, reads as its default (None, empty); fields this
version does not know are kept in ``extra`` and written back. Where the files live and
how they are named is ``sync/history.py``'s job (and ``sync/apply_report.py`` writes
``last_apply.json``).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field, fields, replace
from typing import Any

from .records import SyncRecord, SyncRequest
from .state_fields import (
    read_bool,
    read_int,
    read_number,
    read_object,
    read_str,
    read_strs,
    unknown_fields,
)


def _field_names(cls: type) -> tuple[str, ...]:
    return tuple(f.name for f in fields(cls) if f.name != "extra")


# --- sub-records ---------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Deletion:
    """A history entry's ``deletion``: all null until its CID is retired (docs/FORMAT.md
    "Received history entry"); a failed retirement is retried at the next publish/apply."""

    deleted_at: float | None = None
    deletion_succeeded: bool | None = None
    deletion_error: str | None = None

    @property
    def retired(self) -> bool:
        """True once a deletion of the entry's CID succeeded."""
        return self.deletion_succeeded is True

    def to_dict(self) -> dict[str, Any]:
        return {
            "deleted_at": self.deleted_at,
            "deletion_succeeded": self.deletion_succeeded,
            "deletion_error": self.deletion_error,
        }

    @classmethod
    def from_dict(cls, raw: Any) -> Deletion:
        if not isinstance(raw, Mapping):
            return cls()
        return cls(
            read_number(raw, "deleted_at"),
            read_bool(raw, "deletion_succeeded"),
            read_str(raw, "deletion_error"),
        )


@dataclass(frozen=True, slots=True)
class SentDurations:
    """Seconds a publish spent per phase (``durations`` of a sent entry); None: not reached."""

    archive: float | None = None
    upload: float | None = None
    publish: float | None = None

    def to_dict(self) -> dict[str, float | None]:
        return {"archive": self.archive, "upload": self.upload, "publish": self.publish}

    @classmethod
    def from_dict(cls, raw: Any) -> SentDurations:
        if not isinstance(raw, Mapping):
            return cls()
        return cls(
            read_number(raw, "archive"), read_number(raw, "upload"), read_number(raw, "publish")
        )


@dataclass(frozen=True, slots=True)
class Durations:
    """Seconds an apply spent per phase (``durations`` of a received entry, and of
    ``pending_report.json``), rounded to microseconds when written."""

    download: float = 0.0
    prepare: float = 0.0
    commit: float | None = 0.0  # None: unknown (the runner died during the commit)

    @property
    def elapsed(self) -> float:
        """Seconds spent in the phases known so far."""
        return self.download + self.prepare + (self.commit or 0.0)

    def with_commit(self, seconds: float | None) -> Durations:
        return replace(self, commit=seconds)

    def to_dict(self) -> dict[str, float | None]:
        return {
            "download": round(self.download, 6),
            "prepare": round(self.prepare, 6),
            "commit": round(self.commit, 6) if self.commit is not None else None,
        }

    @classmethod
    def from_dict(cls, raw: Any) -> Durations:
        if not isinstance(raw, Mapping):
            return cls()
        return cls(
            read_number(raw, "download") or 0.0,
            read_number(raw, "prepare") or 0.0,
            read_number(raw, "commit"),
        )


# --- history entries -----------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class SentEntry:
    """One ``sync_history/sent/`` file (docs/FORMAT.md "Sent history entry")."""

    cid: str
    version: int | None
    published_timestamp: float | None
    request: dict[str, Any]  # the app's request as it wrote it (paths unnormalised)
    manifest: dict[str, Any]  # the published record's manifest
    archive_size_bytes: int | None
    chainstore_ack: bool | None  # as observed: False when the registry gave no ack
    node_id: str | None
    durations: SentDurations
    downtime_seconds: float | None
    deletion: Deletion = Deletion()
    extra: dict[str, Any] = field(default_factory=dict)  # fields another runner added

    @classmethod
    def published(
        cls,
        record: SyncRecord,
        request: SyncRequest,
        *,
        ack: bool,
        durations: SentDurations,
        downtime: float,
    ) -> SentEntry:
        """The entry of a publish that reached the commit point."""
        echo = {
            "archive_paths": request.echo_paths,
            "metadata": request.metadata,
            "runtime": request.runtime,
            "request_id": request.request_id,
        }
        return cls(
            cid=record.cid,
            version=record.version,
            published_timestamp=record.timestamp,
            request=echo,
            manifest=record.manifest.to_dict(),
            archive_size_bytes=record.manifest.archive_size_bytes,
            chainstore_ack=ack,
            node_id=record.node_id,
            durations=durations,
            downtime_seconds=downtime,
        )

    @property
    def timestamp(self) -> float | None:
        return self.published_timestamp

    @property
    def archive_size(self) -> int | None:
        return read_int(self.manifest, "archive_size_bytes")

    def to_dict(self) -> dict[str, Any]:
        return {
            **self.extra,
            "cid": self.cid,
            "version": self.version,
            "published_timestamp": self.published_timestamp,
            "request": self.request,
            "manifest": self.manifest,
            "archive_size_bytes": self.archive_size_bytes,
            "chainstore_ack": self.chainstore_ack,
            "node_id": self.node_id,
            "durations": self.durations.to_dict(),
            "downtime_seconds": self.downtime_seconds,
            "deletion": self.deletion.to_dict(),
        }

    @classmethod
    def from_dict(cls, raw: Mapping[str, Any]) -> SentEntry:
        return cls(
            cid=read_str(raw, "cid") or "",
            version=read_int(raw, "version"),
            published_timestamp=read_number(raw, "published_timestamp"),
            request=read_object(raw, "request"),
            manifest=read_object(raw, "manifest"),
            archive_size_bytes=read_int(raw, "archive_size_bytes"),
            chainstore_ack=read_bool(raw, "chainstore_ack"),
            node_id=read_str(raw, "node_id"),
            durations=SentDurations.from_dict(raw.get("durations")),
            downtime_seconds=read_number(raw, "downtime_seconds"),
            deletion=Deletion.from_dict(raw.get("deletion")),
            extra=unknown_fields(raw, _field_names(cls)),
        )


@dataclass(frozen=True, slots=True)
class ReceivedEntry:
    """One ``sync_history/received/`` file (docs/FORMAT.md "Received history entry")."""

    cid: str
    version: int | None
    source_timestamp: float | None  # the record's timestamp
    applied_timestamp: float | None
    node_id: str | None  # the provider's
    metadata: dict[str, Any]
    manifest: dict[str, Any]
    extracted_paths: tuple[str, ...]
    durations: Durations
    downtime_seconds: float | None
    deletion: Deletion = Deletion()
    finished_by_recovery: bool = False  # written only when true
    extra: dict[str, Any] = field(default_factory=dict)  # fields another runner added

    @classmethod
    def applied(
        cls,
        record: SyncRecord,
        *,
        applied_at: float,
        extracted_paths: Iterable[str],
        durations: Durations,
        downtime: float,
        recovered: bool = False,
    ) -> ReceivedEntry:
        """The entry of an apply that durably completed (``recovered``: finished by
        start-up recovery after a crash)."""
        return cls(
            cid=record.cid,
            version=record.version,
            source_timestamp=record.timestamp,
            applied_timestamp=applied_at,
            node_id=record.node_id,
            metadata=record.metadata,
            manifest=record.manifest.to_dict(),
            extracted_paths=tuple(extracted_paths),
            durations=durations,
            downtime_seconds=round(downtime, 6),
            finished_by_recovery=recovered,
        )

    @property
    def timestamp(self) -> float | None:
        return self.applied_timestamp

    @property
    def archive_size(self) -> int | None:
        return read_int(self.manifest, "archive_size_bytes")

    def to_dict(self) -> dict[str, Any]:
        data = {
            **self.extra,
            "cid": self.cid,
            "version": self.version,
            "source_timestamp": self.source_timestamp,
            "applied_timestamp": self.applied_timestamp,
            "node_id": self.node_id,
            "metadata": self.metadata,
            "manifest": self.manifest,
            "extracted_paths": list(self.extracted_paths),
            "durations": self.durations.to_dict(),
            "downtime_seconds": self.downtime_seconds,
            "deletion": self.deletion.to_dict(),
        }
        if self.finished_by_recovery:
            data["finished_by_recovery"] = True
        return data

    @classmethod
    def from_dict(cls, raw: Mapping[str, Any]) -> ReceivedEntry:
        return cls(
            cid=read_str(raw, "cid") or "",
            version=read_int(raw, "version"),
            source_timestamp=read_number(raw, "source_timestamp"),
            applied_timestamp=read_number(raw, "applied_timestamp"),
            node_id=read_str(raw, "node_id"),
            metadata=read_object(raw, "metadata"),
            manifest=read_object(raw, "manifest"),
            extracted_paths=read_strs(raw, "extracted_paths"),
            durations=Durations.from_dict(raw.get("durations")),
            downtime_seconds=read_number(raw, "downtime_seconds"),
            deletion=Deletion.from_dict(raw.get("deletion")),
            finished_by_recovery=raw.get("finished_by_recovery") is True,
            extra=unknown_fields(raw, _field_names(cls)),
        )


HistoryRecord = SentEntry | ReceivedEntry


# --- last_apply.json -----------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class LastApply:
    """``last_apply.json`` in the app's control dir (docs/FORMAT.md "last_apply.json").

    Informational for the app: the runner writes it after each apply and never reads it
    back (the consumer dedupes on ``current_apply.json``'s applied CID).
    """

    cid: str
    version: int | None
    source_timestamp: float | None
    applied_timestamp: float | None
    node_id: str | None
    metadata: dict[str, Any]

    @classmethod
    def applied(cls, record: SyncRecord, applied_at: float) -> LastApply:
        return cls(
            cid=record.cid,
            version=record.version,
            source_timestamp=record.timestamp,
            applied_timestamp=applied_at,
            node_id=record.node_id,
            metadata=record.metadata,
        )

    def to_dict(self) -> dict[str, Any]:
        return {
            "cid": self.cid,
            "version": self.version,
            "source_timestamp": self.source_timestamp,
            "applied_timestamp": self.applied_timestamp,
            "node_id": self.node_id,
            "metadata": self.metadata,
        }

    @classmethod
    def from_dict(cls, raw: Mapping[str, Any]) -> LastApply:
        return cls(
            cid=read_str(raw, "cid") or "",
            version=read_int(raw, "version"),
            source_timestamp=read_number(raw, "source_timestamp"),
            applied_timestamp=read_number(raw, "applied_timestamp"),
            node_id=read_str(raw, "node_id"),
            metadata=read_object(raw, "metadata"),
        )
