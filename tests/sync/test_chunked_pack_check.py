"""The provider confirms the previous snapshot's packs exist before reusing its chunks.

A pack gone from the store (deleted by hand, a GC of another tool, a damaged disk) would
otherwise make the next snapshot name chunks nobody can fetch: a wrong snapshot. With
one pack missing, the provider makes a full snapshot, says why, and a consumer applies it.
Real ``file://`` store.
"""

from __future__ import annotations

import logging
import random
from pathlib import Path
from typing import Any

import pytest
from container_apps.stores.local import FileBlobStore
from container_apps.sync import constants as C
from container_apps.sync.chunks.index_parse import parse_index
from container_apps.tests.support.consumer_rig import KEY, make_env
from container_apps.tests.support.provider_rig import NOW, Rig, make_rig

KIB = 1024


def _provider(tmp: Path, store: FileBlobStore) -> Rig:
    data = tmp / "data"
    (data / "sub").mkdir(parents=True)
    for n in range(6):
        (data / "sub" / f"f{n}.bin").write_bytes(random.Random(n).randbytes(300 * KIB))
    (data / "notes.txt").write_text("notes\n")
    return make_rig(tmp, store=store, data=data, archive_format=C.ARCHIVE_FORMAT_CHUNKED)


def _publish(rig: Rig, now: float) -> str:
    rig.request({"archive_paths": ["/app/data"]})
    outcome = rig.publisher.publish_pending(now)
    assert outcome is not None and outcome.status == "ok", rig.response()
    assert outcome.cid is not None
    return outcome.cid


@pytest.mark.parametrize("damage", ["deleted", "truncated"])
def test_a_missing_pack_of_the_previous_snapshot_makes_a_full_one_a_consumer_applies(
    tmp_path: Path, caplog: Any, damage: str
) -> None:
    store = FileBlobStore.from_url(f"file://{tmp_path}/blobs", cache_dir=tmp_path / "cache")
    rig = _provider(tmp_path / "p", store)
    first = _publish(rig, NOW)
    [pack] = parse_index((store.directory / first).read_bytes()).packs()
    if damage == "deleted":
        (store.directory / pack).unlink()
    else:  # a pack that lost its head is no pack either
        (store.directory / pack).write_bytes(b"CAR")
    (rig.data / "notes.txt").write_text("changed\n")
    caplog.set_level(logging.INFO)
    second = _publish(rig, NOW + 10)
    assert "full capture" in caplog.text and pack in caplog.text
    for needed in parse_index((store.directory / second).read_bytes()).packs():
        assert (store.directory / needed).read_bytes()[:8] == b"CARPACK1"

    (tmp_path / "c").mkdir()
    env = make_env(tmp_path / "c", store=store)
    env.registry.hset(C.CHAINSTORE_HKEY, KEY, rig.registry.inner.hget(C.CHAINSTORE_HKEY, "key-1"))
    outcome = env.consumer.tick(NOW + 20)
    assert outcome is not None and outcome.applied, outcome
    for path in rig.data.rglob("*"):
        if path.is_file():
            assert (env.volume / path.relative_to(rig.data)).read_bytes() == path.read_bytes()
