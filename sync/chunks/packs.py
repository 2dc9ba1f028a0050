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
import os
from pathlib import Path
from typing import BinaryIO

import zstandard

from ...stores.cid import cid_from_sha256
from ..archive_sink import HashingSink
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

    Each pack is written and hashed on a writer thread (``HashingSink``, as tar archives
    are), so the capture thread only hands payloads over. Call ``finish()`` to close the
    last pack, or ``abort()`` to remove every pack this writer made (a failed capture
    leaves nothing to upload).
    """

    def __init__(self, directory: Path, *, target_bytes: int = K.PACK_TARGET_BYTES) -> None:
        self.directory = directory
        directory.mkdir(parents=True, exist_ok=True)
        self._target = target_bytes
        self._count = 0
        self._slot: PackSlot | None = None
        self._handle: BinaryIO | None = None
        self._sink: HashingSink | None = None
        self._tmp: Path | None = None
        self.finished: list[Path] = []
        self.stored_bytes = 0

    def append(self, payload: ChunkData) -> tuple[PackSlot, int]:
        """Queue ``payload`` for the current pack; return (its pack, its offset)."""
        if self._sink is None:
            self._open()
        assert self._slot is not None and self._sink is not None
        slot, offset = self._slot, self._sink.size
        self._sink.write(payload)
        self.stored_bytes += len(payload)
        if self._sink.size >= self._target:
            self._close()
        return slot, offset

    def finish(self) -> list[Path]:
        """Close the current pack; return every finished pack file (named by CID)."""
        if self._sink is not None:
            self._close()
        return list(self.finished)

    def abort(self) -> None:
        """Remove the pack being written and every finished one; safe to call twice."""
        if self._sink is not None:
            self._sink.close(discard=True)
            self._sink = None
        if self._handle is not None:
            self._handle.close()
            self._handle = None
        for path in [*self.finished, *([self._tmp] if self._tmp else [])]:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(path)
        self.finished.clear()
        self._slot, self._tmp = None, None

    def _open(self) -> None:
        self._count += 1
        self._slot = PackSlot(self._count)
        self._tmp = self.directory / f".pack-{os.getpid()}-{self._count}.tmp"
        self._handle = open(self._tmp, "wb")  # noqa: SIM115 - closed in _close/abort
        self._sink = HashingSink(self._handle, None)
        self._sink.write(K.PACK_MAGIC)

    def _close(self) -> None:
        assert self._slot is not None and self._sink is not None and self._handle is not None
        assert self._tmp is not None
        self._sink.flush()
        self._sink.close()
        self._handle.close()
        cid = cid_from_sha256(bytes.fromhex(self._sink.hexdigest()))
        final = self.directory / cid
        # No fsync: staging is runner-private and a crashed capture is redone; the
        # store makes the uploaded pack durable.
        os.replace(self._tmp, final)
        self._slot.cid = cid
        self.finished.append(final)
        self._slot, self._tmp, self._sink, self._handle = None, None, None, None
