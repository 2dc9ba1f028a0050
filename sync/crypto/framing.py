"""The sealed framing: AES-256-GCM in fixed-size segments, streamed (docs/FORMAT.md,
"Encryption at rest").

A sealed blob is a 39-byte header and then segments::

    "CARSEAL1" | key id (8) | salt (16) | nonce prefix (7)
    segment 0 | segment 1 | ... | last segment

Each segment holds 64 KiB of plaintext (the last one 0 to 64 KiB) followed by its
16-byte GCM tag. The blob's own key is HMAC-SHA256(content key, salt), so no two blobs
share a key and random nonces never repeat under one key however many blobs a sync set
seals. A segment's nonce is the prefix, its 4-byte big-endian number and a flag byte
that is 1 only on the last segment, and the header is its associated data: a reordered,
dropped, appended or truncated segment, or a changed header, fails authentication.
The key id (derived from the master key, ``keys.py``) lets a reader say "wrong key"
instead of "corrupt" without trying to decrypt.

Segments are sealed and opened one at a time, so a blob of any size needs one
segment's memory (``seal_file``, ``OpeningReader``); ``seal_bytes``/``open_bytes`` are the
same framing for values already in memory (a chunk, an index).
"""

from __future__ import annotations

import hashlib
import hmac
import io
import os
import struct
from collections.abc import Iterator
from pathlib import Path
from typing import IO

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from ...errors import SnapshotInvalid
from .keys import KEY_ID_BYTES, SyncKeys

MAGIC = b"CARSEAL1"
SALT_BYTES = 16
PREFIX_BYTES = 7
HEADER_BYTES = len(MAGIC) + KEY_ID_BYTES + SALT_BYTES + PREFIX_BYTES
SEGMENT_BYTES = 64 * 1024
TAG_BYTES = 16
SEALED_SEGMENT_BYTES = SEGMENT_BYTES + TAG_BYTES
MAX_SEGMENTS = 2**32

Data = bytes | bytearray | memoryview


class SealedBlobInvalid(SnapshotInvalid):
    """A sealed blob cannot be opened; ``wrong_key`` tells a key mismatch from damage."""

    def __init__(self, what: str, why: str, *, wrong_key: bool = False) -> None:
        if wrong_key:
            message = f"cannot decrypt {what}: wrong ENCRYPTION_KEY_FILE? ({why})"
            hint = "every runner of a sync set needs the same SYNC.ENCRYPTION_KEY_FILE"
        else:
            message = f"{what} is corrupt: {why}"
            hint = None
        super().__init__(message, stage="r1fs_download", hint=hint)
        self.wrong_key = wrong_key


def sealed_size(plain_bytes: int) -> int:
    """The size of the sealed form of ``plain_bytes`` bytes."""
    segments = plain_bytes // SEGMENT_BYTES + 1  # a full last segment is followed by none
    if plain_bytes and plain_bytes % SEGMENT_BYTES == 0:
        segments -= 1
    return HEADER_BYTES + plain_bytes + segments * TAG_BYTES


class _Segments:
    """The cipher of one blob: its header and each segment's nonce."""

    def __init__(self, keys: SyncKeys, header: bytes) -> None:
        salt = header[len(MAGIC) + KEY_ID_BYTES : -PREFIX_BYTES]
        blob_key = hmac.new(keys.content, b"blob" + salt, hashlib.sha256).digest()
        self.header = header
        self._aead = AESGCM(blob_key)
        self._prefix = header[-PREFIX_BYTES:]

    def _nonce(self, number: int, last: bool) -> bytes:
        if number >= MAX_SEGMENTS:
            raise ValueError("a sealed blob holds at most 2**32 segments")
        return self._prefix + struct.pack(">IB", number, 1 if last else 0)

    def seal(self, number: int, plain: Data, last: bool) -> bytes:
        return self._aead.encrypt(self._nonce(number, last), bytes(plain), self.header)

    def open(self, number: int, sealed: Data, last: bool) -> bytes:
        return self._aead.decrypt(self._nonce(number, last), bytes(sealed), self.header)


class Sealer:
    """Seals and opens blobs with one sync set's keys."""

    def __init__(self, keys: SyncKeys) -> None:
        self.keys = keys

    # --- sealing -------------------------------------------------------------------------
    def _new_blob(self) -> _Segments:
        header = MAGIC + self.keys.key_id + os.urandom(SALT_BYTES + PREFIX_BYTES)
        return _Segments(self.keys, header)

    def seal_bytes(self, data: Data) -> bytes:
        """``data`` sealed as one blob (header and segments)."""
        blob = self._new_blob()
        view = memoryview(data)
        parts = [blob.header]
        for number, start in enumerate(range(0, max(len(view), 1), SEGMENT_BYTES)):
            piece = view[start : start + SEGMENT_BYTES]
            parts.append(blob.seal(number, piece, start + SEGMENT_BYTES >= len(view)))
        return b"".join(parts)

    def seal_in_place(self, path: Path) -> tuple[str, int]:
        """Replace the file at ``path`` by its sealed form; return (sha256, size) of it."""
        sealed = path.with_name(path.name + ".sealing")
        try:
            result = self.seal_file(path, sealed)
            os.replace(sealed, path)
        finally:
            sealed.unlink(missing_ok=True)
        return result

    def seal_file(self, src: Path, dst: Path) -> tuple[str, int]:
        """Write ``src`` sealed to ``dst`` segment by segment; return (sha256, size) of it."""
        blob = self._new_blob()
        digest = hashlib.sha256(blob.header)
        size = len(blob.header)
        with open(src, "rb") as plain, open(dst, "wb") as out:
            out.write(blob.header)
            for number, piece, last in _pieces(plain, SEGMENT_BYTES):
                sealed = blob.seal(number, piece, last)
                out.write(sealed)
                digest.update(sealed)
                size += len(sealed)
            out.flush()
            os.fsync(out.fileno())
        return digest.hexdigest(), size

    # --- opening -------------------------------------------------------------------------
    def _blob_for(self, header: bytes, what: str) -> _Segments:
        if len(header) < HEADER_BYTES or not header.startswith(MAGIC):
            raise SealedBlobInvalid(what, "not a sealed blob (no CARSEAL1 header)")
        if header[len(MAGIC) : len(MAGIC) + KEY_ID_BYTES] != self.keys.key_id:
            raise SealedBlobInvalid(what, "it was sealed with another key", wrong_key=True)
        return _Segments(self.keys, bytes(header[:HEADER_BYTES]))

    def open_bytes(self, sealed: Data, what: str) -> bytes:
        """The plaintext of a sealed blob held in memory.

        Raises:
            SealedBlobInvalid: another key sealed it, or it was changed or cut short.
        """
        view = memoryview(sealed)
        blob = self._blob_for(bytes(view[:HEADER_BYTES]), what)
        body = view[HEADER_BYTES:]
        parts = []
        starts = range(0, max(len(body), 1), SEALED_SEGMENT_BYTES)
        for number, start in enumerate(starts):
            piece = body[start : start + SEALED_SEGMENT_BYTES]
            parts.append(
                _open(blob, number, piece, start + SEALED_SEGMENT_BYTES >= len(body), what)
            )
        return b"".join(parts)

    def opening_reader(self, raw: IO[bytes], what: str) -> IO[bytes]:
        """A file object reading the plaintext of the sealed stream ``raw``, one segment
        in memory at a time; it reads ``raw`` to its end (the last segment proves it).

        Reads raise ``SealedBlobInvalid`` at the first bad segment.
        """
        return io.BufferedReader(_OpeningStream(self, raw, what), buffer_size=SEGMENT_BYTES)


def _open(blob: _Segments, number: int, piece: Data, last: bool, what: str) -> bytes:
    if len(piece) < TAG_BYTES:
        raise SealedBlobInvalid(what, f"segment {number} is cut short")
    try:
        return blob.open(number, piece, last)
    except InvalidTag:
        where = "last segment" if last else "segment"
        raise SealedBlobInvalid(
            what, f"{where} {number} fails authentication (changed, reordered or truncated)"
        ) from None


def _pieces(handle: IO[bytes], size: int) -> Iterator[tuple[int, bytes, bool]]:
    """(number, bytes, is_last) of ``handle`` cut in ``size`` pieces; at least one piece.

    A piece is last when nothing follows it; an empty stream is one empty last piece.
    """
    current = _read_exactly(handle, size)
    number = 0
    while True:
        following = _read_exactly(handle, size) if len(current) == size else b""
        last = not following
        yield number, current, last
        if last:
            return
        current, number = following, number + 1


def _read_exactly(handle: IO[bytes], size: int) -> bytes:
    parts, missing = [], size
    while missing:
        data = handle.read(missing)
        if not data:
            break
        parts.append(data)
        missing -= len(data)
    return b"".join(parts)


class _OpeningStream(io.RawIOBase):
    """Raw plaintext of a sealed stream, produced segment by segment."""

    def __init__(self, sealer: Sealer, raw: IO[bytes], what: str) -> None:
        self._sealer = sealer
        self._raw = raw
        self._what = what
        self._segments: Iterator[tuple[int, bytes, bool]] | None = None
        self._blob: _Segments | None = None
        self._pending = memoryview(b"")
        self._done = False

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: bytearray | memoryview) -> int:  # type: ignore[override]
        while not self._pending and not self._done:
            self._next_segment()
        count = min(len(buffer), len(self._pending))
        buffer[:count] = self._pending[:count]
        self._pending = self._pending[count:]
        return count

    def _next_segment(self) -> None:
        if self._segments is None:
            self._blob = self._sealer._blob_for(_read_exactly(self._raw, HEADER_BYTES), self._what)
            self._segments = _pieces(self._raw, SEALED_SEGMENT_BYTES)
        assert self._blob is not None
        number, piece, last = next(self._segments)
        self._pending = memoryview(_open(self._blob, number, piece, last, self._what))
        self._done = last
