"""Pack files: many compressed chunks in one blob, so small files are not one object each.

Layout (docs/FORMAT.md, "Chunked snapshots"): the 8 magic bytes ``CARPACK1``, then chunk
payloads back to back, nothing else. A payload is a zstd frame (level 3, content size in
its header) of the raw chunk, or the raw chunk itself when compression does not make it
smaller; the index records which (``compressed``), with the payload's offset and length
in the pack. A pack's id is the CID of its bytes like any blob, so the store verifies
whole packs; readers fetch single payloads by range and verify them by chunk digest.

``PackWriter`` fills packs in a local staging directory (the provider reads files while
its app is stopped and uploads after the restart); a finished pack is renamed to its CID.
"""

from __future__ import annotations

import contextlib
import hashlib
import mmap
import os
from concurrent.futures import Executor, Future
from pathlib import Path

import zstandard

from ...stores.cid import cid_from_sha256
from . import constants as K
from .ids import ChunkData

# A frame may not ask for a window bigger than the largest chunk it can hold.
MAX_FRAME_WINDOW = K.CHUNK_MAX_BYTES


def encode_chunk(raw: ChunkData, compressor: zstandard.ZstdCompressor) -> tuple[ChunkData, bool]:
    """The payload for ``raw``: (zstd frame, True) if that is smaller, else (raw, False).

    A chunk whose probe does not compress (``looks_incompressible``) is kept raw without
    compressing the rest of it, as borg's ``auto`` mode does: random or already
    compressed data is common in volumes and zstd spends most of its time failing on it.
    """
    if looks_incompressible(raw, compressor):
        return raw, False
    frame = compressor.compress(raw)
    if len(frame) < len(raw):
        return frame, True
    return raw, False


def looks_incompressible(raw: ChunkData, compressor: zstandard.ZstdCompressor) -> bool:
    """True if two probes (start and middle, 32 KiB each) of a big chunk do not compress.

    Chunks under four probes' size are always compressed in full (cheap anyway).
    """
    if len(raw) < 4 * K.PROBE_BYTES:
        return False
    view, half = memoryview(raw), K.PROBE_BYTES // 2
    middle = len(raw) // 2
    sample = bytes(view[:half]) + bytes(view[middle : middle + half])
    return len(compressor.compress(sample)) >= K.INCOMPRESSIBLE_RATIO * len(sample)


class ChunkDecodeError(ValueError):
    """A payload does not decode to a chunk of the announced length (caller wraps it)."""


def decode_chunk(payload: ChunkData, raw_length: int, compressed: bool) -> bytes:
    """The raw chunk of ``payload``, never more than ``raw_length`` bytes of memory.

    Raises:
        ChunkDecodeError: bad frame, a frame announcing another size, or a wrong length.
    """
    if not compressed:
        if len(payload) != raw_length:
            raise ChunkDecodeError(f"stored chunk is {len(payload)} bytes, not {raw_length}")
        return bytes(payload)
    try:
        # Checked first: a frame's header could announce gigabytes to allocate.
        announced = zstandard.frame_content_size(payload)
        if announced not in (raw_length, -1):
            raise ChunkDecodeError(f"frame announces {announced} bytes, not {raw_length}")
        dctx = zstandard.ZstdDecompressor(max_window_size=MAX_FRAME_WINDOW)
        raw = dctx.decompress(payload, max_output_size=raw_length)
    except zstandard.ZstdError as exc:
        raise ChunkDecodeError(f"zstd frame cannot be decoded: {exc}") from None
    if len(raw) != raw_length:
        raise ChunkDecodeError(f"frame decodes to {len(raw)} bytes, not {raw_length}")
    return raw


class PackSlot:
    """A pack being filled; ``cid`` is set once it is finished (its bytes are final)."""

    __slots__ = ("cid", "number")

    def __init__(self, number: int) -> None:
        self.number = number
        self.cid: str | None = None


class PackWriter:
    """Appends payloads to packs in ``directory``, starting a new one past ``target``.

    Payloads are written as they come; a pack's CID (a SHA-256 of the whole file) is
    computed once the pack is complete, in one call over the file mapped in memory, on
    ``executor`` when given (the capture's pool), so the capture thread neither hashes
    nor waits for many small hand-overs between threads. ``finish()`` waits for those
    hashes and renames each pack to its CID; ``abort()`` removes every pack this writer
    made (a failed capture leaves nothing to upload).

    ``defer_hashing``: hash no pack before ``finish()``, which then hashes them all on
    ``executor``. A provider's capture restarts its app once every file is read, before
    ``finish()``: the pack hashes (a fifth of a full capture's CPU) then run with the
    app up instead of in its downtime.
    """

    def __init__(
        self,
        directory: Path,
        *,
        target_bytes: int = K.PACK_TARGET_BYTES,
        executor: Executor | None = None,
        defer_hashing: bool = False,
    ) -> None:
        self.directory = directory
        self._defer = defer_hashing
        self._unhashed: list[tuple[PackSlot, Path]] = []
        directory.mkdir(parents=True, exist_ok=True)
        self._target = target_bytes
        self._executor = executor
        self._count = 0
        self._slot: PackSlot | None = None
        self._fd: int | None = None
        self._tmp: Path | None = None
        self._size = 0
        self._hashing: list[tuple[PackSlot, Path, Future[str]]] = []
        self.finished: list[Path] = []
        self.stored_bytes = 0

    def append(self, payload: ChunkData) -> tuple[PackSlot, int]:
        """Write ``payload`` to the current pack; return (its pack, its offset)."""
        if self._slot is None:
            self._open()
        assert self._slot is not None
        slot, offset = self._slot, self._size
        self._write(payload)
        self.stored_bytes += len(payload)
        if self._size >= self._target:
            self._close()
        return slot, offset

    def finish(self) -> list[Path]:
        """Close the current pack; return every finished pack file (named by CID)."""
        if self._slot is not None:
            self._close()
        for slot, tmp in self._unhashed:
            self._hash(slot, tmp)
        self._unhashed.clear()
        for slot, tmp, digest in self._hashing:
            cid = cid_from_sha256(bytes.fromhex(digest.result()))
            final = self.directory / cid
            # No fsync: staging is runner-private and a crashed capture is redone; the
            # store makes the uploaded pack durable.
            os.replace(tmp, final)
            slot.cid = cid
            self.finished.append(final)
        self._hashing.clear()
        return list(self.finished)

    def abort(self) -> None:
        """Remove the pack being written and every finished one; safe to call twice."""
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None
        leftovers = [self._tmp] if self._tmp is not None else []
        leftovers.extend(tmp for _, tmp in self._unhashed)
        self._unhashed.clear()
        for _, tmp, digest in self._hashing:
            digest.cancel()
            with contextlib.suppress(Exception):
                digest.result()
            leftovers.append(tmp)
        for path in [*self.finished, *leftovers]:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(path)
        self._hashing.clear()
        self.finished.clear()
        self._slot, self._tmp = None, None

    def _open(self) -> None:
        self._count += 1
        self._slot = PackSlot(self._count)
        self._tmp = self.directory / f".pack-{os.getpid()}-{self._count}.tmp"
        self._fd = os.open(self._tmp, os.O_RDWR | os.O_CREAT | os.O_TRUNC, 0o644)
        self._size = 0
        self._write(K.PACK_MAGIC)

    def _write(self, data: ChunkData) -> None:
        assert self._fd is not None
        view = memoryview(data)
        while view:
            view = view[os.write(self._fd, view) :]
        self._size += len(data)

    def _close(self) -> None:
        assert self._slot is not None and self._fd is not None and self._tmp is not None
        os.close(self._fd)
        self._fd = None
        if self._defer:
            self._unhashed.append((self._slot, self._tmp))
        else:
            self._hash(self._slot, self._tmp)
        self._slot, self._tmp = None, None

    def _hash(self, slot: PackSlot, tmp: Path) -> None:
        if self._executor is not None:
            digest = self._executor.submit(_sha256_of_file, tmp)
        else:
            digest = Future()
            digest.set_result(_sha256_of_file(tmp))
        self._hashing.append((slot, tmp, digest))


def _sha256_of_file(path: Path) -> str:
    """SHA-256 of a whole file in one call (the GIL is released while it hashes)."""
    with open(path, "rb") as handle, mmap.mmap(handle.fileno(), 0, access=mmap.ACCESS_READ) as m:
        return hashlib.sha256(m).hexdigest()
