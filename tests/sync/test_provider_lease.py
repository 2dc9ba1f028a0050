"""One writer per key (README, "One writer per key"): providers on real Redis and SQLite.

Several runners share one registry and blob store; each rig is one runner instance (they
share the node id "node-a", as two runners on one host do, and differ by instance id).
"""

from __future__ import annotations

import json
import logging
import threading
import time
from pathlib import Path
from typing import Any

import pytest
from container_apps.registries.factory import open_registry
from container_apps.registries.lease import LEASE_HKEY, Lease
from container_apps.stores.memory import MemoryBlobStore
from container_apps.sync import constants as C
from container_apps.sync.status import instance_status
from container_apps.tests.support.provider_rig import NOW, Rig, assert_clean, make_rig
from container_apps.tests.support.sigkill import run_and_kill


@pytest.fixture(params=["sqlite", pytest.param("redis", marks=pytest.mark.redis)])
def registry_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    if request.param == "sqlite":
        return f"sqlite://{tmp_path}/registry.sqlite"
    return str(request.getfixturevalue("redis_registry_url"))


@pytest.fixture
def store(tmp_path: Path) -> MemoryBlobStore:
    return MemoryBlobStore(tmp_path / "shared-cache")


def _rig(tmp_path: Path, name: str, url: str, store: MemoryBlobStore, **cfg: Any) -> Rig:
    (tmp_path / name).mkdir(exist_ok=True)
    return make_rig(
        tmp_path / name, registry=open_registry(url), store=store, instance_id=name, **cfg
    )


def _record_cid(url: str) -> str | None:
    raw = open_registry(url).hget(C.CHAINSTORE_HKEY, "key-1")
    return None if raw is None else str(json.loads(raw)["cid"])


def test_a_second_provider_on_a_held_key_is_refused_naming_the_holder(
    tmp_path: Path, registry_url: str, store: MemoryBlobStore
) -> None:
    first = _rig(tmp_path, "inst-a", registry_url, store)
    second = _rig(tmp_path, "inst-b", registry_url, store)
    first.request({"archive_paths": ["/app/data"]})
    published = first.publisher.publish_pending(NOW)
    assert published is not None and published.status == "ok"

    second.request({"archive_paths": ["/app/data"], "request_id": "r2"})
    refused = second.publisher.publish_pending(NOW + 5)

    assert refused is not None and refused.stage == C.STAGE_CHAINSTORE_PUBLISH
    response = second.response()
    assert response["status"] == "error" and response["stage"] == C.STAGE_CHAINSTORE_PUBLISH
    assert response["request_id"] == "r2"
    assert "node node-a instance inst-a, until 20" in response["error"]
    assert second.containers.calls == []  # refused before the app was stopped
    assert_clean(second)  # answered: no request left claimed
    assert store.cids() == {published.cid}  # no blob of the refused provider
    assert _record_cid(registry_url) == published.cid


def test_a_lease_lost_while_the_app_is_stopped_refuses_the_write_and_deletes_the_blob(
    tmp_path: Path, registry_url: str, store: MemoryBlobStore, caplog: pytest.LogCaptureFixture
) -> None:
    old = _rig(tmp_path, "inst-a", registry_url, store)
    new = _rig(tmp_path, "inst-b", registry_url, store, takeover=True)
    old.containers.on_stop = new.publisher.renew_lease  # taken over mid-capture
    old.request({"archive_paths": ["/app/data"]})
    with caplog.at_level(logging.INFO):
        outcome = old.publisher.publish_pending(NOW)

    assert outcome is not None and outcome.stage == C.STAGE_CHAINSTORE_PUBLISH
    assert "node node-a instance inst-b" in old.response()["error"]
    assert old.containers.calls == ["stop", "start", "put"]  # shared journal: then deleted
    assert store.cids() == set() and _record_cid(registry_url) is None
    messages = [r.getMessage() for r in caplog.records]
    assert any(
        "took over the lease on key 'key-1' from node node-a instance inst-a" in m for m in messages
    )
    assert any(
        "lost the lease on key 'key-1' to node node-a instance inst-b" in m for m in messages
    )


def test_takeover_end_to_end_the_old_holder_logs_the_loss_and_stops_publishing(
    tmp_path: Path, registry_url: str, store: MemoryBlobStore, caplog: pytest.LogCaptureFixture
) -> None:
    old = _rig(tmp_path, "inst-a", registry_url, store)
    new = _rig(tmp_path, "inst-b", registry_url, store, takeover=True)
    old.request({"archive_paths": ["/app/data"]})
    assert (first := old.publisher.publish_pending(NOW)) is not None and first.status == "ok"

    new.request({"archive_paths": ["/app/data"]})
    (new.data / "a.txt").write_text("from b")
    taken = new.publisher.publish_pending(NOW + 10)
    assert taken is not None and taken.status == "ok"
    assert _record_cid(registry_url) == taken.cid

    with caplog.at_level(logging.INFO):
        old.publisher.renew_lease()
    assert any(
        r.levelno == logging.ERROR
        and "lost the lease" in r.getMessage()
        and "inst-b" in r.getMessage()
        for r in caplog.records
    )
    old.request({"archive_paths": ["/app/data"]})
    again = old.publisher.publish_pending(NOW + 20)
    assert again is not None and again.stage == C.STAGE_CHAINSTORE_PUBLISH
    assert _record_cid(registry_url) == taken.cid
    # The new holder keeps publishing; TAKEOVER does not make the old one take it back.
    new.request({"archive_paths": ["/app/data"]})
    assert (later := new.publisher.publish_pending(NOW + 30)) is not None
    assert later.status == "ok"


def test_providers_publishing_at_once_never_both_publish(
    tmp_path: Path, registry_url: str, store: MemoryBlobStore
) -> None:
    rigs = [_rig(tmp_path, f"inst-{i}", registry_url, store) for i in range(4)]
    for i, rig in enumerate(rigs):
        (rig.data / "a.txt").write_text(f"provider {i}")
        rig.request({"archive_paths": ["/app/data"]})
    outcomes: list[Any] = []
    start = threading.Barrier(len(rigs))

    def publish(rig: Rig) -> None:
        start.wait()
        outcomes.append(rig.publisher.publish_pending(NOW))

    threads = [threading.Thread(target=publish, args=(rig,)) for rig in rigs]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    statuses = sorted(o.status for o in outcomes)
    assert statuses == ["error", "error", "error", "ok"]
    (winner,) = [o for o in outcomes if o.status == "ok"]
    assert _record_cid(registry_url) == winner.cid
    assert store.cids() == {winner.cid}


def test_a_provider_killed_holding_the_lease_is_replaced_after_it_expires(
    tmp_path: Path, registry_url: str, store: MemoryBlobStore
) -> None:
    child = tmp_path / "killed"
    child.mkdir()
    run_and_kill(
        child, "container_apps.tests.support.provider_lease_child", str(child), registry_url
    )
    assert _record_cid(registry_url) is not None  # the killed provider did publish
    survivor = _rig(tmp_path, "inst-b", registry_url, MemoryBlobStore(tmp_path / "c2"))
    survivor.request({"archive_paths": ["/app/data"]})
    refused = survivor.publisher.publish_pending(NOW)
    assert refused is not None and refused.stage == C.STAGE_CHAINSTORE_PUBLISH
    assert "instance killed-instance" in survivor.response()["error"]

    lease = Lease.from_json(open_registry(registry_url).hget(LEASE_HKEY, "key-1"))
    assert lease is not None
    time.sleep(max(0.0, lease.expires_at - time.time()) + 0.2)
    survivor.request({"archive_paths": ["/app/data"]})
    outcome = survivor.publisher.publish_pending(NOW + 10)
    assert outcome is not None and outcome.status == "ok"
    assert _record_cid(registry_url) == outcome.cid


def test_status_shows_the_lease_holder(
    tmp_path: Path, registry_url: str, store: MemoryBlobStore
) -> None:
    from container_apps.layout import DataDir

    data = DataDir(tmp_path / "data-root")
    paths = data.instance("inst-b")
    (tmp_path / "b").mkdir()
    rig = make_rig(
        tmp_path / "b",
        registry=open_registry(registry_url),
        store=store,
        instance_id="inst-b",
        state_dir=paths.sync_state,
    )
    _rig(tmp_path, "inst-a", registry_url, store).publisher.renew_lease()
    rig.publisher.renew_lease()
    lease = instance_status(paths)["lease"]
    assert lease["held"] is False
    assert (lease["holder_node_id"], lease["holder_instance_id"]) == ("node-a", "inst-a")
    assert lease["expires_at"] > time.time()
