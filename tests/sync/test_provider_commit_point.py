"""SPEC §7.4 edge cases of the publish commit point, on the memory backends.

The failure path of the commit point deletes the uploaded blob best-effort. Stores are
content-addressed, so "the uploaded blob" can be the very blob the registry's current
record names (the app asked again without changing its data): that blob must survive.
"""

from __future__ import annotations

import json
from pathlib import Path

from container_apps.errors import RegistryUnavailable
from container_apps.registries.memory import MemoryRegistry
from container_apps.sync import constants as C
from container_apps.tests.faults import FaultyRegistry
from container_apps.tests.sync.test_provider import NOW, make_rig


def test_failed_republish_of_unchanged_data_keeps_the_published_blob(tmp_path: Path) -> None:
    inner = MemoryRegistry()
    # The first publish goes through; the second finds the registry down for both
    # the hset and the one re-read.
    registry = FaultyRegistry(
        inner, {"hset": [None, RegistryUnavailable("down")], "hget": [RegistryUnavailable("down")]}
    )
    rig = make_rig(tmp_path, registry=registry)
    rig.request({"archive_paths": ["/app/data"]})
    first = rig.publisher.publish_pending(NOW)
    assert first is not None and first.status == "ok" and first.cid
    rig.request({"archive_paths": ["/app/data"]})
    second = rig.publisher.publish_pending(NOW + 10)
    assert second is not None and second.stage == C.STAGE_CHAINSTORE_PUBLISH
    registry.assert_all_faults_fired()
    # The registry still names the first CID, so its blob must still be there.
    assert json.loads(inner.hget(C.CHAINSTORE_HKEY, "key-1") or "")["cid"] == first.cid
    assert first.cid in rig.store.inner.cids()
    assert rig.store.inner.get(first.cid).exists()


def test_failed_publish_of_new_data_still_deletes_its_blob(tmp_path: Path) -> None:
    registry = FaultyRegistry(MemoryRegistry(), {"hset": [None, RegistryUnavailable("down")]})
    rig = make_rig(tmp_path, registry=registry)
    rig.request({"archive_paths": ["/app/data"]})
    first = rig.publisher.publish_pending(NOW)
    assert first is not None and first.cid
    (rig.data / "a.txt").write_text("changed")
    rig.request({"archive_paths": ["/app/data"]})
    second = rig.publisher.publish_pending(NOW + 10)
    assert second is not None and second.stage == C.STAGE_CHAINSTORE_PUBLISH
    registry.assert_all_faults_fired()
    assert rig.store.inner.cids() == {first.cid}  # only the new, unpublished blob went
