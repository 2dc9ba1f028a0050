"""A chunked capture restarts the provider's app once every file is read.

Pack hashes and the index are computed after the restart (``PackWriter``'s
``defer_hashing``, ``SnapshotCapture.stopped_until_read``), so they are not downtime;
the snapshot is still the stopped app's: what the app writes after its restart is not
in it.
"""

from __future__ import annotations

import random
from pathlib import Path
from typing import Any

from container_apps.sync import constants as C
from container_apps.sync.chunks.index_parse import parse_index
from container_apps.tests.support.provider_rig import NOW, make_rig

KIB = 1024


def test_the_app_restarts_before_packs_are_hashed_and_the_snapshot_is_the_stopped_apps(
    tmp_path: Path,
) -> None:
    data = tmp_path / "data"
    (data / "sub").mkdir(parents=True)
    for n in range(12):
        (data / "sub" / f"f{n}.bin").write_bytes(random.Random(n).randbytes(300 * KIB))
    rig = make_rig(
        tmp_path, data=data, archive_format=C.ARCHIVE_FORMAT_CHUNKED, compression_level=3
    )
    seen: dict[str, Any] = {}
    start = rig.containers.start

    def start_and_write() -> None:  # the app's first act after its restart
        packs = list(rig.work.rglob("packs/*"))
        seen["packs"] = sorted(p.name.startswith(".pack-") for p in packs)
        seen["index"] = list(rig.work.rglob("index/*"))
        start()
        (data / "sub" / "f0.bin").write_bytes(b"written after the restart")
        (data / "late.txt").write_text("too late")

    rig.containers.start = start_and_write  # type: ignore[method-assign]
    rig.request({"archive_paths": ["/app/data"]})
    outcome = rig.publisher.publish_pending(NOW)
    assert outcome is not None and outcome.status == "ok", rig.response()
    assert seen["packs"] and all(seen["packs"]), seen  # every pack still unhashed (tmp)
    assert seen["index"] == []
    assert rig.containers.calls.count("start") == 1
    assert outcome.cid is not None
    index = parse_index(rig.store.get(outcome.cid).read_bytes())
    paths = {e.path: e for e in index.entries}
    assert "app/data/late.txt" not in paths
    assert paths["app/data/sub/f0.bin"].size == 300 * KIB
