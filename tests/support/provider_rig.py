"""Shared rig for the provider tests: a SnapshotPublisher on memory backends and fakes."""

from __future__ import annotations

import io
import json
import os
import tarfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import zstandard
from container_apps.registries.memory import MemoryRegistry
from container_apps.stores.memory import MemoryBlobStore
from container_apps.sync import constants as C
from container_apps.sync.chunked_publish import ChunkedSnapshotPublisher
from container_apps.sync.control_files import ControlDir
from container_apps.sync.history import HistoryLog
from container_apps.sync.paths import PathResolver
from container_apps.sync.provider import PublisherConfig, PublishTargets, SnapshotPublisher
from container_apps.tests.support.fakes import FakeClock, FakeContainers
from container_apps.tests.support.faults import FaultyBlobStore, FaultyRegistry
from container_apps.volumes.binding import VolumeBinding

NOW = 1_764_300_000.5


class JournalStore(FaultyBlobStore):
    """FaultyBlobStore that also writes "put"/"delete" into a shared call journal."""

    def __init__(self, inner: Any, journal: list[str], faults: Any = None) -> None:
        super().__init__(inner, faults)
        self.journal = journal

    def put(self, src: Path, *, progress: Any = None) -> str:
        self.journal.append("put")
        assert src.exists()
        return super().put(src, progress=progress)


@dataclass
class Rig:
    publisher: SnapshotPublisher
    control_dir: Path
    data: Path
    work: Path
    store: Any
    registry: Any
    history: HistoryLog
    containers: FakeContainers
    journal: list[str]

    def request(self, body: Any) -> None:
        text = body if isinstance(body, str) else json.dumps(body)
        (self.control_dir / C.REQUEST_FILE).write_text(text)

    def response(self) -> dict[str, Any]:
        return json.loads((self.control_dir / C.RESPONSE_FILE).read_text())

    def invalid(self) -> dict[str, Any]:
        return json.loads((self.control_dir / C.INVALID_FILE).read_text())

    def record(self) -> dict[str, Any]:
        raw = self.registry.inner.hget(C.CHAINSTORE_HKEY, "key-1")
        return json.loads(raw)


def make_rig(
    tmp_path: Path,
    *,
    store: Any = None,
    store_faults: Any = None,
    registry: Any = None,
    data: Path | None = None,
    bindings: list[VolumeBinding] | None = None,
    monotonic: Callable[[], float] | None = None,
    publisher_cls: type[SnapshotPublisher] = SnapshotPublisher,
    **cfg: Any,
) -> Rig:
    control_dir = tmp_path / "volume-sync"
    control_dir.mkdir(exist_ok=True)  # a second rig on the same dirs is a restart
    if data is None and not (tmp_path / "data").exists():
        data = tmp_path / "data"
        (data / "sub").mkdir(parents=True)
        (data / "a.txt").write_text("alpha")
        (data / "sub" / "b.txt").write_text("beta")
    data = data or tmp_path / "data"
    journal: list[str] = []
    store = JournalStore(store or MemoryBlobStore(tmp_path / "cache"), journal, store_faults)
    registry = registry or FaultyRegistry(MemoryRegistry())
    history = HistoryLog(tmp_path / "history" / "sent")
    containers = FakeContainers(journal)
    work = tmp_path / "work"
    cfg = {"state_dir": tmp_path / "state", **cfg}  # a test may point it into a data dir
    config = PublisherConfig(sync_key="key-1", node_id="node-a", work_dir=work, **cfg)
    resolver = PathResolver(bindings or [VolumeBinding("data", "fixed", data, "/app/data")])
    if cfg.get("archive_format") == C.ARCHIVE_FORMAT_CHUNKED:
        publisher_cls = ChunkedSnapshotPublisher
    publisher = publisher_cls(
        config,
        ControlDir(control_dir, "node-a", FakeClock(NOW + 1)),
        resolver,
        containers,
        PublishTargets(store, registry, history),
        **({"monotonic": monotonic} if monotonic is not None else {}),
    )
    return Rig(publisher, control_dir, data, work, store, registry, history, containers, journal)


def archive_names(path: Path, fmt: str = C.ARCHIVE_FORMAT_ZST) -> list[str]:
    if fmt == C.ARCHIVE_FORMAT_GZ:
        with tarfile.open(path, "r:gz") as tar:
            return tar.getnames()
    data = zstandard.ZstdDecompressor().decompressobj().decompress(path.read_bytes())
    with tarfile.open(fileobj=io.BytesIO(data), mode="r:") as tar:
        return tar.getnames()


def assert_clean(rig: Rig) -> None:
    assert not os.path.lexists(rig.control_dir / C.REQUEST_FILE)
    assert not os.path.lexists(rig.control_dir / C.PROCESSING_FILE)
    assert not rig.work.exists() or list(rig.work.iterdir()) == []
