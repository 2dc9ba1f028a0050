"""Shared helpers for the chunked-snapshot tests: trees, sources, a sample index, comparison."""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

from container_apps.sync.chunks import constants as K
from container_apps.sync.chunks.index import ChunkRef, IndexEntry, SnapshotIndex
from container_apps.sync.chunks.writer import ChunkedSnapshotWriter
from container_apps.sync.paths import PathResolver, ResolvedPath
from container_apps.volumes.binding import VolumeBinding

from .random_data import MiB, random_bytes, text_bytes

PACK_A = "bafkreihdwdcefgh4dqkjv67uzcmw7ojee6xedzdetojuzjevtenxquvyku"
PACK_B = "bafkreie5737gdxlw5i64vzichcalba3z2v5n6icifvx5xytvske7mr3hpm"


def sample_index() -> SnapshotIndex:
    """A small index: dirs, an empty file, a non-ASCII name, chunks in two packs."""
    a1 = ChunkRef(PACK_A, 8, 100, 300, "a" * 64, True)
    b1 = ChunkRef(PACK_B, 8, 50, 50, "b" * 64, False)
    return SnapshotIndex(
        roots=("app/data",),
        entries=(
            IndexEntry("app/data", K.ENTRY_DIR, 0o755, 1_700_000_000_000_000_001),
            IndexEntry("app/data/f", K.ENTRY_FILE, 0o644, -5, 350, (a1, b1)),
            IndexEntry("app/data/empty", K.ENTRY_FILE, 0o600, 0, 0, ()),
            IndexEntry("app/data/é dir", K.ENTRY_DIR, 0o700, 7),
            IndexEntry("app/data/é dir/g", K.ENTRY_FILE, 0o4755, 9, 300, (a1,)),
        ),
    )


def volume(tmp_path: Path, name: str = "data") -> Path:
    root = tmp_path / "volumes" / name
    root.mkdir(parents=True)
    return root


def sources(root: Path, container_path: str = "/app/data") -> list[ResolvedPath]:
    """``root`` bound at ``container_path``, resolved for reading as a request would be."""
    binding = VolumeBinding("data", "fixed", root, container_path)
    return [PathResolver([binding]).resolve_for_read(container_path)]


def make_tree(root: Path) -> None:
    """A small tree: text and random files, an empty file, nested and empty dirs, modes."""
    (root / "docs" / "deep" / "er").mkdir(parents=True)
    (root / "empty-dir").mkdir()
    (root / "docs" / "readme.txt").write_bytes(text_bytes(300_000))
    (root / "docs" / "deep" / "random.bin").write_bytes(random_bytes(2 * MiB + 17))
    (root / "docs" / "deep" / "er" / "tiny").write_bytes(b"x")
    (root / "empty.file").write_bytes(b"")
    (root / "big.txt").write_bytes(text_bytes(3 * MiB, seed=9))
    os.chmod(root / "docs" / "readme.txt", 0o640)
    os.chmod(root / "docs" / "deep", 0o750)
    os.utime(root / "big.txt", ns=(1_600_000_000_123_456_789, 1_600_000_000_123_456_789))
    os.utime(root / "docs", ns=(1_500_000_000_000_000_001, 1_500_000_000_000_000_001))


def tree_state(root: Path) -> dict[str, tuple[str, int, int, str]]:
    """path -> (type, mode, mtime_ns, sha256 or "") for everything below ``root``."""
    out: dict[str, tuple[str, int, int, str]] = {}
    for dirpath, dirnames, filenames in os.walk(root):
        for name in dirnames + filenames:
            path = Path(dirpath) / name
            st = path.lstat()
            rel = str(path.relative_to(root))
            if path.is_dir():
                out[rel] = ("dir", st.st_mode & 0o7777, st.st_mtime_ns, "")
            else:
                digest = hashlib.sha256(path.read_bytes()).hexdigest()
                out[rel] = ("file", st.st_mode & 0o7777, st.st_mtime_ns, digest)
    return out


def writer(tmp_path: Path, name: str = "staging") -> ChunkedSnapshotWriter:
    return ChunkedSnapshotWriter(tmp_path / name)
