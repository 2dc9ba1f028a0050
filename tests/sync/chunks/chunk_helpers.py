"""Shared helpers for the chunked-snapshot tests: data, trees, sources, tree comparison."""

from __future__ import annotations

import hashlib
import os
import random
from pathlib import Path

from container_apps.sync.chunks.writer import ChunkedSnapshotWriter
from container_apps.sync.paths import PathResolver, ResolvedPath
from container_apps.volumes.binding import VolumeBinding

MiB = 1024 * 1024


def random_bytes(size: int, seed: int = 1) -> bytes:
    """Deterministic incompressible bytes (so tests do not depend on os.urandom)."""
    return random.Random(seed).randbytes(size)


def text_bytes(size: int, seed: int = 2) -> bytes:
    """Deterministic compressible text."""
    rng = random.Random(seed)
    words = [b"alpha", b"beta", b"gamma", b"delta", b"epsilon", b"zeta", b"eta", b"theta"]
    line = b" ".join(rng.choice(words) for _ in range(16)) + b"\n"
    return (line * (size // len(line) + 1))[:size]


def write_random_file(path: Path, size: int, seed: int = 3) -> Path:
    """A big random file written in 1 MiB blocks (no big buffer in the test itself)."""
    rng = random.Random(seed)
    with open(path, "wb") as out:
        left = size
        while left:
            n = min(left, MiB)
            out.write(rng.randbytes(n))
            left -= n
    return path


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
