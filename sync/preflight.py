"""Consumer preflight: everything that can refuse a snapshot while the app still runs.

The consumer orders its work so that a bad snapshot never costs downtime (README, "Consumer"):
record and manifest checks, download, digest and per-member checks all happen before
the confirmed stop. This module holds the pure checks:

- ``validate_record`` collects *every* semantic problem of a parsed record (schema
  version, format, encryption, path mapping, size limits, trusted node) in one
  ``SnapshotInvalid``;
- ``verify_archive`` checks the downloaded file's size and SHA-256 against the manifest
  (or the CID, for records without ``archive_sha256``, docs/FORMAT.md
  "Registry record");
- ``MemberValidator`` checks one tar member at a time with running totals, so reading
  stops as soon as a limit is crossed (a tar bomb is refused after its first oversized
  header, not after decompressing it). Every header field that could reach a syscall
  during the commit (mtime, mode, size, uid/gid) is range-checked here, because PAX
  records and base-256 numbers let an archive carry ``nan``, ``1e300`` or a negative
  size that would otherwise only fail halfway through a commit (``os.utime`` raising
  ``ValueError``/``OverflowError``).

Free space is checked by ``sync/staging.py``, which knows the target volumes.
"""

from __future__ import annotations

import logging
import math
import posixpath
import sys
import tarfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from ..errors import RequestRejected, SnapshotInvalid
from ..stores.cid import sha256_file, sha256_from_cid
from . import constants as C
from .config import SyncConfig
from .journal import KIND_DIR, KIND_FILE, KIND_PARENT, PlannedOp
from .paths import PathResolver, ResolvedPath
from .records import SyncRecord

# Names below a volume root that the apply transaction uses for its own per-apply dir.
RESERVED_PREFIX = ".car-sync-"

# Member mtimes a volume can hold: from the 32-bit time_t floor (1901, what ext4 keeps
# with small inodes) to 2**34 s (year 2514; ext4 clamps past 2446). Outside that range
# the archive is broken or hostile: os.utime refuses nan/inf and overflows near 2**63.
MIN_MEMBER_MTIME = -(2**31)
MAX_MEMBER_MTIME = 2**34
MAX_MEMBER_MODE = 0o7777777  # the ustar mode field (7 octal digits); file-type bits fit
MAX_MEMBER_ID = 2**32 - 2  # uid_t/gid_t; 2**32 - 1 is (uid_t)-1, "no id"


class NoSpace(SnapshotInvalid):
    """The snapshot would not fit a target volume's free space (failure kind ``space``)."""


class DigestMismatch(SnapshotInvalid):
    """The downloaded archive's size or SHA-256 differs from the record (kind ``digest``)."""


@dataclass(frozen=True, slots=True)
class ConsumerLimits:
    """The consumer's local policy from the SYNC block (README, "For operators")."""

    max_archive_bytes: int = C.DEFAULT_MAX_ARCHIVE_BYTES
    max_unpacked_bytes: int = C.UNPACKED_TO_ARCHIVE_RATIO * C.DEFAULT_MAX_ARCHIVE_BYTES
    max_members: int = C.DEFAULT_MAX_MEMBERS
    trusted_node_ids: tuple[str, ...] | None = None

    @classmethod
    def from_config(cls, cfg: SyncConfig) -> ConsumerLimits:
        trusted = cfg.trusted_node_ids
        return cls(
            max_archive_bytes=cfg.max_archive_bytes,
            max_unpacked_bytes=cfg.effective_max_unpacked_bytes,
            max_members=cfg.max_members,
            trusted_node_ids=tuple(trusted) if trusted is not None else None,
        )


def _rejected_reason(exc: RequestRejected) -> str:
    return exc.message


def validate_record(
    record: SyncRecord,
    limits: ConsumerLimits,
    resolver: PathResolver,
    *,
    can_decrypt: bool = False,
) -> None:
    """Check a parsed record against this consumer's policy, collecting every reason.

    ``can_decrypt``: this consumer has ``SYNC.ENCRYPTION_KEY_FILE`` (an encrypted
    snapshot is refused here, before anything is downloaded or stopped, without it).

    Raises:
        SnapshotInvalid: (stage ``validation``) with one reason per problem.
    """
    m = record.manifest
    reasons: list[str] = []
    if m.schema_version > C.MANIFEST_SCHEMA_VERSION:
        reasons.append(
            f"manifest.schema_version: {m.schema_version} is newer than the supported "
            f"{C.MANIFEST_SCHEMA_VERSION}"
        )
    if m.archive_format not in C.SNAPSHOT_FORMATS:
        reasons.append(f"manifest.archive_format: unknown format {m.archive_format!r}")
    if m.encryption not in C.KNOWN_ENCRYPTIONS:
        reasons.append(f"manifest.encryption: unknown encryption {m.encryption!r}")
    elif m.encryption == C.ENCRYPTION_SEALED and not can_decrypt:
        reasons.append(
            f"manifest.encryption: the snapshot is encrypted ({m.encryption}) and this "
            "consumer has no SYNC.ENCRYPTION_KEY_FILE"
        )
    elif m.encryption == C.ENCRYPTION_SEALED and m.archive_format == C.ARCHIVE_FORMAT_GZ:
        reasons.append("manifest.encryption: a tar.gz snapshot is never encrypted")
    for path in m.archive_paths:
        try:
            resolver.resolve(path)
        except RequestRejected as exc:
            reasons.append(f"manifest.archive_paths: {_rejected_reason(exc)}")
    if m.archive_size_bytes > limits.max_archive_bytes:
        reasons.append(
            f"manifest.archive_size_bytes: {m.archive_size_bytes} exceeds MAX_ARCHIVE_BYTES "
            f"{limits.max_archive_bytes}"
        )
    if m.unpacked_bytes is not None and m.unpacked_bytes > limits.max_unpacked_bytes:
        reasons.append(
            f"manifest.unpacked_bytes: {m.unpacked_bytes} exceeds MAX_UNPACKED_BYTES "
            f"{limits.max_unpacked_bytes}"
        )
    if m.members is not None and m.members > limits.max_members:
        reasons.append(f"manifest.members: {m.members} exceeds MAX_MEMBERS {limits.max_members}")
    if limits.trusted_node_ids is not None and record.node_id not in limits.trusted_node_ids:
        reasons.append(f"node_id: {record.node_id!r} is not in TRUSTED_NODE_IDS")
    if m.archive_sha256 is None and sha256_from_cid(record.cid) is None:
        reasons.append("manifest.archive_sha256: missing, and the cid is not a sha2-256 CIDv1")
    if reasons:
        raise SnapshotInvalid(reasons, stage=C.STAGE_VALIDATION)


def expected_sha256(record: SyncRecord) -> str:
    """The digest the archive must have: the manifest's, else the one inside the CID.

    Raises:
        SnapshotInvalid: neither is available (``validate_record`` reports this first).
    """
    digest = record.manifest.archive_sha256 or sha256_from_cid(record.cid)
    if digest is None:
        raise SnapshotInvalid("no digest to verify the archive against")
    return digest


def verify_archive(path: Path, record: SyncRecord, *, verified_by_store: bool = False) -> None:
    """Check the downloaded archive's size and SHA-256 against the record.

    Args:
        path: the local copy.
        record: the record it was downloaded for.
        verified_by_store: ``path`` came from ``BlobStore.get(record.cid, ...)``, which
            hashed it against the digest inside a sha2-256 CID (stores/base.py). The
            file's digest is then known without reading it again; only a foreign id
            (no digest inside) is re-hashed here.

    Raises:
        DigestMismatch: (stage ``r1fs_download``) size or digest differs.
    """
    size = path.stat().st_size
    m = record.manifest
    if size != m.archive_size_bytes:
        raise DigestMismatch(
            f"archive is {size} bytes, manifest says {m.archive_size_bytes}",
            stage=C.STAGE_R1FS_DOWNLOAD,
        )
    want = expected_sha256(record)
    cid_digest = sha256_from_cid(record.cid)
    got = cid_digest if verified_by_store and cid_digest is not None else sha256_file(path)
    if got != want:
        raise DigestMismatch(
            f"archive sha256 {got} does not match {want}", stage=C.STAGE_R1FS_DOWNLOAD
        )
    if cid_digest is not None and cid_digest != got:
        raise DigestMismatch(
            "archive does not match its cid (manifest digest and cid disagree)",
            stage=C.STAGE_R1FS_DOWNLOAD,
        )


def _invalid(message: str) -> SnapshotInvalid:
    return SnapshotInvalid(message, stage=C.STAGE_EXTRACT)


def _norm_scope(path: str) -> str:
    return "/" + posixpath.normpath(path).lstrip("/")


def _within(outer: str, inner: str) -> bool:
    return outer == "/" or inner == outer or inner.startswith(outer + "/")


class MemberValidator:
    """Validates tar members one by one and turns them into planned operations.

    Keeps running totals (members, unpacked bytes) and the set of directories already
    planned, so implicit parent directories are created once (memory grows with the
    number of *directories*, not members).
    """

    def __init__(
        self,
        archive_paths: tuple[str, ...],
        resolver: PathResolver,
        limits: ConsumerLimits,
        log: logging.Logger,
    ) -> None:
        self._scopes = tuple(_norm_scope(p) for p in archive_paths)
        self._resolver = resolver
        self._limits = limits
        self._log = log
        self._planned_dirs: set[str] = set()
        self.members = 0
        self.unpacked_bytes = 0
        self.skipped = 0
        self._next_index = 0

    def check(self, ordinal: int, member: tarfile.TarInfo) -> list[PlannedOp]:
        """Validate ``member`` and return the operations it needs (empty if skipped).

        Raises:
            SnapshotInvalid: (stage ``extract``) bad name, out of scope, unmapped path,
                or a limit crossed.
        """
        self.members += 1
        if self.members > self._limits.max_members:
            raise _invalid(
                f"archive has more than MAX_MEMBERS ({self._limits.max_members}) members"
            )
        name = member.name
        if ".." in name.replace("\\", "/").split("/"):
            raise _invalid(f"member {name[:200]!r} contains '..'")
        _check_fields(member)
        if not (member.isdir() or member.isreg()):
            self.skipped += 1
            self._log.info(
                "snapshot member %r skipped: %s (links and special files are not applied)",
                name[:200],
                _type_name(member),
            )
            return []
        container_path = _norm_scope(name)
        if not any(_within(scope, container_path) for scope in self._scopes):
            raise _invalid(f"member {container_path!r} is outside the manifest's archive_paths")
        resolved = self._resolve(container_path)
        if member.isreg():
            self.unpacked_bytes += member.size
            if self.unpacked_bytes > self._limits.max_unpacked_bytes:
                raise _invalid(
                    f"archive expands past MAX_UNPACKED_BYTES ({self._limits.max_unpacked_bytes})"
                )
            if not resolved.relative:
                raise _invalid(f"member {container_path!r} is a file at a volume root")
        ops = list(self._parents(resolved, ordinal))
        kind = KIND_DIR if member.isdir() else KIND_FILE
        if kind == KIND_DIR:
            self._planned_dirs.add(container_path)
        ops.append(
            self._op(
                kind,
                ordinal,
                resolved,
                member.size if kind == KIND_FILE else 0,
                member.mode,
                float(member.mtime),
            )
        )
        return ops

    def _resolve(self, container_path: str) -> ResolvedPath:
        try:
            resolved = self._resolver.resolve(container_path)
        except RequestRejected as exc:
            raise _invalid(f"member {container_path!r}: {exc.message}") from None
        first = resolved.relative.split("/", 1)[0]
        if first.startswith(RESERVED_PREFIX):
            raise _invalid(f"member {container_path!r} uses a name reserved for the runner")
        return resolved

    def _parents(self, resolved: ResolvedPath, ordinal: int) -> Iterator[PlannedOp]:
        """Implicit ops for ancestors below the volume root not planned yet (top-down)."""
        rel = resolved.relative
        parts = rel.split("/")[:-1] if rel else []
        root_cp = resolved.container_path[: len(resolved.container_path) - len(rel)].rstrip("/")
        current = root_cp
        for part in parts:
            current = f"{current}/{part}"
            if current in self._planned_dirs:
                continue
            self._planned_dirs.add(current)
            parent = self._resolve(current)
            yield self._op(KIND_PARENT, ordinal, parent, 0, 0o755, 0.0)

    def _op(
        self, kind: str, ordinal: int, resolved: ResolvedPath, size: int, mode: int, mtime: float
    ) -> PlannedOp:
        op = PlannedOp(
            index=self._next_index,
            kind=kind,
            ordinal=ordinal,
            container_path=resolved.container_path,
            host_path=str(resolved.host_path),
            volume=str(resolved.binding.host_root),
            size=size,
            mode=mode,
            mtime=mtime,
        )
        self._next_index += 1
        return op


def _int_in(value: object, low: int, high: int) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and low <= value <= high


def _check_fields(member: tarfile.TarInfo) -> None:
    """Refuse header numbers no volume can take (mode and mtime are applied).

    Raises:
        SnapshotInvalid: (stage ``extract``) naming the field, its value and the member.
    """
    where = f"member {_norm_scope(member.name)[:200]!r}"
    mtime = member.mtime
    if not (
        isinstance(mtime, int | float)
        and math.isfinite(mtime)
        and MIN_MEMBER_MTIME <= mtime <= MAX_MEMBER_MTIME
    ):
        raise _invalid(
            f"{where}: mtime {_shown(mtime)} is not a time a volume can hold "
            f"({MIN_MEMBER_MTIME}..{MAX_MEMBER_MTIME})"
        )
    if not _int_in(member.mode, 0, MAX_MEMBER_MODE):
        raise _invalid(f"{where}: mode {_shown(member.mode)} is not a valid file mode")
    if not _int_in(member.size, 0, sys.maxsize):
        raise _invalid(f"{where}: size {_shown(member.size)} is not a valid size")
    for field in ("uid", "gid"):
        value = getattr(member, field)
        if not _int_in(value, 0, MAX_MEMBER_ID):
            raise _invalid(f"{where}: {field} {_shown(value)} is out of range (0..{MAX_MEMBER_ID})")


def _shown(value: object) -> str:
    """A header number for an error message, shortened (PAX allows thousands of digits)."""
    text = repr(value)
    return text if len(text) <= 24 else f"{text[:21]}..."


def _type_name(member: tarfile.TarInfo) -> str:
    if member.issym():
        return "symlink"
    if member.islnk():
        return "hardlink"
    if member.isfifo():
        return "fifo"
    if member.ischr() or member.isblk():
        return "device"
    return "special member"
