"""ChunkedSnapshotReader: fetch the chunks a caller needs and write those files.

Given a parsed index (``index_parse.py``), a blob store and a runner-private staging
directory, it writes the files the caller's predicate selects, and every directory
entry, under ``dest/<index path>``:

- only the chunks of selected files are fetched, by ``BlobStore.get_range``; runs of
  chunks that lie back to back in one pack (a file's chunks, small files written one
  after another) are fetched with one range read of at most ``max_range_bytes``;
- every chunk is decoded within its announced length and checked against its digest
  before a byte of it is written (``ChunkCorrupt``); a pack the store no longer has is
  a ``PackMissing`` naming the pack and the file;
- memory stays flat: one range and one decoded chunk at a time;
- a file is written to a temp name and renamed when complete, with the index's mtime
  and its permission bits less setuid/setgid/sticky (the apply decides final modes);
  directory modes and mtimes are set last, deepest first, so writing into them does
  not undo their mtime and a read-only directory does not block its own files.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path

from ...errors import BlobNotFound, SnapshotInvalid, StoreError, StoreUnavailable
from ...stores.base import BlobStore
from .. import constants as C
from ..crypto.framing import SealedBlobInvalid, Sealer
from . import constants as K
from .ids import ChunkIds, chunk_ids_for
from .index import ChunkRef, IndexEntry, SnapshotIndex
from .index_parse import IndexInvalid
from .packs import ChunkDecodeError, decode_chunk

MAX_RANGE_BYTES = K.PACK_TARGET_BYTES


class PackMissing(SnapshotInvalid):
    """A pack the index references is not in the store (deleted by retention, say)."""

    def __init__(self, pack: str, path: str) -> None:
        super().__init__(
            f"pack {pack} holding chunks of {'/' + path!r} is missing from the blob store",
            stage=C.STAGE_R1FS_DOWNLOAD,
            hint="the snapshot was retired or its upload is incomplete; wait for a newer one",
        )
        self.pack = pack
        self.path = path


class ChunkCorrupt(SnapshotInvalid):
    """A chunk's stored bytes do not decode to the chunk its digest names."""

    def __init__(self, ref: ChunkRef, path: str, why: str) -> None:
        super().__init__(
            f"chunk at {ref.pack}+{ref.offset} of {'/' + path!r} is corrupt: {why}",
            stage=C.STAGE_R1FS_DOWNLOAD,
        )
        self.pack = ref.pack
        self.offset = ref.offset
        self.path = path


@dataclass(frozen=True, slots=True)
class ReadStats:
    """What an extract fetched and wrote."""

    files_written: int
    dirs_made: int
    chunks_fetched: int
    ranges_fetched: int
    bytes_fetched: int
    bytes_written: int


Wanted = Callable[[IndexEntry], bool]
_Item = tuple[IndexEntry, ChunkRef]


def everything(_entry: IndexEntry) -> bool:
    """The default predicate: every file needs content."""
    return True


class ChunkedSnapshotReader:
    """Writes selected files of a chunked snapshot from ``store`` into a staging dir."""

    def __init__(
        self,
        store: BlobStore,
        *,
        max_range_bytes: int = MAX_RANGE_BYTES,
        sealer: Sealer | None = None,
    ) -> None:
        self._store = store
        self._sealer = sealer
        self._max_range = max_range_bytes
        self._counts = {"chunks": 0, "ranges": 0, "fetched": 0}

    def extract(self, index: SnapshotIndex, dest: Path, wanted: Wanted = everything) -> ReadStats:
        """Write every directory and each file ``wanted`` selects under ``dest``.

        Args:
            index: a parsed, checked index.
            dest: a runner-private directory (created if missing).
            wanted: which files need content; the others are not fetched or written.

        Raises:
            PackMissing: a needed pack is not in the store.
            ChunkCorrupt: a chunk does not decode or does not match its digest; the
                file being written is removed.
            StoreUnavailable: the store could not be reached (retry later).
        """
        opener = self._opener(index)
        self._counts = {"chunks": 0, "ranges": 0, "fetched": 0}
        dest.mkdir(parents=True, exist_ok=True)
        dirs = [e for e in index.entries if not e.is_file]
        for entry in dirs:
            (dest / entry.path).mkdir(parents=True, exist_ok=True)
        files = [e for e in index.files() if wanted(e)]
        payloads = self._payloads((f, ref) for f in files for ref in f.chunks)
        written = 0
        for number, entry in enumerate(files):
            written += _write_file(dest / entry.path, entry, payloads, opener, number)
        _finish_dirs(dest, dirs)
        return ReadStats(
            files_written=len(files),
            dirs_made=len(dirs),
            chunks_fetched=self._counts["chunks"],
            ranges_fetched=self._counts["ranges"],
            bytes_fetched=self._counts["fetched"],
            bytes_written=written,
        )

    def extract_files(self, index: SnapshotIndex, targets: Mapping[str, Path]) -> ReadStats:
        """Write each file ``targets`` names (index path -> file path) there, nothing else.

        The targets' directories must exist; files are written in index order (what
        keeps range reads of adjacent chunks together). Raises as ``extract``.
        """
        opener = self._opener(index)
        self._counts = {"chunks": 0, "ranges": 0, "fetched": 0}
        files = [e for e in index.files() if e.path in targets]
        payloads = self._payloads((f, ref) for f in files for ref in f.chunks)
        written = 0
        for number, entry in enumerate(files):
            written += _write_file(targets[entry.path], entry, payloads, opener, number)
        return ReadStats(
            files_written=len(files),
            dirs_made=0,
            chunks_fetched=self._counts["chunks"],
            ranges_fetched=self._counts["ranges"],
            bytes_fetched=self._counts["fetched"],
            bytes_written=written,
        )

    def _opener(self, index: SnapshotIndex) -> _Opener:
        """How this index's chunks are opened and checked; unknown chunk hashes are refused."""
        ids = chunk_ids_for(index.chunk_hash, self._sealer.keys.chunk_id if self._sealer else None)
        if ids is None:
            raise IndexInvalid(f"snapshot index: unknown chunk_hash {index.chunk_hash!r}")
        # A keyed index is a sealed one (index_parse.py): so is each of its chunks.
        sealer = self._sealer if index.chunk_hash == K.CHUNK_HASH_HMAC_SHA256 else None
        return _Opener(ids, sealer)

    def _payloads(self, items: Iterable[_Item]) -> Iterator[tuple[_Item, memoryview]]:
        """Each item's stored payload, in order, fetched in runs of adjacent ranges."""
        run: list[_Item] = []
        for item in items:
            ref = item[1]
            if run and not self._extends(run, ref):
                yield from self._fetch(run)
                run = []
            run.append(item)
        if run:
            yield from self._fetch(run)

    def _extends(self, run: list[_Item], ref: ChunkRef) -> bool:
        first, last = run[0][1], run[-1][1]
        return (
            ref.pack == first.pack
            and ref.offset == last.offset + last.length
            and ref.offset + ref.length - first.offset <= self._max_range
        )

    def _fetch(self, run: list[_Item]) -> Iterator[tuple[_Item, memoryview]]:
        entry, first = run[0]
        start = first.offset
        length = run[-1][1].offset + run[-1][1].length - start
        try:
            data = memoryview(self._store.get_range(first.pack, start, length))
        except BlobNotFound as exc:
            raise PackMissing(first.pack, entry.path) from exc
        except StoreUnavailable:
            raise
        except StoreError as exc:  # a range past the end: the pack is not what the index says
            raise ChunkCorrupt(first, entry.path, str(exc)) from exc
        self._counts["ranges"] += 1
        self._counts["chunks"] += len(run)
        self._counts["fetched"] += length
        for item in run:
            ref = item[1]
            yield item, data[ref.offset - start : ref.offset - start + ref.length]


def _write_file(
    target: Path,
    entry: IndexEntry,
    payloads: Iterator[tuple[_Item, memoryview]],
    opener: _Opener,
    number: int,
) -> int:
    """Write one file from its chunks (temp name, then rename); return its size."""
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = target.parent / f".car-part-{number}"
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_NOFOLLOW, 0o600)
    try:
        with os.fdopen(fd, "wb") as out:
            for _ in entry.chunks:
                (_, ref), payload = next(payloads)
                out.write(opener.chunk(entry, ref, payload))
            os.fchmod(out.fileno(), entry.mode & 0o777)
        os.utime(tmp, ns=(entry.mtime_ns, entry.mtime_ns))
        os.replace(tmp, target)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise
    return entry.size


@dataclass(frozen=True, slots=True)
class _Opener:
    """Turns a stored payload into its verified raw chunk."""

    ids: ChunkIds
    sealer: Sealer | None  # set when the snapshot is encrypted

    def chunk(self, entry: IndexEntry, ref: ChunkRef, payload: memoryview) -> bytes:
        try:
            if self.sealer is not None:
                payload = memoryview(self.sealer.open_bytes(payload, "sealed payload"))
            raw = decode_chunk(payload, ref.raw_length, ref.compressed)
        except (ChunkDecodeError, SealedBlobInvalid) as exc:
            raise ChunkCorrupt(ref, entry.path, str(exc)) from None
        digest = self.ids(raw)
        if digest != ref.digest:
            raise ChunkCorrupt(ref, entry.path, f"digest {digest} != {ref.digest}")
        return raw


def _finish_dirs(dest: Path, dirs: list[IndexEntry]) -> None:
    """Directory modes and mtimes, deepest first (after every file is in place)."""
    for entry in sorted(dirs, key=lambda e: e.path.count("/"), reverse=True):
        path = dest / entry.path
        os.chmod(path, entry.mode & 0o777)
        os.utime(path, ns=(entry.mtime_ns, entry.mtime_ns))
