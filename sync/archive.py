"""Building snapshot archives: streaming POSIX tar into zstd or gzip (docs/FORMAT.md,
"Snapshot archive").

Data flows tar -> compressor -> ``HashingSink`` (``archive_sink.py``), one buffer at a
time, so memory use does not grow with data size, and the archive's SHA-256, size,
member count and unpacked bytes are known the moment the last byte is written.

Member names are container-absolute paths without the leading "/" (``app/data/f.txt``), so
the consumer maps them back through its own binds (docs/FORMAT.md, "Archive paths"). Only
directories and regular files are captured, with mode and mtime; owners are written as
uid/gid 0 with empty names so no host identity leaks. A symlink, FIFO, socket, device or
hardlinked file (a regular file with ``st_nlink > 1``: restoring it would silently break the
link or duplicate data, so it is refused rather than guessed at) fails the build with stage
``archive_build`` and an error naming the *container* path. Links are never followed.
Reading/extraction lives in ``archive_read.py``.
"""

from __future__ import annotations

import contextlib
import gzip
import os
import posixpath
import stat
import tarfile
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import IO, Any, BinaryIO

import zstandard

from ..errors import SyncError
from . import constants as C
from .archive_sink import HashingSink, archive_build_error, runner_entry
from .paths import ResolvedPath

# Called with (unpacked bytes done, total or None) while an archive is built.
Progress = Callable[[int, int | None], None]
COPY_BUFSIZE = 1024 * 1024


@dataclass(frozen=True, slots=True)
class ArchiveInfo:
    """What was written: digest and size of the compressed file, and its content counts."""

    sha256: str
    size_bytes: int
    members: int
    unpacked_bytes: int


class _TarStream:
    """Writes POSIX (pax) tar records into the compressor, as ``tarfile`` would.

    Our own loop instead of ``TarFile.addfile``: one reusable buffer and ``readinto``
    (no per-chunk allocation), which is most of the gap to ``tar | zstd``.
    """

    def __init__(self, compressor: Any) -> None:
        self._compressor = compressor
        self._buffer = bytearray(COPY_BUFSIZE)
        self.offset = 0

    def _write(self, data: Any) -> None:
        self._compressor.write(data)
        self.offset += memoryview(data).nbytes

    def add(self, info: tarfile.TarInfo, content: Any) -> None:
        self._write(info.tobuf(tarfile.PAX_FORMAT, "utf-8", "surrogateescape"))
        if not info.isfile() or info.size == 0:
            return
        view = memoryview(self._buffer)
        remaining = info.size
        while remaining:
            n = content.readinto(view[: min(remaining, len(view))])
            if not n:
                raise OSError("unexpected end of data")  # the file shrank under us
            self._write(view[:n])
            remaining -= n
        self._write(bytes(-info.size % tarfile.BLOCKSIZE))

    def close(self) -> None:
        """End-of-archive blocks, padded to a full record (what tarfile writes)."""
        self._write(bytes(2 * tarfile.BLOCKSIZE))
        self._write(bytes(-self.offset % tarfile.RECORDSIZE))


def _open_compressor(fmt: str, level: int, sink: HashingSink) -> Any:
    if fmt == C.ARCHIVE_FORMAT_ZST:
        cctx = zstandard.ZstdCompressor(level=level, threads=-1)
        return cctx.stream_writer(sink, closefd=False, write_size=COPY_BUFSIZE)  # type: ignore[arg-type]
    if fmt == C.ARCHIVE_FORMAT_GZ:
        # mtime=0: the same content gives the same bytes, hence the same CID.
        return gzip.GzipFile(fileobj=sink, mode="wb", compresslevel=level, mtime=0)
    raise archive_build_error(
        f"unknown archive format {fmt!r}; use one of {', '.join(C.ARCHIVE_FORMATS)}"
    )


class ArchiveWriter:
    """One archive being written to a temp file next to ``dest``.

    Use as a context manager: ``finish()`` renames the temp file to ``dest`` and returns
    the ``ArchiveInfo``; leaving the block without ``finish()`` (an error) removes the
    partial file.
    """

    def __init__(
        self,
        dest: Path,
        *,
        fmt: str,
        level: int,
        progress: Progress | None = None,
        max_bytes: int | None = None,
    ) -> None:
        self.dest = dest
        self._tmp = dest.with_name(f".{dest.name}.{time.time_ns()}.tmp")
        self._progress = progress
        self._handle: BinaryIO = open(self._tmp, "xb")  # noqa: SIM115 - closed in finish/abort
        try:
            self._sink = HashingSink(self._handle, max_bytes)
            self._compressor = _open_compressor(fmt, level, self._sink)
            self._tar = _TarStream(self._compressor)
        except BaseException:
            self.abort()
            raise
        self.members = 0
        self.unpacked_bytes = 0
        self._done = False

    def __enter__(self) -> ArchiveWriter:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if not self._done:
            self.abort()

    # --- adding members ---------------------------------------------------------------
    def add_member(self, info: tarfile.TarInfo, content: IO[bytes] | None = None) -> None:
        """Add one member whose name, type and metadata are already final."""
        info.uid = info.gid = 0
        info.uname = info.gname = ""
        self._tar.add(info, content)
        self.members += 1
        if info.isfile():
            self.unpacked_bytes += info.size
            if self._progress is not None:
                self._progress(self.unpacked_bytes, None)

    def add_tree(self, source: ResolvedPath, *, skip: frozenset[str] = frozenset()) -> None:
        """Add a resolved path and everything below it, never following a link.

        Args:
            source: where to read (host path) and what to call it (container path).
            skip: container paths not to descend into (covered by another source).

        Raises:
            SyncError: stage ``archive_build``; a link or special file was found.
        """
        stack = [(str(source.host_path), source.container_path)]
        while stack:
            host, container = stack.pop()
            st = os.lstat(host)
            if stat.S_ISDIR(st.st_mode):
                self.add_member(_dir_info(container, st))
                for name in sorted(os.listdir(host), reverse=True):
                    if runner_entry(source, host, name):
                        continue
                    child = posixpath.join(container, name)
                    if child not in skip:
                        stack.append((os.path.join(host, name), child))
            elif stat.S_ISREG(st.st_mode):
                self._add_file(host, container, st)
            else:
                raise _unsupported(container, st.st_mode)

    def _add_file(self, host: str, container: str, st: os.stat_result) -> None:
        if st.st_nlink > 1:
            raise archive_build_error(
                f"path {container!r} is a hardlinked file; hardlinks cannot be synced"
            )
        try:
            fd = os.open(host, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK)
        except OSError as exc:
            raise archive_build_error(
                f"path {container!r} cannot be read ({exc.strerror})"
            ) from None
        with os.fdopen(fd, "rb") as handle:
            now = os.fstat(fd)
            if (now.st_dev, now.st_ino) != (st.st_dev, st.st_ino) or not stat.S_ISREG(now.st_mode):
                raise archive_build_error(f"path {container!r} changed while the archive was built")
            info = tarfile.TarInfo(container.lstrip("/"))
            info.size = now.st_size
            info.mode = stat.S_IMODE(now.st_mode)
            info.mtime = int(now.st_mtime)
            try:
                self.add_member(info, handle)
            except OSError as exc:  # tarfile: "unexpected end of data" when it shrank
                raise archive_build_error(
                    f"path {container!r} changed while the archive was built"
                ) from exc

    def add_stream(self, chunks: Iterable[bytes], container_path: str) -> None:
        """Add a Docker ``get_archive`` tar stream of ``container_path``, re-rooted.

        Docker names members after the path's last component (``data/f`` for
        ``/app/data``); they are renamed to ``app/data/f``. Same type rules as
        ``add_tree``.

        Raises:
            SyncError: stage ``archive_build``; unsupported member or unsafe name.
        """
        base = posixpath.basename(container_path.rstrip("/"))
        try:
            with tarfile.open(fileobj=_ChunkReader(iter(chunks)), mode="r|") as src:  # type: ignore[call-overload]
                for member in src:
                    self._add_stream_member(src, member, base, container_path)
        except tarfile.TarError as exc:
            raise archive_build_error(
                f"archive of {container_path!r} from Docker is unreadable: {exc}"
            ) from exc

    def _add_stream_member(
        self, src: tarfile.TarFile, member: tarfile.TarInfo, base: str, container_path: str
    ) -> None:
        name = member.name.rstrip("/")
        parts = name.split("/")
        if parts[0] != base or ".." in parts or "" in parts:
            raise archive_build_error(
                f"archive of {container_path!r} from Docker has an unexpected member"
            )
        target = posixpath.join(container_path, *parts[1:])
        info = tarfile.TarInfo(target.lstrip("/"))
        info.mode = stat.S_IMODE(member.mode)
        info.mtime = int(member.mtime)
        if member.isdir():
            info.type = tarfile.DIRTYPE
            self.add_member(info)
        elif member.isreg():
            info.size = member.size
            self.add_member(info, src.extractfile(member))
        else:
            raise archive_build_error(
                f"path {target!r} is not a regular file or directory; it cannot be synced"
            )

    # --- finishing ----------------------------------------------------------------------
    def finish(self) -> ArchiveInfo:
        """Close the archive, fsync it and rename it to ``dest``."""
        try:
            self._tar.close()
            if isinstance(self._compressor, gzip.GzipFile):
                self._compressor.close()
            else:
                self._compressor.flush(zstandard.FLUSH_FRAME)
                self._compressor.close()
            self._sink.flush()
            self._sink.close()
            # No fsync: the archive is a runner-private temp file that a crashed publish
            # discards and redoes (``SnapshotPublisher.recover``); durability is the
            # store's job once it is uploaded.
            self._handle.close()
            os.replace(self._tmp, self.dest)
        except BaseException:
            self.abort()
            raise
        self._done = True
        return ArchiveInfo(
            sha256=self._sink.hexdigest(),
            size_bytes=self._sink.size,
            members=self.members,
            unpacked_bytes=self.unpacked_bytes,
        )

    def abort(self) -> None:
        """Drop the partial archive; safe to call twice."""
        self._done = True
        sink: HashingSink | None = getattr(self, "_sink", None)
        if sink is not None:
            sink.close(discard=True)
        with contextlib.suppress(Exception):
            self._handle.close()
        with contextlib.suppress(FileNotFoundError):
            os.unlink(self._tmp)


class _ChunkReader:
    """A read()-able view of an iterator of byte chunks (Docker's get_archive output).

    Keeps one chunk and an offset into it, so small reads never copy a large chunk.
    """

    def __init__(self, chunks: Iterator[bytes]) -> None:
        self._chunks = chunks
        self._chunk = b""
        self._pos = 0

    def read(self, size: int = -1) -> bytes:
        parts: list[bytes] = []
        wanted = size
        while wanted != 0:
            if self._pos >= len(self._chunk):
                nxt = next(self._chunks, None)
                if nxt is None:
                    break
                self._chunk, self._pos = nxt, 0
                continue
            end = len(self._chunk) if wanted < 0 else min(len(self._chunk), self._pos + wanted)
            parts.append(self._chunk[self._pos : end])
            if wanted > 0:
                wanted -= end - self._pos
            self._pos = end
        return b"".join(parts)


def _dir_info(container: str, st: os.stat_result) -> tarfile.TarInfo:
    info = tarfile.TarInfo(container.lstrip("/"))
    info.type = tarfile.DIRTYPE
    info.mode = stat.S_IMODE(st.st_mode)
    info.mtime = int(st.st_mtime)
    return info


def _unsupported(container: str, mode: int) -> SyncError:
    what = "a symbolic link" if stat.S_ISLNK(mode) else "a FIFO, socket or device"
    return archive_build_error(
        f"path {container!r} is {what}; only regular files and directories can be synced"
    )


def _covered(path: str, others: Iterable[str]) -> bool:
    return any(o != path and (o == "/" or path.startswith(o + "/")) for o in others)


def build_archive(
    sources: Sequence[ResolvedPath],
    dest: Path,
    *,
    fmt: str,
    level: int,
    progress: Progress | None = None,
    max_bytes: int | None = None,
) -> ArchiveInfo:
    """Write the sources (already resolved for reading) as one compressed tar at ``dest``.

    A source inside another source of the same volume is skipped (its members are
    already in); a source nested as a *different* volume is pruned from its parent's
    walk and added from its own volume.

    Raises:
        SyncError: stage ``archive_build``; ``dest`` does not exist afterwards.
    """
    walked = [
        s
        for s in sources
        if not _covered(
            s.container_path, [o.container_path for o in sources if o.binding == s.binding]
        )
    ]
    names = {s.container_path for s in walked}
    with ArchiveWriter(dest, fmt=fmt, level=level, progress=progress, max_bytes=max_bytes) as w:
        for source in walked:
            skip = frozenset(names - {source.container_path})
            try:
                w.add_tree(source, skip=skip)
            except FileNotFoundError:
                raise archive_build_error(
                    f"path {source.container_path!r} vanished while archiving"
                ) from None
            except OSError as exc:
                raise archive_build_error(
                    f"path {source.container_path!r} cannot be read ({exc.strerror})"
                ) from None
        return w.finish()
