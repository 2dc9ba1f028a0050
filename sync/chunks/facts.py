"""Provider-local change facts: what each file looked like when the last index was made.

The writer re-reads a file only if its size, mtime_ns, ctime_ns or inode differ from
these facts (restic's rule; the app can set mtime but not ctime). They are kept in a
file on the provider, not in the index, by choice:

- consumers never see host inode numbers or ctimes, and the index (hence its CID)
  depends only on what a consumer applies;
- the facts name the index CID they describe, so facts that belong to another index
  (a lost or stale file, a restored data dir) are ignored, and a missing or unreadable
  facts file only costs a full re-read, never a wrong snapshot: an unchanged chunk is
  still found by its digest and not stored again.

File format: zstd-compressed JSON ``{"format": "car-chunked-source-facts", "version":
1, "index_cid": "bafkrei…", "files": {"app/data/f": [size, mtime_ns, ctime_ns,
inode], …}}`` (docs/FORMAT.md).
"""

from __future__ import annotations

import json
import logging
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import zstandard

from ...fsutil import atomic_write_bytes
from . import constants as K

_log = logging.getLogger(__name__)
MAX_FACTS_BYTES = 512 * K.MIB


@dataclass(frozen=True, slots=True)
class FileFacts:
    """The stat fields that tell whether a file may have changed."""

    size: int
    mtime_ns: int
    ctime_ns: int
    inode: int

    @classmethod
    def of(cls, st: os.stat_result) -> FileFacts:
        return cls(st.st_size, st.st_mtime_ns, st.st_ctime_ns, st.st_ino)


@dataclass(frozen=True, slots=True)
class SourceFacts:
    """Facts of every file in the index ``index_cid``, by index path."""

    index_cid: str
    files: dict[str, FileFacts] = field(default_factory=dict)

    def save(self, path: Path) -> None:
        """Write atomically (temp file, fsync, rename) next to ``path``."""
        doc = {
            "format": K.FACTS_FORMAT,
            "version": K.FACTS_VERSION,
            "index_cid": self.index_cid,
            "files": {p: [f.size, f.mtime_ns, f.ctime_ns, f.inode] for p, f in self.files.items()},
        }
        text = json.dumps(doc, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
        blob = zstandard.ZstdCompressor(level=K.ZSTD_LEVEL).compress(text.encode("utf-8"))
        atomic_write_bytes(path, blob, mode=0o600)

    @classmethod
    def load(cls, path: Path, *, index_cid: str) -> SourceFacts | None:
        """The facts at ``path`` if they describe ``index_cid``; None otherwise.

        Never raises: missing, unreadable, foreign or stale facts mean "re-read every
        file" (logged with the reason), which is always correct.
        """
        try:
            facts = cls._parse(path.read_bytes())
        except FileNotFoundError:
            return None
        except (
            OSError,
            ValueError,
            TypeError,
            KeyError,
            AttributeError,
            zstandard.ZstdError,
        ) as exc:
            _log.warning("chunk source facts %s unusable, re-reading every file: %s", path, exc)
            return None
        if facts.index_cid != index_cid:
            _log.info("chunk source facts %s describe another index; re-reading every file", path)
            return None
        return facts

    @classmethod
    def _parse(cls, blob: bytes) -> SourceFacts:
        if not 0 <= zstandard.frame_content_size(blob) <= MAX_FACTS_BYTES:
            raise ValueError("facts file announces no size or an oversized one")
        dctx = zstandard.ZstdDecompressor()
        doc: Any = json.loads(dctx.decompress(blob, max_output_size=MAX_FACTS_BYTES))
        if doc.get("format") != K.FACTS_FORMAT or doc.get("version") != K.FACTS_VERSION:
            raise ValueError("not a version 1 facts file")
        files = {p: FileFacts(*(int(v) for v in fs)) for p, fs in doc["files"].items()}
        return cls(str(doc["index_cid"]), files)
