"""Strict parsing of an index blob: the only way from untrusted bytes to a SnapshotIndex.

An index comes from the blob store, so a consumer treats it like a tar archive from a
stranger: every size is bounded before memory is spent on it (compressed bytes, the
frame's announced size, JSON text, entry count, total file bytes), every number is an
integer in its range (no floats, no NaN, no booleans for numbers), every path follows
the archive's path rules, every chunk is accounted for (its lengths add up to the file
size, its pack is listed), and unknown fields, duplicate keys or paths, and entries
below a file are refused. The first problem is the error (``IndexInvalid``), naming the
entry by position and path.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from typing import Any, NoReturn

import zstandard

from ...errors import SnapshotInvalid
from ...stores.cid import is_cid
from .. import constants as C
from ..crypto.framing import MAGIC as SEALED_MAGIC
from ..crypto.framing import SealedBlobInvalid, Sealer, sealed_size
from . import constants as K
from .ids import CHUNK_HASH_NAMES
from .index import ChunkRef, IndexEntry, SnapshotIndex

INT64_MIN, INT64_MAX = -(2**63), 2**63 - 1
MAX_FILE_BYTES = 2**44  # 16 TiB: bigger than any volume this runner makes
MAX_PACK_OFFSET = 2**40
MAX_PATH_CHARS = 4096
MAX_NAME_BYTES = 255
MAX_ZSTD_WINDOW = 1 << 27
_HEX64 = re.compile(r"[0-9a-f]{64}")
_TOP_KEYS = frozenset({"format", "version", "chunk_hash", "roots", "packs", "entries"})
_DIR_KEYS = frozenset({"path", "type", "mode", "mtime_ns"})
_FILE_KEYS = _DIR_KEYS | {"size", "chunks"}
_KEYS = {K.ENTRY_DIR: _DIR_KEYS, K.ENTRY_FILE: _FILE_KEYS}


class IndexInvalid(SnapshotInvalid):
    """An index blob is malformed, too big, or not a chunked index this reader knows.

    ``wrong_key``: it is sealed under another sync-set key (nothing else is wrong with it).
    """

    def __init__(self, reason: str, *, wrong_key: bool = False) -> None:
        super().__init__(reason, stage=C.STAGE_EXTRACT)
        self.wrong_key = wrong_key


@dataclass(frozen=True, slots=True)
class IndexLimits:
    """Bounds on an index, set by the reader's policy (its SYNC limits)."""

    max_index_bytes: int = 64 * K.MIB  # the compressed blob
    max_json_bytes: int = 256 * K.MIB  # its decompressed text
    max_entries: int = C.DEFAULT_MAX_MEMBERS
    max_total_bytes: int = C.UNPACKED_TO_ARCHIVE_RATIO * C.DEFAULT_MAX_ARCHIVE_BYTES
    max_roots: int = C.MAX_ARCHIVE_PATHS


def _fail(reason: str) -> NoReturn:
    raise IndexInvalid(f"snapshot index: {reason}")


def parse_index(
    blob: bytes, limits: IndexLimits | None = None, sealer: Sealer | None = None
) -> SnapshotIndex:
    """Decode and check an index blob, opening it first if it is sealed.

    An index is sealed exactly when its chunk ids are keyed (``hmac-sha256``): its chunks
    are sealed too, and a plaintext index naming keyed ids (or the reverse) is refused.

    Raises:
        IndexInvalid: (stage ``extract``) the first problem found; ``wrong_key`` when
            another sync-set key sealed it.
    """
    limits = limits or IndexLimits()
    sealed = blob[: len(SEALED_MAGIC)] == SEALED_MAGIC
    if sealed:
        blob = _open(blob, limits, sealer)
    doc = _load_json(_decompress(blob, limits))
    if not isinstance(doc, dict):
        _fail("not a JSON object")
    _check_header(doc)
    if (doc["chunk_hash"] == K.CHUNK_HASH_HMAC_SHA256) != sealed:
        _fail(
            f"chunk_hash {doc['chunk_hash']!r} in an index that is "
            f"{'' if sealed else 'not '}encrypted (keyed ids go with encryption only)"
        )
    roots = _roots(doc["roots"], limits)
    packs = _packs(doc["packs"])
    entries = _EntryChecker(roots, packs, limits, sealed=sealed).run(doc["entries"])
    return SnapshotIndex(roots=roots, entries=entries, chunk_hash=doc["chunk_hash"])


# --- bytes -> JSON -------------------------------------------------------------------


def _same_size(size: int) -> int:
    return size


def _open(blob: bytes, limits: IndexLimits, sealer: Sealer | None) -> bytes:
    if sealer is None:
        _fail("is encrypted and this runner has no SYNC.ENCRYPTION_KEY_FILE")
    if len(blob) > limits.max_index_bytes:
        _fail(f"blob is {len(blob)} bytes, more than the {limits.max_index_bytes} allowed")
    try:
        return sealer.open_bytes(blob, "snapshot index")
    except SealedBlobInvalid as exc:
        raise IndexInvalid(str(exc), wrong_key=exc.wrong_key) from None


def _decompress(blob: bytes, limits: IndexLimits) -> bytes:
    if len(blob) > limits.max_index_bytes:
        _fail(f"blob is {len(blob)} bytes, more than the {limits.max_index_bytes} allowed")
    try:
        announced = zstandard.frame_content_size(blob)
    except zstandard.ZstdError:
        _fail("not a zstd frame")
    if announced > limits.max_json_bytes:
        _fail(f"expands to {announced} bytes, more than the {limits.max_json_bytes} allowed")
    try:
        dctx = zstandard.ZstdDecompressor(max_window_size=MAX_ZSTD_WINDOW)
        # max_output_size bounds a frame that does not announce its size.
        return dctx.decompress(blob, max_output_size=limits.max_json_bytes, allow_extra_data=False)
    except zstandard.ZstdError as exc:
        _fail(f"cannot be decompressed within {limits.max_json_bytes} bytes ({exc})")


def _reject_float(text: str) -> NoReturn:
    _fail(f"number {text[:40]} is not an integer (the index has no fractional fields)")


def _reject_constant(text: str) -> NoReturn:
    _fail(f"{text} is not a valid number")


def _no_duplicate_keys(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    out = dict(pairs)
    if len(out) != len(pairs):
        seen: set[str] = set()
        for key, _ in pairs:
            if key in seen:
                _fail(f"duplicate key {key[:60]!r}")
            seen.add(key)
    return out


def _load_json(raw: bytes) -> Any:
    try:
        text = raw.decode("utf-8")
        return json.loads(
            text,
            parse_float=_reject_float,
            parse_constant=_reject_constant,
            object_pairs_hook=_no_duplicate_keys,
        )
    except UnicodeDecodeError:
        _fail("is not UTF-8")
    except RecursionError:
        _fail("is nested too deeply")
    except ValueError as exc:  # JSONDecodeError, or an integer with too many digits
        _fail(f"is not valid JSON ({str(exc)[:120]})")


# --- fields ----------------------------------------------------------------------------


def _check_header(doc: dict[str, Any]) -> None:
    unknown = sorted(set(doc) - _TOP_KEYS)
    if unknown:
        _fail(f"unknown field {unknown[0][:60]!r}")
    missing = sorted(_TOP_KEYS - set(doc))
    if missing:
        _fail(f"missing field {missing[0]!r}")
    if doc["format"] != K.INDEX_FORMAT:
        _fail(f"format {str(doc['format'])[:60]!r} is not {K.INDEX_FORMAT!r}")
    if not _is_int(doc["version"]) or doc["version"] != K.INDEX_VERSION:
        _fail(f"version {str(doc['version'])[:20]} is not supported (this reader: 1)")
    if doc["chunk_hash"] not in CHUNK_HASH_NAMES:
        _fail(f"unknown chunk_hash {str(doc['chunk_hash'])[:60]!r}")


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _int_in(value: Any, low: int, high: int, what: str) -> int:
    if not _is_int(value):
        _fail(f"{what} must be an integer, got {type(value).__name__}")
    if not low <= value <= high:
        _fail(f"{what} {str(value)[:30]} is outside {low}..{high}")
    return int(value)


def path_problem(path: Any) -> str | None:
    """Why ``path`` breaks the archive's path rules, or None (see docs/FORMAT.md)."""
    if not isinstance(path, str) or not path:
        return "must be a non-empty string"
    if len(path) > MAX_PATH_CHARS:
        return f"is longer than {MAX_PATH_CHARS} characters"
    if "\x00" in path:
        return "contains a NUL character"
    if path.startswith("/") or path.endswith("/"):
        return "must be relative, without a leading or trailing '/'"
    if ".." in path.replace("\\", "/").split("/"):
        return "must not contain '..'"
    try:
        names = [name.encode("utf-8") for name in path.split("/")]
    except UnicodeEncodeError:
        return "is not valid UTF-8"
    if any(name in (b"", b".") for name in names):
        return "has an empty or '.' component"
    if any(len(name) > MAX_NAME_BYTES for name in names):
        return f"has a component longer than {MAX_NAME_BYTES} bytes"
    return None


def _roots(value: Any, limits: IndexLimits) -> tuple[str, ...]:
    if not isinstance(value, list) or not 1 <= len(value) <= limits.max_roots:
        _fail(f"roots must be a list of 1..{limits.max_roots} paths")
    for root in value:
        problem = path_problem(root)
        if problem is not None:
            _fail(f"root {str(root)[:200]!r} {problem}")
    if len(set(value)) != len(value):
        _fail("roots has duplicates")
    return tuple(value)


def _packs(value: Any) -> tuple[str, ...]:
    if not isinstance(value, list):
        _fail("packs must be a list of CIDs")
    for cid in value:
        if not isinstance(cid, str) or not is_cid(cid):
            _fail(f"pack {str(cid)[:80]!r} is not a sha2-256 CID")
    if len(set(value)) != len(value):
        _fail("packs has duplicates")
    return tuple(value)


class _EntryChecker:
    """Checks entries one by one with running totals (count, bytes, paths seen)."""

    def __init__(
        self,
        roots: tuple[str, ...],
        packs: tuple[str, ...],
        limits: IndexLimits,
        *,
        sealed: bool = False,
    ):
        # Sealed: each stored payload is the sealed form of the (compressed or raw) chunk.
        self._stored_size = sealed_size if sealed else _same_size
        self._roots = roots
        self._packs = packs
        self._limits = limits
        self._seen: set[str] = set()
        self._files: set[str] = set()
        self._total = 0

    def run(self, value: Any) -> tuple[IndexEntry, ...]:
        if not isinstance(value, list):
            _fail("entries must be a list")
        if len(value) > self._limits.max_entries:
            _fail(f"has {len(value)} entries, more than the {self._limits.max_entries} allowed")
        entries = tuple(self._entry(n, raw) for n, raw in enumerate(value))
        self._check_nothing_below_files(entries)
        return entries

    def _entry(self, n: int, raw: Any) -> IndexEntry:
        if not isinstance(raw, dict):
            _fail(f"entry {n} is not an object")
        where = f"entry {n} ({str(raw.get('path'))[:200]!r})"
        problem = path_problem(raw.get("path"))
        if problem is not None:
            _fail(f"{where}: path {problem}")
        path: str = raw["path"]
        if not any(path == r or path.startswith(r + "/") for r in self._roots):
            _fail(f"{where}: path is outside the index's roots")
        if path in self._seen:
            _fail(f"{where}: path appears twice")
        self._seen.add(path)
        kind: Any = raw.get("type")
        keys = _KEYS.get(kind) if isinstance(kind, str) else None
        if keys is None:
            _fail(f"{where}: type {str(kind)[:30]!r} is not 'file' or 'dir'")
        if set(raw) != keys:
            odd = sorted(set(raw) ^ keys)[0]
            _fail(f"{where}: field {odd[:60]!r} is {'unknown' if odd in raw else 'missing'}")
        mode = _int_in(raw["mode"], 0, 0o7777, f"{where}: mode")
        mtime_ns = _int_in(raw["mtime_ns"], INT64_MIN, INT64_MAX, f"{where}: mtime_ns")
        if kind == K.ENTRY_DIR:
            return IndexEntry(path, kind, mode, mtime_ns)
        self._files.add(path)
        size = _int_in(raw["size"], 0, MAX_FILE_BYTES, f"{where}: size")
        self._total += size
        if self._total > self._limits.max_total_bytes:
            _fail(f"files add up to more than the {self._limits.max_total_bytes} bytes allowed")
        chunks = self._chunks(raw["chunks"], size, where)
        return IndexEntry(path, kind, mode, mtime_ns, size, chunks)

    def _chunks(self, value: Any, size: int, where: str) -> tuple[ChunkRef, ...]:
        if not isinstance(value, list):
            _fail(f"{where}: chunks must be a list")
        if len(value) > size:  # every chunk holds at least one byte
            _fail(f"{where}: {len(value)} chunks for {size} bytes")
        refs = tuple(self._chunk(raw, f"{where}: chunk {i}") for i, raw in enumerate(value))
        if sum(r.raw_length for r in refs) != size:
            _fail(f"{where}: chunk lengths do not add up to the file size {size}")
        return refs

    def _chunk(self, raw: Any, where: str) -> ChunkRef:
        if not isinstance(raw, list) or len(raw) != 6:
            _fail(f"{where} must be [pack, offset, length, raw_length, digest, compressed]")
        pack_no, offset, length, raw_length, digest, compressed = raw
        pack = self._packs[_int_in(pack_no, 0, len(self._packs) - 1, f"{where} pack")]
        offset = _int_in(offset, len(K.PACK_MAGIC), MAX_PACK_OFFSET, f"{where} offset")
        raw_length = _int_in(raw_length, 1, K.CHUNK_MAX_BYTES, f"{where} raw_length")
        length = _int_in(length, 1, self._stored_size(K.CHUNK_MAX_BYTES), f"{where} length")
        if not isinstance(digest, str) or not _HEX64.fullmatch(digest):
            _fail(f"{where} digest must be 64 lowercase hex digits")
        if not isinstance(compressed, bool):
            _fail(f"{where} compressed must be true or false")
        if not compressed and length != self._stored_size(raw_length):
            _fail(f"{where} is stored raw but its length {length} != raw_length {raw_length}")
        return ChunkRef(pack, offset, length, raw_length, digest, compressed)

    def _check_nothing_below_files(self, entries: tuple[IndexEntry, ...]) -> None:
        for entry in entries:
            parts = entry.path.split("/")
            for depth in range(1, len(parts)):
                parent = "/".join(parts[:depth])
                if parent in self._files:
                    _fail(f"entry {entry.path[:200]!r} lies below the file {parent[:200]!r}")
