"""AppliedFiles: what the last chunked apply left in the consumer's volumes.

A chunked apply writes only the files whose content differs from what the volume holds.
To know that without reading every file, the consumer keeps, for each file of the
snapshot it applied, the file's ``[size, mtime_ns, ctime_ns, inode]`` taken right after
the commit (the app still stopped), the content it put there (``content_key``: the
snapshot's chunk ids of that file) and the snapshot's mtime for it. At the next apply a
file whose stat is unchanged holds that content: an app can set a file's mtime, but
any write, chmod, chown or rename also sets its ctime, which it cannot set (restic's
rule, used by the provider too).

Timestamps are coarse: ext4 keeps ctime in whole seconds on small volumes (128-byte
inodes) and the kernel's clock advances by ticks, so a change made within about a
second of the stat can leave ctime as it was. Facts whose ctime is that close to when
they were recorded are "racy" (git's word) and only ever trusted after the file is
read and compared (``sync/chunked_plan.py``).

The facts never decide alone: they are runner-private (``sync_state/applied_files.zst``,
zstd JSON, mode 0600), a missing, unreadable or stale file only means files are read
and compared, or written again. Which apply recorded them does not matter either: a
stat that still matches is the file as it was recorded.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import zstandard

from ..fsutil import atomic_write_bytes
from .chunks import constants as K
from .chunks.index import IndexEntry

_log = logging.getLogger(__name__)
FORMAT = "car-applied-files"
VERSION = 1
MAX_BYTES = 512 * K.MIB
# A ctime within this of when it was taken may hide a later change (see above).
RACY_NS = 1_100_000_000


def content_key(entry: IndexEntry, chunk_hash: str) -> str:
    """A short name for a file's content: its size and chunk ids, hashed."""
    text = f"{chunk_hash}:{entry.size}:" + ",".join(c.digest for c in entry.chunks)
    return hashlib.sha256(text.encode("ascii")).hexdigest()


@dataclass(frozen=True, slots=True)
class AppliedFile:
    """One file as the commit left it."""

    size: int
    mtime_ns: int
    ctime_ns: int
    inode: int
    content: str  # content_key of what was applied
    entry_mtime_ns: int  # the snapshot's mtime (the volume may keep it rounded)

    @classmethod
    def of(cls, st: os.stat_result, content: str, entry_mtime_ns: int) -> AppliedFile:
        return cls(st.st_size, st.st_mtime_ns, st.st_ctime_ns, st.st_ino, content, entry_mtime_ns)

    def matches(self, st: os.stat_result) -> bool:
        """True if ``st`` is the file as recorded (nothing wrote, moved or chmodded it)."""
        return (st.st_size, st.st_mtime_ns, st.st_ctime_ns, st.st_ino) == (
            self.size,
            self.mtime_ns,
            self.ctime_ns,
            self.inode,
        )


@dataclass(frozen=True, slots=True)
class AppliedFiles:
    """Facts of every file a chunked apply left, by host path."""

    index_cid: str
    recorded_ns: int
    files: dict[str, AppliedFile] = field(default_factory=dict)

    def trusted(self, host_path: str) -> AppliedFile | None:
        """The fact for ``host_path`` if a later change would show in the stat."""
        fact = self.files.get(host_path)
        if fact is None or fact.ctime_ns >= self.recorded_ns - RACY_NS:
            return None
        return fact

    def save(self, path: Path) -> None:
        """Write atomically (temp file, fsync, rename), mode 0600.

        Raises:
            OSError: it could not be written (the caller logs it; the next apply reads
                and compares instead).
        """
        doc = {
            "format": FORMAT,
            "version": VERSION,
            "index_cid": self.index_cid,
            "recorded_ns": self.recorded_ns,
            "files": {
                p: [f.size, f.mtime_ns, f.ctime_ns, f.inode, f.content, f.entry_mtime_ns]
                for p, f in self.files.items()
            },
        }
        text = json.dumps(doc, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
        blob = zstandard.ZstdCompressor(level=K.ZSTD_LEVEL).compress(text.encode("utf-8"))
        path.parent.mkdir(parents=True, exist_ok=True)
        atomic_write_bytes(path, blob, mode=0o600)

    @classmethod
    def load(cls, path: Path) -> AppliedFiles | None:
        """The facts at ``path``, or None (logged) when missing or unusable. Never raises."""
        try:
            return cls._parse(path.read_bytes())
        except FileNotFoundError:
            return None
        except (OSError, ValueError, TypeError, KeyError, zstandard.ZstdError) as exc:
            _log.warning(
                "applied-file facts %s unusable, files are compared instead: %s", path, exc
            )
            return None

    @classmethod
    def _parse(cls, blob: bytes) -> AppliedFiles:
        if not 0 <= zstandard.frame_content_size(blob) <= MAX_BYTES:
            raise ValueError("facts file announces no size or an oversized one")
        doc: Any = json.loads(
            zstandard.ZstdDecompressor().decompress(blob, max_output_size=MAX_BYTES)
        )
        if doc.get("format") != FORMAT or doc.get("version") != VERSION:
            raise ValueError("not a version 1 applied-files file")
        files = {}
        for host, (size, mtime, ctime, inode, content, entry_mtime) in doc["files"].items():
            files[str(host)] = AppliedFile(
                int(size), int(mtime), int(ctime), int(inode), str(content), int(entry_mtime)
            )
        return cls(str(doc["index_cid"]), int(doc["recorded_ns"]), files)
