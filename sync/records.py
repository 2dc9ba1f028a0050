"""Typed wire objects of volume-sync and their JSON codec (SPEC §5.1, §7.3).

``SyncRequest`` is what an app asks for; ``Manifest`` and ``SyncRecord`` are what the
provider publishes under ``CHAINSTORE_SYNC``/``SYNC.KEY``. Records are frozen dataclasses;
``parse_record`` is the only way in from untrusted JSON and collects every structural
problem at once. Semantic checks (known format, limits, trusted node, path mapping)
belong to the consumer's validation, which knows local policy.
"""

from __future__ import annotations

import hashlib
import json
import math
from dataclasses import dataclass, field
from typing import Any

from ..errors import SnapshotInvalid
from . import constants as C


@dataclass(frozen=True, slots=True)
class SyncRequest:
    """A validated request.json.

    ``archive_paths`` are normalised and de-duplicated: they build the archive and go
    into the manifest. ``requested_paths`` are the same paths exactly as the app wrote
    them, because apps written for the older runner compare the echo in response.json
    with what they sent (SPEC §13, docs/FORMAT.md).
    """

    archive_paths: tuple[str, ...]
    metadata: dict[str, Any] = field(default_factory=dict)
    provider_capture: str = C.CAPTURE_OFFLINE
    consumer_apply: str = C.APPLY_OFFLINE_RESTART
    request_id: str | None = None
    requested_paths: tuple[str, ...] = ()

    @property
    def echo_paths(self) -> list[str]:
        """The paths to echo to the app and in the sent history: as written."""
        return list(self.requested_paths or self.archive_paths)

    @property
    def runtime(self) -> dict[str, str]:
        return {"provider_capture": self.provider_capture, "consumer_apply": self.consumer_apply}


@dataclass(frozen=True, slots=True)
class Manifest:
    """What the archive holds and how it was made."""

    archive_paths: tuple[str, ...]
    archive_format: str
    archive_size_bytes: int
    schema_version: int = C.MANIFEST_SCHEMA_VERSION
    encryption: str = C.ENCRYPTION_DEFAULT
    runtime: dict[str, Any] = field(default_factory=dict)
    archive_sha256: str | None = None
    unpacked_bytes: int | None = None
    members: int | None = None

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "schema_version": self.schema_version,
            "archive_paths": list(self.archive_paths),
            "archive_format": self.archive_format,
            "archive_size_bytes": self.archive_size_bytes,
            "encryption": self.encryption,
            "runtime": dict(self.runtime),
        }
        for name in ("archive_sha256", "unpacked_bytes", "members"):
            value = getattr(self, name)
            if value is not None:
                out[name] = value
        return out

    def digest(self) -> str:
        """SHA-256 of the canonical manifest JSON: half of the quarantine key (SPEC §7.8)."""
        canonical = json.dumps(self.to_dict(), sort_keys=True, separators=(",", ":"))
        return hashlib.sha256(canonical.encode("utf-8")).hexdigest()


@dataclass(frozen=True, slots=True)
class SyncRecord:
    """The registry value for one sync key: the latest published snapshot."""

    cid: str
    version: int
    timestamp: float
    node_id: str
    manifest: Manifest
    metadata: dict[str, Any] = field(default_factory=dict)
    runtime: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return {
            "cid": self.cid,
            "version": self.version,
            "timestamp": self.timestamp,
            "node_id": self.node_id,
            "metadata": dict(self.metadata),
            "runtime": dict(self.runtime),
            "manifest": self.manifest.to_dict(),
        }

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), sort_keys=True, separators=(",", ":"))


# --- parsing untrusted JSON ---------------------------------------------------------------


def _is_int(v: Any) -> bool:
    return isinstance(v, int) and not isinstance(v, bool)


def _is_number(v: Any) -> bool:
    return (_is_int(v) or isinstance(v, float)) and math.isfinite(float(v))


class _Collector:
    """Collects every problem so the operator sees them all at once."""

    def __init__(self) -> None:
        self.reasons: list[str] = []

    def need(self, obj: dict[str, Any], key: str, check: Any, what: str, where: str) -> Any:
        if key not in obj:
            self.reasons.append(f"{where}{key}: missing")
            return None
        value = obj[key]
        if not check(value):
            self.reasons.append(f"{where}{key}: must be {what}")
            return None
        return value

    def optional(self, obj: dict[str, Any], key: str, check: Any, what: str, where: str) -> Any:
        if obj.get(key) is None:
            return None
        return self.need(obj, key, check, what, where)


def _parse_manifest(raw: Any, col: _Collector) -> Manifest | None:
    if not isinstance(raw, dict):
        col.reasons.append("manifest: must be an object")
        return None
    w = "manifest."
    schema = col.need(raw, "schema_version", _is_int, "an integer", w)
    paths = col.need(
        raw,
        "archive_paths",
        lambda v: isinstance(v, list) and v and all(isinstance(p, str) for p in v),
        "a non-empty list of strings",
        w,
    )
    fmt = col.need(raw, "archive_format", lambda v: isinstance(v, str), "a string", w)
    size = col.need(
        raw, "archive_size_bytes", lambda v: _is_int(v) and v >= 0, "an integer >= 0", w
    )
    enc = raw.get("encryption", C.ENCRYPTION_DEFAULT)
    if not isinstance(enc, str):
        col.reasons.append("manifest.encryption: must be a string")
    runtime = raw.get("runtime") or {}
    if not isinstance(runtime, dict):
        col.reasons.append("manifest.runtime: must be an object")
        runtime = {}
    sha = col.optional(
        raw,
        "archive_sha256",
        lambda v: isinstance(v, str) and len(v) == 64 and all(c in "0123456789abcdef" for c in v),
        "64 lower-case hex characters",
        w,
    )
    unpacked = col.optional(
        raw, "unpacked_bytes", lambda v: _is_int(v) and v >= 0, "an integer >= 0", w
    )
    members = col.optional(raw, "members", lambda v: _is_int(v) and v >= 0, "an integer >= 0", w)
    if None in (schema, paths, fmt, size) or not isinstance(enc, str):
        return None
    return Manifest(
        schema_version=schema,
        archive_paths=tuple(paths),
        archive_format=fmt,
        archive_size_bytes=size,
        encryption=enc,
        runtime=runtime,
        archive_sha256=sha,
        unpacked_bytes=unpacked,
        members=members,
    )


def parse_record(text: str | bytes) -> SyncRecord:
    """Parse a registry value into a SyncRecord.

    Raises:
        SnapshotInvalid: with every structural problem found (not just the first).
    """
    try:
        raw = json.loads(text)
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise SnapshotInvalid(f"record is not valid JSON: {exc}") from None
    if not isinstance(raw, dict):
        raise SnapshotInvalid("record must be a JSON object")
    col = _Collector()
    cid = col.need(raw, "cid", lambda v: isinstance(v, str) and v != "", "a non-empty string", "")
    version = col.need(raw, "version", _is_int, "an integer", "")
    timestamp = col.optional(raw, "timestamp", _is_number, "a number", "")
    node_id = col.optional(raw, "node_id", lambda v: isinstance(v, str), "a string", "")
    metadata = raw.get("metadata") or {}
    if not isinstance(metadata, dict):
        col.reasons.append("metadata: must be an object")
    runtime = raw.get("runtime") or {}
    if not isinstance(runtime, dict):
        col.reasons.append("runtime: must be an object")
    manifest = _parse_manifest(raw.get("manifest"), col)
    if col.reasons or manifest is None:
        raise SnapshotInvalid(col.reasons or ["manifest: invalid"])
    return SyncRecord(
        cid=cid,
        version=version,
        timestamp=float(timestamp) if timestamp is not None else float(version),
        node_id=node_id or "",
        manifest=manifest,
        metadata=metadata,
        runtime=runtime,
    )
