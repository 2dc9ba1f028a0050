"""Edge cases of the publish commit point (README, "Provider"), on the memory backends.

The failure path of the commit point deletes the uploaded blob best-effort. Stores are
content-addressed, so "the uploaded blob" can be the very blob the registry's current
record names (the app asked again without changing its data): that blob must survive.
These tests turn the retry window off (``publish_retry_seconds=0``) to reach the failure
path at the first attempt; the window itself is tested in test_provider_publish_retry.py.
"""

from __future__ import annotations

import json
from pathlib import Path

from container_apps.errors import RegistryUnavailable
from container_apps.registries.memory import MemoryRegistry
from container_apps.sync import constants as C
from container_apps.tests.support.faults import FaultyRegistry
from container_apps.tests.support.provider_rig import NOW, make_rig


def test_failed_republish_of_unchanged_data_keeps_the_published_blob(tmp_path: Path) -> None:
    inner = MemoryRegistry()
    # The first publish goes through; the second finds the registry down for both
    # the hset and the one re-read.
    registry = FaultyRegistry(
        inner, {"hset": [None, RegistryUnavailable("down")], "hget": [RegistryUnavailable("down")]}
    )
    rig = make_rig(tmp_path, registry=registry, publish_retry_seconds=0)
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
    rig = make_rig(tmp_path, registry=registry, publish_retry_seconds=0)
    rig.request({"archive_paths": ["/app/data"]})
    first = rig.publisher.publish_pending(NOW)
    assert first is not None and first.cid
    (rig.data / "a.txt").write_text("changed")
    rig.request({"archive_paths": ["/app/data"]})
    second = rig.publisher.publish_pending(NOW + 10)
    assert second is not None and second.stage == C.STAGE_CHAINSTORE_PUBLISH
    registry.assert_all_faults_fired()
    assert rig.store.inner.cids() == {first.cid}  # only the new, unpublished blob went


class _NoAckRegistry(MemoryRegistry):
    """hset answers False (no ack); ``store`` says whether the write landed anyway."""

    def __init__(self, store: bool) -> None:
        super().__init__()
        self.store = store
        self.hgets = 0

    def hset(self, hkey: str, key: str, value: str) -> bool:
        if self.store:
            super().hset(hkey, key, value)
        return False

    def hget(self, hkey: str, key: str) -> str | None:
        self.hgets += 1
        return super().hget(hkey, key)


def test_no_ack_but_our_cid_on_the_one_reread_is_success(tmp_path: Path) -> None:
    registry = _NoAckRegistry(store=True)
    rig = make_rig(tmp_path, registry=FaultyRegistry(registry))
    rig.request({"archive_paths": ["/app/data"]})
    outcome = rig.publisher.publish_pending(NOW)
    assert outcome is not None and outcome.status == "ok"
    assert registry.hgets == 1
    assert rig.history.entries()[0].data["chainstore_ack"] is False


def test_no_ack_and_no_record_on_the_reread_fails_and_deletes_the_blob(tmp_path: Path) -> None:
    registry = _NoAckRegistry(store=False)
    rig = make_rig(tmp_path, registry=FaultyRegistry(registry), publish_retry_seconds=0)
    rig.request({"archive_paths": ["/app/data"]})
    outcome = rig.publisher.publish_pending(NOW)
    assert outcome is not None and outcome.stage == C.STAGE_CHAINSTORE_PUBLISH
    assert registry.hgets == 1
    assert rig.store.inner.cids() == set() and rig.history.entries() == []
