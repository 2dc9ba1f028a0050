"""A chunked snapshot applied into a (loop) volume whose new files are staged in it.

``publish`` puts a chunked snapshot of a provider tree into a ``file://`` store and a
``sqlite://`` registry under TMP; ``consumer`` builds a consumer of it on VOLUME (the
same in a test and in a killed child, ``python -m
container_apps.tests.support.volume_stage_rig TMP VOLUME POINT``). The child applies
the snapshot and pauses for the kill at POINT:

- ``staged``: the files are staged in the volume, the app is stopped, no commit yet;
- ``rename_<n>``: right before the n-th staged file is renamed into place (its old
  file, if any, already moved to the backup dir);
- ``op_<n>``: after journal operation n;
- ``committed``: the journal says committed; backups and staging not removed yet.
"""

from __future__ import annotations

import hashlib
import logging
import os
import random
import stat
import sys
from pathlib import Path
from typing import Any

from container_apps.registries.factory import open_registry
from container_apps.stores.factory import open_store
from container_apps.sync import constants as C
from container_apps.sync.apply import StepHook
from container_apps.sync.chunked_apply import ChunkedApplyTransaction
from container_apps.sync.consumer import ConsumerSettings, SnapshotConsumer
from container_apps.sync.paths import PathResolver
from container_apps.sync.record_source import RecordSource
from container_apps.sync.volume_staging import STAGE_DIR_NAME
from container_apps.volumes.binding import VolumeBinding

from .fakes import FakeContainers
from .provider_rig import NOW, make_rig
from .sigkill import pause

LOG = logging.getLogger("test.volume_stage")
KIB = 1024


def seed_provider(data: Path, files: int = 6, size: int = 200 * KIB) -> None:
    """The provider's tree: random files in a subdirectory, a text file, an empty one."""
    (data / "sub").mkdir(parents=True, exist_ok=True)
    for n in range(files):
        (data / "sub" / f"f{n}.bin").write_bytes(random.Random(n).randbytes(size))
    (data / "notes.txt").write_text("notes\n" * 100)
    (data / "empty").write_bytes(b"")


def seed_consumer(volume: Path) -> None:
    """What the consumer's volume holds before: two snapshot paths with old bytes, its own file."""
    (volume / "sub").mkdir(exist_ok=True)
    (volume / "sub" / "f1.bin").write_bytes(b"old one")
    (volume / "notes.txt").write_text("old notes")
    (volume / "local-only.txt").write_text("the consumer's own")


def publish(tmp: Path, data: Path, fmt: str = C.ARCHIVE_FORMAT_CHUNKED) -> str:
    """A snapshot of ``data`` (as ``/app/data``) in TMP's store; its CID."""
    rig_dir = tmp / "provider"
    rig_dir.mkdir(exist_ok=True)
    rig = make_rig(
        rig_dir,
        store=open_store(f"file://{tmp / 'blobs'}", cache_dir=tmp / "p-cache"),
        registry=open_registry(f"sqlite:///{tmp / 'registry.sqlite'}"),
        data=data,
        archive_format=fmt,
    )
    rig.request({"archive_paths": ["/app/data"]})
    outcome = rig.publisher.publish_pending(NOW)
    assert outcome is not None and outcome.status == "ok", rig.response()
    assert outcome.cid is not None
    return outcome.cid


def consumer(
    tmp: Path, volume: Path, on_step: StepHook | None = None
) -> tuple[SnapshotConsumer, FakeContainers]:
    """A consumer of TMP's snapshots writing ``/app/data`` into ``volume``."""
    store = open_store(f"file://{tmp / 'blobs'}", cache_dir=tmp / "c-cache")
    registry = open_registry(f"sqlite:///{tmp / 'registry.sqlite'}")
    resolver = PathResolver([VolumeBinding("c", "fixed", volume, "/app/data")])
    base = tmp / "consumer"
    settings = ConsumerSettings(base / "state", base / "control", base / "hist")
    settings.control_dir.mkdir(parents=True, exist_ok=True)
    containers = FakeContainers()
    source = RecordSource(registry, "key-1", 60.0, LOG)
    made = SnapshotConsumer(settings, source, store, containers, resolver, LOG, on_step=on_step)
    return made, containers


def tree(root: Path) -> dict[str, tuple[Any, ...]]:
    """path -> (kind, mode, sha256) below ``root`` (what the app sees)."""
    out: dict[str, tuple[Any, ...]] = {}
    for path in root.rglob("*"):
        st = path.lstat()
        rel = str(path.relative_to(root))
        if stat.S_ISDIR(st.st_mode):
            out[rel] = ("dir", stat.S_IMODE(st.st_mode), "")
        else:
            digest = hashlib.sha256(path.read_bytes()).hexdigest()
            out[rel] = ("file", stat.S_IMODE(st.st_mode), digest)
    return out


def staged_inodes(volume: Path) -> dict[str, int]:
    """Inode of every file in the volume's staging dir (empty if there is none)."""
    folder = volume / STAGE_DIR_NAME
    if not folder.is_dir():
        return {}
    return {p.name: p.lstat().st_ino for p in folder.iterdir()}


def _install_pause(tmp: Path, point: str) -> StepHook | None:
    if point == "staged":
        ChunkedApplyTransaction.commit = lambda self: pause(tmp)  # type: ignore[method-assign]
    elif point == "committed":
        ChunkedApplyTransaction.finish = lambda self: pause(tmp)  # type: ignore[assignment,method-assign,return-value]
    elif point.startswith("rename_"):
        wanted, seen = int(point[7:]), [0]
        real_rename = os.rename

        def rename(src: Any, dst: Any, *args: Any, **kw: Any) -> None:
            if STAGE_DIR_NAME in str(src):
                seen[0] += 1
                if seen[0] == wanted:
                    pause(tmp)
            real_rename(src, dst, *args, **kw)

        os.rename = rename  # type: ignore[assignment]
    elif point.startswith("op_"):
        index = int(point[3:])
        return lambda i: pause(tmp) if i == index else None
    else:
        raise ValueError(point)
    return None


def child_apply(tmp: Path, volume: Path, point: str) -> None:
    """Runs in a subprocess: apply TMP's snapshot into ``volume`` until ``point``."""
    made, _ = consumer(tmp, volume, _install_pause(tmp, point))
    made.tick(NOW + 1)
    raise SystemExit(f"the apply never reached {point}")


if __name__ == "__main__":
    child_apply(Path(sys.argv[1]), Path(sys.argv[2]), sys.argv[3])
