"""ChunkedSnapshotWriter: capture a tree as a chunked snapshot into a staging directory.

Per file: if its size, mtime_ns, ctime_ns and inode equal the provider's facts about
the previous index, its chunk list is reused without reading it; otherwise it is read,
cut into chunks (``chunker.py``), and each chunk is hashed and, unless its digest is
already stored (``known``) or was met earlier in this capture, compressed and appended
to a new pack (``packs.py``). The work runs on a pool of two threads (the chunker's cut,
sha256, zstd and file reads all release the GIL): a file of up to 16 MiB is read, cut,
hashed and compressed by one pool task; a bigger one is cut by this thread as it streams
in and its chunks are hashed and compressed on the pool. Packs are written and
hashed on the pool once complete. A bounded window of bytes in flight keeps memory flat
in file size, and results are taken in order so each file's chunks stay adjacent in its
pack.

With a ``sealer`` (``SYNC.ENCRYPTION_KEY_FILE``) chunk ids are keyed (``ids.py``), each
payload is sealed on its own after compression (so a ranged read of one chunk can be
opened alone), and the index blob is sealed: packs and index are named by the CID of
their stored, sealed bytes (docs/FORMAT.md, "Encryption at rest").

The output is a ``StagedSnapshot`` (``staged.py``); nothing touches the store here.
"""

from __future__ import annotations

import collections
import contextlib
import functools
import os
import stat
import threading
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import BinaryIO

import zstandard

from ...errors import SyncError
from ..archive_sink import archive_build_error
from ..crypto.framing import Sealer
from ..paths import ResolvedPath
from . import constants as K
from .chunker import Chunker
from .facts import FileFacts, SourceFacts
from .ids import SHA256_IDS, ChunkData, ChunkIds, HmacChunkIds
from .index import ChunkRef, IndexEntry, SnapshotIndex, blob_cid, encode_index, known_chunks
from .packs import PackSlot, PackWriter, encode_chunk
from .staged import PreviousSnapshot, StagedSnapshot, WriteStats
from .walk import WalkItem, walk_sources, walked_sources

# Raw chunk bytes handed to the pool and not yet written to a pack.
IN_FLIGHT_BYTES = 24 * K.MIB


@dataclass(slots=True)
class _Pending:
    """A new chunk in a pack that is still open (its CID is not known yet)."""

    slot: PackSlot
    offset: int
    length: int
    raw_length: int
    digest: str
    compressed: bool

    def resolve(self) -> ChunkRef:
        assert self.slot.cid is not None, "pack not finished"
        return ChunkRef(
            self.slot.cid, self.offset, self.length, self.raw_length, self.digest, self.compressed
        )


@dataclass(slots=True)
class _Encoded:
    digest: str
    raw_length: int
    payload: ChunkData | None  # None: the digest was already stored, nothing to write
    compressed: bool


@dataclass(slots=True)
class _EntryBuilder:
    path: str
    kind: str
    mode: int
    mtime_ns: int
    size: int = 0
    refs: list[ChunkRef | _Pending] = field(default_factory=list)

    def build(self) -> IndexEntry:
        chunks = tuple(r.resolve() if isinstance(r, _Pending) else r for r in self.refs)
        return IndexEntry(self.path, self.kind, self.mode, self.mtime_ns, self.size, chunks)


class ChunkedSnapshotWriter:
    """Writes chunked snapshots into ``staging_dir`` (``packs/`` and ``index/``).

    One ``write`` at a time per instance. Files in ``staging_dir`` that a capture did
    not make are left alone; the caller empties it between captures.
    """

    def __init__(
        self,
        staging_dir: Path,
        *,
        chunk_ids: ChunkIds = SHA256_IDS,
        threads: int = 2,
        pack_target_bytes: int = K.PACK_TARGET_BYTES,
        chunker: Chunker | None = None,
        level: int = K.ZSTD_LEVEL,
        sealer: Sealer | None = None,
    ) -> None:
        self.staging_dir = staging_dir
        self.level = level  # zstd level of each chunk (readers need not know it)
        self._sealer = sealer
        self._ids = HmacChunkIds(sealer.keys.chunk_id) if sealer is not None else chunk_ids
        self._threads = threads
        self._pack_target = pack_target_bytes
        self._chunker = chunker or Chunker()

    def write(
        self,
        sources: Sequence[ResolvedPath],
        previous: PreviousSnapshot | None = None,
        known: Mapping[str, ChunkRef] | None = None,
        *,
        on_read_done: Callable[[], None] | None = None,
    ) -> StagedSnapshot:
        """Capture ``sources`` (resolved for reading) as a staged snapshot.

        Args:
            sources: the request's paths, as ``build_archive`` takes them.
            previous: the last published snapshot; None (or one whose chunk ids are
                computed another way) makes a full capture.
            known: chunks already in the store from other kept indexes with the same
                ``chunk_hash`` (the previous index's chunks are added automatically).
            on_read_done: called once every file has been read and encoded, before the
                packs are hashed and the index is written (none of which reads the
                sources): a provider restarts its app there. Packs are then hashed only
                after it (``PackWriter``'s ``defer_hashing``).

        Raises:
            SyncError: stage ``archive_build``; a link or special file, a path that
                vanished, or a file that changed while it was read. Nothing new is
                left in staging.
        """
        started = time.monotonic()
        stored = dict(known or {})
        if previous is not None and previous.index.chunk_hash != self._ids.name:
            # Its chunk ids mean something else (a key or hash change): reuse nothing.
            previous = None
        if previous is not None:
            for digest, ref in known_chunks([previous.index]).items():
                stored.setdefault(digest, ref)
        with _Capture(self, stored, previous, defer_hashing=on_read_done is not None) as capture:
            for item in walk_sources(sources):
                capture.add(item)
            roots = tuple(s.container_path.lstrip("/") for s in walked_sources(sources))
            return capture.finish(roots, started, on_read_done)


class _Capture:
    """One ``write`` call: the pool, the open pack, the chunks in flight, the totals."""

    def __init__(
        self,
        writer: ChunkedSnapshotWriter,
        stored: dict[str, ChunkRef],
        previous: PreviousSnapshot | None,
        *,
        defer_hashing: bool = False,
    ) -> None:
        self._w = writer
        self._stored = stored
        self._new: dict[str, _Pending] = {}
        facts = previous.usable_facts() if previous is not None else None
        self._prev_facts: dict[str, FileFacts] = {}
        self._prev_files: dict[str, IndexEntry] = {}
        if previous is not None and facts is not None:
            self._prev_facts = facts.files
            self._prev_files = {e.path: e for e in previous.index.files()}
        self._pool = ThreadPoolExecutor(writer._threads, thread_name_prefix="chunk")
        self._packs = PackWriter(
            writer.staging_dir / "packs",
            target_bytes=writer._pack_target,
            executor=self._pool,
            defer_hashing=defer_hashing,
        )
        self._local = threading.local()
        self._queue: collections.deque[tuple[_EntryBuilder, Future[list[_Encoded]]]] = (
            collections.deque()
        )
        self._queued_bytes = 0
        self._entries: list[_EntryBuilder] = []
        self._facts: dict[str, FileFacts] = {}
        self._counts: collections.Counter[str] = collections.Counter()
        self._done = False

    def __enter__(self) -> _Capture:
        return self

    def __exit__(self, *exc: object) -> None:
        for _, future in self._queue:
            future.cancel()
        if not self._done:
            self._packs.abort()
        self._pool.shutdown(wait=True)

    # --- entries ----------------------------------------------------------------------
    def add(self, item: WalkItem) -> None:
        st = item.st
        if item.is_dir:
            self._counts["dirs"] += 1
            self._entries.append(
                _EntryBuilder(item.path, K.ENTRY_DIR, stat.S_IMODE(st.st_mode), st.st_mtime_ns)
            )
            return
        self._counts["files"] += 1
        previous = self._prev_files.get(item.path)
        if previous is not None and self._prev_facts.get(item.path) == FileFacts.of(st):
            self._reuse(item, previous)
        else:
            self._read(item)

    def _reuse(self, item: WalkItem, previous: IndexEntry) -> None:
        st = item.st
        builder = _EntryBuilder(
            item.path, K.ENTRY_FILE, stat.S_IMODE(st.st_mode), st.st_mtime_ns, previous.size
        )
        builder.refs.extend(previous.chunks)
        self._entries.append(builder)
        self._facts[item.path] = FileFacts.of(st)
        self._counts["files_reused"] += 1

    def _read(self, item: WalkItem) -> None:
        st = item.st
        builder = _EntryBuilder(item.path, K.ENTRY_FILE, stat.S_IMODE(st.st_mode), st.st_mtime_ns)
        self._entries.append(builder)
        if st.st_size > self._w._chunker.small_file_bytes:
            self._stream(item, builder)
        elif st.st_size:
            self._submit(builder, st.st_size, functools.partial(self._encode_file, item))
        self._facts[item.path] = FileFacts.of(st)
        self._counts["files_read"] += 1
        self._counts["bytes_read"] += st.st_size

    def _stream(self, item: WalkItem, builder: _EntryBuilder) -> None:
        """A big file: cut here as it streams in; its chunks are encoded on the pool."""
        with _open_unchanged(item) as handle:
            for data in self._w._chunker.split(handle, item.st.st_size):
                self._submit(builder, len(data), functools.partial(self._encode_chunk, data))
        if builder.size != item.st.st_size:
            raise _changed(item)

    # --- chunks -----------------------------------------------------------------------
    def _submit(
        self, builder: _EntryBuilder, size: int, task: Callable[[], list[_Encoded]]
    ) -> None:
        builder.size += size
        while self._queue and self._queued_bytes + size > IN_FLIGHT_BYTES:
            self._take_oldest()
        self._queue.append((builder, self._pool.submit(task)))
        self._queued_bytes += size

    def _encode_file(self, item: WalkItem) -> list[_Encoded]:
        """On a pool thread: read a small file whole, cut it, encode each chunk."""
        with _open_unchanged(item) as handle:
            data = handle.read(item.st.st_size + 1)  # one byte more reveals a file that grew
        if len(data) != item.st.st_size:
            raise _changed(item)
        chunker = getattr(self._local, "chunker", None)
        if chunker is None:
            chunker = self._local.chunker = self._w._chunker.copy()
        return [self._encode(chunk) for chunk in chunker.cut(data)]

    def _encode_chunk(self, data: ChunkData) -> list[_Encoded]:
        return [self._encode(data)]

    def _encode(self, data: ChunkData) -> _Encoded:
        """On a pool thread: the digest, and the payload if the chunk is new."""
        digest = self._w._ids(data)
        if digest in self._stored or digest in self._new:
            return _Encoded(digest, len(data), None, False)
        compressor = getattr(self._local, "compressor", None)
        if compressor is None:
            compressor = self._local.compressor = zstandard.ZstdCompressor(level=self._w.level)
        payload, compressed = encode_chunk(data, compressor)
        if self._w._sealer is not None:
            payload = self._w._sealer.seal_bytes(payload)
        return _Encoded(digest, len(data), payload, compressed)

    def _take_oldest(self) -> None:
        builder, future = self._queue.popleft()
        for done in future.result():
            self._queued_bytes -= done.raw_length
            builder.refs.append(self._place(done))

    def _place(self, done: _Encoded) -> ChunkRef | _Pending:
        """The stored copy of a chunk: a known one, or a new one appended to a pack."""
        ref: ChunkRef | _Pending | None = self._stored.get(done.digest) or self._new.get(
            done.digest
        )
        if ref is not None:
            self._counts["chunks_known"] += 1
            return ref
        assert done.payload is not None  # _encode saw neither map, and they only grow
        slot, offset = self._packs.append(done.payload)
        pending = _Pending(
            slot, offset, len(done.payload), done.raw_length, done.digest, done.compressed
        )
        self._new[done.digest] = pending
        self._counts["chunks_new"] += 1
        self._counts["bytes_new"] += done.raw_length
        return pending

    # --- result -----------------------------------------------------------------------
    def finish(
        self, roots: tuple[str, ...], started: float, on_read_done: Callable[[], None] | None
    ) -> StagedSnapshot:
        while self._queue:
            self._take_oldest()
        if on_read_done is not None:  # nothing below reads a source
            on_read_done()
        pack_paths = self._packs.finish()
        index = SnapshotIndex(roots, tuple(b.build() for b in self._entries), self._w._ids.name)
        blob = encode_index(index)
        if self._w._sealer is not None:
            blob = self._w._sealer.seal_bytes(blob)
        cid = blob_cid(blob)
        index_dir = self._w.staging_dir / "index"
        index_dir.mkdir(parents=True, exist_ok=True)
        index_path = index_dir / cid
        index_path.write_bytes(blob)
        self._done = True
        stats = WriteStats(
            **{name: self._counts[name] for name in _COUNTED},
            stored_bytes_new=sum(p.stat().st_size for p in pack_paths),
            seconds=time.monotonic() - started,
        )
        return StagedSnapshot(
            index, cid, index_path, tuple(pack_paths), SourceFacts(cid, self._facts), stats
        )


@contextlib.contextmanager
def _open_unchanged(item: WalkItem) -> Iterator[BinaryIO]:
    """Open the walked file without following links, as long as it is still that file.

    Raises:
        SyncError: stage ``archive_build``; it cannot be read, or it was replaced.
    """
    try:
        fd = os.open(item.host, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK)
    except OSError as exc:
        raise archive_build_error(
            f"path {'/' + item.path!r} cannot be read ({exc.strerror})"
        ) from None
    with os.fdopen(fd, "rb") as handle:
        st = os.fstat(fd)
        same = (st.st_dev, st.st_ino, st.st_size) == (
            item.st.st_dev,
            item.st.st_ino,
            item.st.st_size,
        )
        if not (same and stat.S_ISREG(st.st_mode)):
            raise _changed(item)
        try:
            yield handle
        except OSError as exc:
            raise archive_build_error(
                f"path {'/' + item.path!r} cannot be read ({exc.strerror})"
            ) from None


def _changed(item: WalkItem) -> SyncError:
    return archive_build_error(f"path {'/' + item.path!r} changed while it was read")


_COUNTED = (
    "files",
    "dirs",
    "files_read",
    "files_reused",
    "bytes_read",
    "chunks_new",
    "chunks_known",
    "bytes_new",
)
