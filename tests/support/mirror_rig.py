"""Volumes and snapshots for mirror-mode tests (``tests/sync/test_mirror.py``).

A consumer volume holding a database, a stale SQLite ``-wal`` beside it, an old
directory and links pointing outside the volume; snapshots (tar and chunked) that hold
the new database only; and ``full_tree``, which compares entries byte for byte with
their modes and nanosecond mtimes.
"""

from __future__ import annotations

import os
import stat
from pathlib import Path
from typing import Any

from container_apps.stores.memory import MemoryBlobStore
from container_apps.sync import constants as C

from .consumer_rig import KEY, Env, build_snapshot, d, f, make_record
from .provider_rig import NOW, make_rig

OLD_MTIME_NS = 1_650_000_000_123_456_789


def full_tree(root: Path) -> dict[str, tuple[str, bytes | str, int, int]]:
    """{relative path: (type, content or link target, permission bits, mtime_ns)}."""
    out: dict[str, tuple[str, bytes | str, int, int]] = {}
    for dirpath, dirnames, filenames in os.walk(root):
        for name in dirnames + filenames:
            full = Path(dirpath) / name
            st = os.lstat(full)
            mode, mtime = stat.S_IMODE(st.st_mode), st.st_mtime_ns
            rel = str(full.relative_to(root))
            if stat.S_ISLNK(st.st_mode):
                out[rel] = ("link", os.readlink(full), 0, mtime)
            elif stat.S_ISDIR(st.st_mode):
                out[rel] = ("dir", b"", mode, mtime)
            else:
                out[rel] = ("file", full.read_bytes(), mode, mtime)
    return out


def seed_stale(volume: Path, outside: Path) -> None:
    """An old database with its stale ``-wal``, an old dir, links to ``outside``."""
    outside.mkdir(parents=True, exist_ok=True)
    (outside / "target.txt").write_bytes(b"outside, never touched")
    (volume / "app.db").write_bytes(b"old database")
    (volume / "app.db-wal").write_bytes(b"stale write-ahead log")
    os.chmod(volume / "app.db-wal", 0o640)
    (volume / "old-dir" / "deeper").mkdir(parents=True)
    (volume / "old-dir" / "deeper" / "x.bin").write_bytes(os.urandom(5000))
    (volume / "sub").mkdir()
    (volume / "sub" / "old.txt").write_bytes(b"old")
    os.symlink(outside / "target.txt", volume / "out-link")
    os.symlink(outside, volume / "out-dir")
    for path in sorted(volume.rglob("*"), key=lambda p: -len(p.parts)):
        if path.name != "lost+found":
            os.utime(path, ns=(OLD_MTIME_NS, OLD_MTIME_NS), follow_symlinks=False)


# What a mirror apply of the snapshot leaves (besides lost+found on a loop volume).
MIRRORED = {"app.db", "sub", "sub/keep.txt"}
NEW_DB = b"new database"


def publish_tar(env: Env) -> None:
    entries = [
        d("app/data"),
        f("app/data/app.db", NEW_DB),
        d("app/data/sub"),
        f("app/data/sub/keep.txt", b"keep"),
    ]
    archive = build_snapshot(env.tmp / "snap.tar.zst", entries)
    env.publish(archive, make_record(archive))


def publish_chunked(env: Env, tmp: Path) -> None:
    """Publish the same snapshot from a real chunked provider into ``env``'s store."""
    data = tmp / "p-data"
    (data / "sub").mkdir(parents=True)
    (data / "app.db").write_bytes(NEW_DB)
    (data / "sub" / "keep.txt").write_bytes(b"keep")
    (tmp / "provider").mkdir()
    rig = make_rig(
        tmp / "provider", store=env.store, data=data, archive_format=C.ARCHIVE_FORMAT_CHUNKED
    )
    rig.request({"archive_paths": ["/app/data"]})
    outcome = rig.publisher.publish_pending(NOW)
    assert outcome is not None and outcome.status == "ok", rig.response()
    raw: Any = rig.registry.inner.hget(C.CHAINSTORE_HKEY, "key-1")
    env.registry.hset(C.CHAINSTORE_HKEY, KEY, raw)


def chunked_store(tmp: Path) -> MemoryBlobStore:
    return MemoryBlobStore(tmp / "blobs")
