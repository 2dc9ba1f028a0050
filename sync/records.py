"""Typed wire objects of volume-sync and their JSON codec (docs/FORMAT.md,
"request.json", "Registry record").

``SyncRequest`` is what an app asks for; ``Manifest`` and ``SyncRecord`` are what the
provider publishes under ``CHAINSTORE_SYNC``/``SYNC.KEY``. Records are frozen dataclasses;
``parse_record`` is the only way in from untrusted JSON and collects every structural
problem at once. Semantic checks (known format, limits, trusted node, path mapping)
belong to the consumer's validation, which knows local policy.
"""

from __future__ import annotations

import hashlib
import json
import re
from dataclasses import dataclass, field
from typing import Any

from ..errors import SnapshotInvalid
from ..stores.cid import is_safe_blob_id
from . import constants as C
from .json_limits import JSONRefused, loads_bounded, structure_problems


@dataclass(frozen=True, slots=True)
class SyncRequest:
    """A validated request.json.

    ``archive_paths`` are normalised and de-duplicated: they build the archive and go
    into the manifest. ``requested_paths`` are the same paths exactly as the app wrote
    them, because apps written for the older runner compare the echo in response.json
    with what they sent (docs/FORMAT.md, "response.json (provider → app), success").
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


def encryption_label(archive_format: str, encrypted: bool) -> str:
    """The manifest's ``encryption`` for a snapshot this runner makes (README,
    "Encryption at rest"): tar.gz keeps the older runner's label (its consumers refuse
    any other; it cannot be encrypted), the others tell the truth."""
    if archive_format == C.ARCHIVE_FORMAT_GZ:
        return C.ENCRYPTION_DEFAULT
    return C.ENCRYPTION_SEALED if encrypted else C.ENCRYPTION_NONE


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
        """SHA-256 of the canonical manifest JSON: half of the quarantine key."""
        canonical = json.dumps(self.to_dict(), sort_keys=True, separators=(",", ":"))
        return hashlib.sha256(canonical.encode("utf-8")).hexdigest()


@dataclass(frozen=True, slots=True)
class RecordSignature:
    """A record's optional ``signature`` object (docs/FORMAT.md, "Signed records").

    Only carried here; ``sync/signing.py`` makes and checks it.
    """

    alg: str
    public_key: str  # the signer's key, as PATH.pub holds it
    sync_key: str  # the key it was signed for: names a record copied under another key
    sig: str  # base64 of the Ed25519 signature

    def to_dict(self) -> dict[str, str]:
        return {
            "alg": self.alg,
            "public_key": self.public_key,
            "sync_key": self.sync_key,
            "sig": self.sig,
        }


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
    signature: RecordSignature | None = None

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "cid": self.cid,
            "version": self.version,
            "timestamp": self.timestamp,
            "node_id": self.node_id,
            "metadata": dict(self.metadata),
            "runtime": dict(self.runtime),
            "manifest": self.manifest.to_dict(),
        }
        if self.signature is not None:
            out["signature"] = self.signature.to_dict()
        return out

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), sort_keys=True, separators=(",", ":"))


# --- parsing untrusted JSON ---------------------------------------------------------------


class RecordInvalid(SnapshotInvalid):
    """A registry value that is not a usable record; ``cid`` names it when it can be read."""

    def __init__(self, reasons: list[str] | str, *, cid: str | None) -> None:
        super().__init__(reasons, stage=C.STAGE_VALIDATION)
        self.cid = cid


def _is_int(v: Any) -> bool:
    return isinstance(v, int) and not isinstance(v, bool)


def _is_count(v: Any) -> bool:
    """A version, size or member count: a non-negative 64-bit integer."""
    return _is_int(v) and 0 <= v <= C.MAX_RECORD_INT


def _is_timestamp(v: Any) -> bool:
    """Seconds that every consumer can format (time.localtime, history, status)."""
    return (_is_int(v) or isinstance(v, float)) and 0 <= v <= C.MAX_RECORD_TIMESTAMP


def _is_short_string(v: Any) -> bool:
    return isinstance(v, str) and len(v) <= C.MAX_RECORD_STRING_CHARS


def _is_path_list(v: Any) -> bool:
    return (
        isinstance(v, list)
        and 0 < len(v) <= C.MAX_ARCHIVE_PATHS
        and all(isinstance(p, str) and len(p) <= C.MAX_RECORD_PATH_CHARS for p in v)
    )


_COUNT = f"an integer from 0 to {C.MAX_RECORD_INT}"
_SHORT = f"a string of at most {C.MAX_RECORD_STRING_CHARS} characters"


def metadata_problems(value: dict[str, Any], field: str = "metadata") -> list[str]:
    """Why ``value`` is not acceptable as metadata; empty when it is.

    One rule for a request's metadata (the provider refuses it) and a record's (the
    consumer refuses it), so whatever a provider publishes, its consumers can parse:
    at most ``MAX_METADATA_DEPTH`` levels, integers of at most ``MAX_JSON_INT_DIGITS``
    digits, finite numbers, and at most ``MAX_METADATA_BYTES`` serialized (compact UTF-8).
    """
    problems = structure_problems(
        value, max_depth=C.MAX_METADATA_DEPTH, max_int_digits=C.MAX_JSON_INT_DIGITS
    )
    if not problems:  # shallow enough for the (recursive) encoder
        compact = json.dumps(value, separators=(",", ":"), ensure_ascii=False)
        size = len(compact.encode("utf-8", "surrogatepass"))
        if size > C.MAX_METADATA_BYTES:
            problems.append(
                f"is {size} bytes serialized; at most {C.MAX_METADATA_BYTES} are allowed"
            )
    return [f"{field}: {p}" for p in problems]


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

    def mapping(self, obj: dict[str, Any], key: str, where: str) -> dict[str, Any]:
        """An optional object field (metadata, runtime), bounded like request metadata."""
        value = obj.get(key) or {}
        if not isinstance(value, dict):
            self.reasons.append(f"{where}{key}: must be an object")
            return {}
        self.reasons.extend(metadata_problems(value, f"{where}{key}"))
        return value


def _parse_manifest(raw: Any, col: _Collector) -> Manifest | None:
    if not isinstance(raw, dict):
        col.reasons.append("manifest: must be an object")
        return None
    w = "manifest."
    schema = col.need(raw, "schema_version", _is_count, _COUNT, w)
    paths = col.need(
        raw,
        "archive_paths",
        _is_path_list,
        f"a non-empty list of at most {C.MAX_ARCHIVE_PATHS} strings of at most "
        f"{C.MAX_RECORD_PATH_CHARS} characters",
        w,
    )
    fmt = col.need(raw, "archive_format", _is_short_string, _SHORT, w)
    size = col.need(raw, "archive_size_bytes", _is_count, _COUNT, w)
    enc = raw.get("encryption", C.ENCRYPTION_DEFAULT)
    if not _is_short_string(enc):
        col.reasons.append(f"manifest.encryption: must be {_SHORT}")
    runtime = col.mapping(raw, "runtime", w)
    sha = col.optional(
        raw,
        "archive_sha256",
        lambda v: isinstance(v, str) and len(v) == 64 and all(c in "0123456789abcdef" for c in v),
        "64 lower-case hex characters",
        w,
    )
    unpacked = col.optional(raw, "unpacked_bytes", _is_count, _COUNT, w)
    members = col.optional(raw, "members", _is_count, _COUNT, w)
    if None in (schema, paths, fmt, size) or not _is_short_string(enc):
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


_SIGNATURE_FIELDS = ("alg", "public_key", "sync_key", "sig")


def _parse_signature(raw: Any, col: _Collector) -> RecordSignature | None:
    """The optional ``signature`` object; whether it verifies is the consumer's check."""
    if raw is None:
        return None
    if not isinstance(raw, dict):
        col.reasons.append("signature: must be an object")
        return None
    values = [
        col.need(raw, name, _is_short_string, _SHORT, "signature.") for name in _SIGNATURE_FIELDS
    ]
    if any(v is None for v in values):
        return None
    alg, public_key, sync_key, sig = values
    return RecordSignature(alg=alg, public_key=public_key, sync_key=sync_key, sig=sig)


# Where a record's CID probably is, for naming a value that does not parse.
_CID_HINT = re.compile(r'"cid"\s*:\s*"([^"\\]{1,255})"')


def _cid_hint(raw: Any, text: str | None) -> str | None:
    """The record's CID if one can be read (a safe blob id), else None."""
    if isinstance(raw, dict):
        cid = raw.get("cid")
    else:
        match = _CID_HINT.search(text) if text is not None else None
        cid = match.group(1) if match else None
    return cid if isinstance(cid, str) and is_safe_blob_id(cid) else None


def _load(text: str | bytes) -> Any:
    """The parsed value of a registry value, within the record bounds."""
    if isinstance(text, bytes):
        raw_bytes = text
        try:
            text = raw_bytes.decode("utf-8")
        except UnicodeDecodeError as exc:
            hint = _cid_hint(None, raw_bytes.decode("utf-8", "replace"))
            raise RecordInvalid(f"record is not valid UTF-8 (byte {exc.start})", cid=hint) from None
    try:
        return loads_bounded(
            text,
            max_bytes=C.MAX_RECORD_BYTES,
            max_depth=C.MAX_RECORD_DEPTH,
            max_int_digits=C.MAX_JSON_INT_DIGITS,
        )
    except JSONRefused as exc:
        raise RecordInvalid(f"record {exc}", cid=_cid_hint(None, text)) from None


def parse_record(text: str | bytes) -> SyncRecord:
    """Parse a registry value into a SyncRecord, within bounds on every field.

    The raw text is bounded before parsing (``MAX_RECORD_BYTES``, ``MAX_RECORD_DEPTH``,
    ``MAX_JSON_INT_DIGITS``, finite numbers only), then each field: counts are 64-bit,
    the timestamp formattable, strings short, and metadata/runtime bounded like a
    request's metadata. Hostile input therefore raises nothing but ``RecordInvalid``.

    Raises:
        RecordInvalid: with every structural problem found (not just the first) and the
            record's CID when it can be read.
    """
    raw = _load(text)
    if not isinstance(raw, dict):
        raise RecordInvalid("record must be a JSON object", cid=None)
    col = _Collector()
    cid = col.need(
        raw, "cid", lambda v: _is_short_string(v) and v != "", f"a non-empty {_SHORT[2:]}", ""
    )
    version = col.need(raw, "version", _is_count, _COUNT, "")
    timestamp = col.optional(
        raw,
        "timestamp",
        _is_timestamp,
        f"a number of seconds from 0 to {C.MAX_RECORD_TIMESTAMP:.0f}",
        "",
    )
    node_id = col.optional(raw, "node_id", _is_short_string, _SHORT, "")
    metadata = col.mapping(raw, "metadata", "")
    runtime = col.mapping(raw, "runtime", "")
    manifest = _parse_manifest(raw.get("manifest"), col)
    signature = _parse_signature(raw.get("signature"), col)
    if timestamp is None and version is not None and not _is_timestamp(version):
        col.reasons.append("timestamp: missing, and version is not a time in seconds")
    if col.reasons or manifest is None:
        raise RecordInvalid(col.reasons or ["manifest: invalid"], cid=_cid_hint(raw, None))
    return SyncRecord(
        cid=cid,
        version=version,
        timestamp=float(timestamp) if timestamp is not None else float(version),
        node_id=node_id or "",
        manifest=manifest,
        metadata=metadata,
        runtime=runtime,
        signature=signature,
    )
