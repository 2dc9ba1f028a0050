"""Read a snapshot archive (tar.zst or tar.gz) as a stream: memory flat in archive size.

The consumer reads each archive twice: once while the app still runs (validation and
planning, ``sync/staging.py``) and once after the confirmed stop (commit,
``sync/apply.py``). Both passes go through ``open_archive``, which adds three things
over a bare ``tarfile.open(mode="r|...")``:

- the format is checked against the file's magic bytes, so a record that lies about
  its ``archive_format`` gets a clear error instead of a decompressor traceback;
- zstd decompression has a bounded window (a hostile frame cannot ask for gigabytes);
- ``iter_members`` drops each ``TarInfo`` after use (stream-mode ``tarfile`` otherwise
  keeps every member in ``TarFile.members``, so 2 million members would cost ~1 GB);
- the compressed bytes can be hashed as they are read, so the commit pass can prove
  it applied the very bytes the preflight verified.

Every decoding failure becomes ``SnapshotInvalid`` with stage ``extract``.
"""

from __future__ import annotations

import hashlib
import tarfile
import zlib
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import IO, Any, cast

import zstandard

from ..errors import SnapshotInvalid
from . import constants as C
from .crypto.framing import Sealer

# 128 MiB: enough for zstd --long=27; a frame asking for more is refused.
MAX_ZSTD_WINDOW = 1 << 27
_ZSTD_MAGIC = b"\x28\xb5\x2f\xfd"
_GZIP_MAGIC = b"\x1f\x8b"
_CHUNK = 1024 * 1024
# What a corrupt compressed stream or tar can raise while being read.
DECODE_ERRORS = (tarfile.TarError, zstandard.ZstdError, zlib.error, EOFError, OSError)


class HashingReader:
    """A read-only file wrapper that feeds every byte read into a SHA-256."""

    def __init__(self, raw: IO[bytes]) -> None:
        self._raw = raw
        self._hash = hashlib.sha256()
        self.bytes_read = 0

    def read(self, size: int = -1) -> bytes:
        data = self._raw.read(size)
        self._hash.update(data)
        self.bytes_read += len(data)
        return data

    def readable(self) -> bool:
        return True

    def drain(self) -> None:
        """Read (and hash) whatever the tar reader left unread after its end marker."""
        while self.read(_CHUNK):
            pass

    def hexdigest(self) -> str:
        return self._hash.hexdigest()


def _extract_error(message: str) -> SnapshotInvalid:
    return SnapshotInvalid(message, stage=C.STAGE_EXTRACT)


def _check_magic(path: Path, archive_format: str) -> None:
    with open(path, "rb") as handle:
        head = handle.read(4)
    expected = _ZSTD_MAGIC if archive_format == C.ARCHIVE_FORMAT_ZST else _GZIP_MAGIC
    if archive_format not in C.ARCHIVE_FORMATS:
        raise _extract_error(f"unknown archive_format {archive_format!r}")
    if not head.startswith(expected):
        raise _extract_error(f"archive is not a {archive_format} file (wrong magic bytes)")


@contextmanager
def open_archive(
    path: Path, archive_format: str, sealer: Sealer | None = None
) -> Iterator[tuple[tarfile.TarFile, HashingReader]]:
    """Open ``path`` as a streaming tar reader.

    Args:
        path: the downloaded, digest-verified archive.
        archive_format: ``tar.zst`` or ``tar.gz`` (from the manifest).
        sealer: given for an encrypted snapshot: ``path`` is sealed and is opened
            segment by segment as the tar is read (``sync/crypto/framing.py``).

    Yields:
        (tar, reader): iterate ``iter_members(tar)``; ``reader`` hashes the compressed
        bytes consumed, as stored (call ``reader.drain()`` before ``reader.hexdigest()``).

    Raises:
        SnapshotInvalid: (stage ``extract``) unknown format, wrong magic, or a corrupt
            stream (raised from iteration as well); ``SealedBlobInvalid`` for a sealed
            archive another key sealed or that was changed.
    """
    if sealer is None:
        _check_magic(path, archive_format)
    elif archive_format != C.ARCHIVE_FORMAT_ZST:
        raise _extract_error(f"an encrypted snapshot is never {archive_format!r}")
    with open(path, "rb") as raw:
        reader = HashingReader(raw)
        stream: Any = reader
        if sealer is not None:
            stream = sealer.opening_reader(cast(IO[bytes], reader), "archive")
        if archive_format == C.ARCHIVE_FORMAT_ZST:
            dctx = zstandard.ZstdDecompressor(max_window_size=MAX_ZSTD_WINDOW)
            stream = dctx.stream_reader(cast(IO[bytes], stream), read_across_frames=True)
            mode = "r|"
        else:
            mode = "r|gz"
        try:
            tar = tarfile.open(fileobj=stream, mode=mode)  # type: ignore[call-overload]  # noqa: SIM115
        except DECODE_ERRORS as exc:
            raise _extract_error(f"archive cannot be read as {archive_format}: {exc}") from None
        with tar:
            yield tar, reader


def iter_members(tar: tarfile.TarFile) -> Iterator[tarfile.TarInfo]:
    """Yield each member once, keeping none of them (constant memory).

    Raises:
        SnapshotInvalid: (stage ``extract``) the tar or compressed stream is corrupt.
    """
    while True:
        try:
            member = tar.next()
        except DECODE_ERRORS as exc:
            raise _extract_error(f"archive is corrupt: {exc}") from None
        if member is None:
            return
        # Stream-mode TarFile appends every member to .members; drop them as we go.
        tar.members.clear()  # type: ignore[attr-defined]
        yield member


def read_member(tar: tarfile.TarFile, member: tarfile.TarInfo) -> IO[bytes]:
    """The data stream of a regular-file member (valid until the next member).

    Raises:
        SnapshotInvalid: (stage ``extract``) the member has no data stream.
    """
    handle = tar.extractfile(member)
    if handle is None:
        raise _extract_error(f"member {member.name!r} has no data")
    return handle
