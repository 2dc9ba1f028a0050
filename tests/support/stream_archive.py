"""One Docker ``get_archive`` stream -> a snapshot archive, as an online capture writes it.

``SnapshotCapture`` feeds each path's stream to ``ArchiveWriter.add_stream`` inside one
writer; the archive tests exercise that re-rooting on a single stream without Docker.
"""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path

from container_apps.sync.archive import ArchiveInfo, ArchiveWriter


def archive_from_stream(
    chunks: Iterable[bytes], container_path: str, dest: Path, *, fmt: str, level: int
) -> ArchiveInfo:
    """Re-root the tar stream ``chunks`` (a ``get_archive`` of ``container_path``) at ``dest``.

    Raises:
        SyncError: stage ``archive_build``; ``dest`` does not exist afterwards.
    """
    with ArchiveWriter(dest, fmt=fmt, level=level) as writer:
        writer.add_stream(chunks, container_path)
        return writer.finish()
