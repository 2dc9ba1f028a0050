"""Test helpers for the consumer: snapshots made with plain ``tarfile``, records, a wired consumer.

Snapshots are built exactly as docs/FORMAT.md ("Snapshot archive") describes, with nothing
from the provider code: member names are container paths without the leading "/",
directories are members, and the record is written by hand. That makes every consumer test
an interop test as well.
"""

from __future__ import annotations

import hashlib
import io
import logging
import os
import stat
import tarfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import zstandard
from container_apps.layout import InstancePaths
from container_apps.registries.memory import MemoryRegistry
from container_apps.stores.cid import cid_from_sha256
from container_apps.stores.memory import MemoryBlobStore
from container_apps.sync import constants as C
from container_apps.sync.consumer import ConsumerSettings, SnapshotConsumer
from container_apps.sync.crypto.framing import Sealer
from container_apps.sync.paths import PathResolver
from container_apps.sync.preflight import ConsumerLimits
from container_apps.sync.record_source import RecordSource
from container_apps.sync.records import SyncRecord, parse_record
from container_apps.sync.signing import RecordVerifier
from container_apps.tests.support.fakes import FakeContainers
from container_apps.volumes.binding import VolumeBinding

KEY = "test-key"
MOUNT = "/app/data"
LOG = logging.getLogger("test.consumer")


@dataclass
class Entry:
    """One archive member: a dir (data None) or a file; or a symlink (link set)."""

    name: str
    data: bytes | None = None
    mode: int = 0o644
    mtime: float = 1_700_000_000.0
    link: str | None = None
    kind: bytes | None = None  # raw tarfile type override (FIFO, LNKTYPE ...)
    pax: dict[str, str] | None = None  # raw PAX header records ("mtime": "nan", ...)
    raw_mode: int | None = None  # a mode tarfile cannot write: base-256 in the header


def d(name: str, mode: int = 0o755, mtime: float = 1_700_000_000.0) -> Entry:
    return Entry(name, None, mode, mtime)


def f(name: str, data: bytes, mode: int = 0o644, mtime: float = 1_700_000_000.0) -> Entry:
    return Entry(name, data, mode, mtime)


def build_snapshot(path: Path, entries: list[Entry], fmt: str = C.ARCHIVE_FORMAT_ZST) -> Path:
    """Write a POSIX tar of ``entries`` compressed as ``fmt`` to ``path``."""
    raw = io.BytesIO()
    patches: list[tuple[int, int]] = []  # (header offset, mode) for raw_mode entries
    with tarfile.open(fileobj=raw, mode="w", format=tarfile.PAX_FORMAT) as tar:
        for e in entries:
            info = tarfile.TarInfo(e.name)
            info.mode = e.mode
            info.mtime = int(e.mtime)
            if e.pax:
                info.pax_headers = dict(e.pax)
            if e.raw_mode is not None:
                assert not e.pax, "raw_mode patches the first header of the member"
                patches.append((tar.offset, e.raw_mode))
            if e.link is not None:
                info.type = tarfile.SYMTYPE
                info.linkname = e.link
                tar.addfile(info)
            elif e.kind is not None:
                info.type = e.kind
                tar.addfile(info)
            elif e.data is None:
                info.type = tarfile.DIRTYPE
                tar.addfile(info)
            else:
                info.size = len(e.data)
                tar.addfile(info, io.BytesIO(e.data))
    data = bytearray(raw.getvalue())
    for offset, mode in patches:
        _patch_mode(data, offset, mode)
    return write_compressed(path, bytes(data), fmt)


def write_compressed(path: Path, tar_bytes: bytes, fmt: str = C.ARCHIVE_FORMAT_ZST) -> Path:
    """Compress raw tar bytes as ``fmt`` into ``path``."""
    if fmt == C.ARCHIVE_FORMAT_ZST:
        path.write_bytes(zstandard.ZstdCompressor(level=3).compress(tar_bytes))
    else:
        import gzip

        path.write_bytes(gzip.compress(tar_bytes))
    return path


def _patch_mode(data: bytearray, offset: int, mode: int) -> None:
    """Write ``mode`` base-256 (GNU) into the ustar header at ``offset``; fix the checksum.

    tarfile reads base-256 numbers in any field (``nti``), so a hostile archive can
    carry a negative or huge mode that tarfile itself would never write.
    """
    header = data[offset : offset + 512]
    field = bytearray((mode % (1 << 56)).to_bytes(7, "big"))
    header[100:108] = (b"\xff" if mode < 0 else b"\x80") + bytes(field)
    header[148:156] = b" " * 8
    header[148:156] = b"%06o\0 " % sum(header)
    data[offset : offset + 512] = header


def make_record(
    archive: Path,
    *,
    archive_paths: tuple[str, ...] = (MOUNT + "/",),
    fmt: str = C.ARCHIVE_FORMAT_ZST,
    node_id: str = "provider-1",
    version: int = 1_764_300_000,
    with_sha: bool = True,
    manifest_extra: dict[str, Any] | None = None,
    record_extra: dict[str, Any] | None = None,
) -> SyncRecord:
    """A record for ``archive`` written by hand as JSON and parsed like a consumer would."""
    data = archive.read_bytes()
    sha = hashlib.sha256(data).hexdigest()
    manifest: dict[str, Any] = {
        "schema_version": 1,
        "archive_paths": list(archive_paths),
        "archive_format": fmt,
        "archive_size_bytes": len(data),
        "encryption": "r1fs-default",
        "runtime": {"provider_capture": "offline", "consumer_apply": "offline_restart"},
    }
    if with_sha:
        manifest["archive_sha256"] = sha
    manifest.update(manifest_extra or {})
    record: dict[str, Any] = {
        "cid": cid_from_sha256(bytes.fromhex(sha)),
        "version": version,
        "timestamp": version + 0.5,
        "node_id": node_id,
        "metadata": {"epoch": 1},
        "runtime": {"provider_capture": "offline", "consumer_apply": "offline_restart"},
        "manifest": manifest,
    }
    record.update(record_extra or {})
    import json

    return parse_record(json.dumps(record))


@dataclass
class Env:
    """A consumer wired to memory backends, fake containers and one volume."""

    tmp: Path
    volume: Path
    store: Any  # MemoryBlobStore unless make_env was given another store
    registry: MemoryRegistry
    containers: FakeContainers
    consumer: SnapshotConsumer
    settings: ConsumerSettings
    resolver: PathResolver
    extra: dict[str, Any] = field(default_factory=dict)

    def publish(self, archive: Path, record: SyncRecord) -> None:
        cid = self.store.put(archive)
        assert cid == record.cid or not record.cid.startswith("bafkrei")
        self.registry.hset(C.CHAINSTORE_HKEY, KEY, record.to_json())

    def publish_raw(self, archive: Path, record_json: str) -> None:
        self.store.put(archive)
        self.registry.hset(C.CHAINSTORE_HKEY, KEY, record_json)


def make_env(
    tmp: Path,
    volume: Path | None = None,
    *,
    limits: ConsumerLimits | None = None,
    running: bool = True,
    hsync_interval: float = 60.0,
    registry: Any = None,
    on_step: Any = None,
    paths: InstancePaths | None = None,
    store: Any = None,
    apply_mode: str = C.APPLY_MODE_OVERLAY,
    verifier: RecordVerifier | None = None,
    sealer: Sealer | None = None,
) -> Env:
    """Wire a SnapshotConsumer for a volume bound at /app/data.

    With ``paths`` its state, history and control dir are that instance's (so
    ``car sync status`` reads them), else they live directly under ``tmp``.
    """
    if volume is None:
        volume = tmp / "volume"
        volume.mkdir()
    binding = VolumeBinding("data", "legacy", volume, MOUNT)
    resolver = PathResolver([binding])
    settings = ConsumerSettings(
        sync_state_dir=paths.sync_state if paths else tmp / "sync_state",
        control_dir=_mkdir(paths.volume_sync_dir if paths else tmp / "control"),
        history_dir=paths.history_received if paths else tmp / "history" / "received",
        limits=limits or ConsumerLimits(),
        apply_mode=apply_mode,
        verifier=verifier,
        sealer=sealer,
    )
    store = store if store is not None else MemoryBlobStore(tmp / "cache")
    reg = registry if registry is not None else MemoryRegistry()
    containers = FakeContainers(running=running)
    source = RecordSource(reg, KEY, hsync_interval, LOG)
    consumer = SnapshotConsumer(settings, source, store, containers, resolver, LOG, on_step=on_step)
    env = Env(tmp, volume, store, reg, containers, consumer, settings, resolver)
    return env


def _mkdir(path: Path) -> Path:
    path.mkdir(parents=True, exist_ok=True)
    return path


def tree(root: Path) -> dict[str, tuple[str, bytes | str, int]]:
    """{relative path: (type, content or link target, permission bits)} of a directory."""
    out: dict[str, tuple[str, bytes | str, int]] = {}
    for dirpath, dirnames, filenames in os.walk(root):
        for name in dirnames + filenames:
            full = Path(dirpath) / name
            rel = str(full.relative_to(root))
            st = os.lstat(full)
            if stat.S_ISLNK(st.st_mode):
                out[rel] = ("link", os.readlink(full), 0)
            elif stat.S_ISDIR(st.st_mode):
                out[rel] = ("dir", b"", stat.S_IMODE(st.st_mode))
            else:
                out[rel] = ("file", full.read_bytes(), stat.S_IMODE(st.st_mode))
    return out


def leftovers(root: Path) -> list[str]:
    """Runner files in a volume: per-apply backup dirs and temp files."""
    found = []
    for dirpath, dirnames, filenames in os.walk(root):
        for name in dirnames + filenames:
            if name.startswith((".car-sync-", ".journal")) or name.endswith(".tmp"):
                found.append(str(Path(dirpath, name).relative_to(root)))
    return found


def seed_old(volume: Path) -> None:
    """Old content the snapshot partly replaces."""
    (volume / "keep.txt").write_bytes(b"kept")
    (volume / "replace.txt").write_bytes(b"old bytes")
    (volume / "sub").mkdir()
    (volume / "sub" / "old.bin").write_bytes(b"\x00old")


def new_entries() -> list[Entry]:
    return [
        d("app/data"),
        f("app/data/replace.txt", b"new bytes", 0o600, 1_600_000_000),
        d("app/data/sub", 0o700, 1_600_000_100),
        f("app/data/sub/new.bin", b"\x01new" * 1000, 0o4755, 1_600_000_200),
        d("app/data/fresh", 0o755),
        f("app/data/fresh/a.txt", b"a"),
    ]
