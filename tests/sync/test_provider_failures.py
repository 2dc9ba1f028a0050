"""README, "Provider": every provider failure stage and the publish commit point.

Stages: runtime_stop, archive_build, r1fs_upload, chainstore_publish (reached at the first
attempt here, with the retry window off: see test_provider_publish_retry.py).
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import pytest
from container_apps.errors import ContainerRuntimeError, RegistryUnavailable, StoreUnavailable
from container_apps.registries.memory import MemoryRegistry
from container_apps.sync import constants as C
from container_apps.tests.support.faults import Fault, FaultyRegistry
from container_apps.tests.support.provider_rig import (
    NOW,
    Rig,
    assert_clean,
    make_rig,
)


@pytest.fixture
def rig(tmp_path: Path) -> Rig:
    return make_rig(tmp_path)


# --- runtime_stop and archive_build ----------


def test_stop_failure_is_runtime_stop_consumed_and_not_uploaded(rig: Rig) -> None:
    rig.containers.fail_stop = ContainerRuntimeError("engine said no at /var/lib/docker")
    rig.request({"archive_paths": ["/app/data"]})
    outcome = rig.publisher.publish_pending(NOW)
    assert outcome is not None and outcome.stage == "runtime_stop"
    assert rig.journal == ["stop"]  # still running: no start, no upload
    response = rig.response()
    assert response["stage"] == "runtime_stop" and "/var/lib/docker" not in response["error"]
    assert rig.store.count("put") == 0 and rig.registry.count("hset") == 0
    assert_clean(rig)


def test_stop_failure_restarts_a_container_that_went_down(rig: Rig) -> None:
    rig.containers.fail_stop = ContainerRuntimeError("timeout")
    rig.containers.running = False
    rig.request({"archive_paths": ["/app/data"]})
    rig.publisher.publish_pending(NOW)
    assert rig.journal == ["stop", "start"]


def test_container_restarts_after_archive_failure(rig: Rig, tmp_path: Path) -> None:
    secret = tmp_path / "secret"
    secret.write_text("TOP-SECRET")
    # The app plants a link after validation, just before the stop completes.
    rig.containers.on_stop = lambda: os.symlink(secret, rig.data / "sub" / "leak")
    rig.request({"archive_paths": ["/app/data"]})
    outcome = rig.publisher.publish_pending(NOW)
    assert outcome is not None and outcome.stage == "archive_build"
    assert rig.journal == ["stop", "start"]
    response = rig.response()
    assert "'/app/data/sub/leak'" in response["error"] and "TOP-SECRET" not in response["error"]
    assert str(tmp_path) not in json.dumps(rig.invalid())
    assert_clean(rig)


def test_container_restarts_when_archive_root_was_replaced_by_a_link(rig: Rig, tmp_path) -> None:
    def swap() -> None:
        os.rename(rig.data / "sub", tmp_path / "moved")
        os.symlink(tmp_path / "moved", rig.data / "sub")

    rig.containers.on_stop = swap
    rig.request({"archive_paths": ["/app/data/sub"]})
    outcome = rig.publisher.publish_pending(NOW)
    assert outcome is not None and outcome.stage == "archive_build"
    assert rig.journal == ["stop", "start"]


def test_archive_over_max_bytes_fails_archive_build(tmp_path: Path) -> None:
    rig = make_rig(tmp_path, max_archive_bytes=100)
    (rig.data / "big").write_bytes(os.urandom(10_000))
    rig.request({"archive_paths": ["/app/data"]})
    outcome = rig.publisher.publish_pending(NOW)
    assert outcome is not None and outcome.stage == "archive_build"
    assert "MAX_ARCHIVE_BYTES" in rig.response()["error"]
    assert rig.journal == ["stop", "start"]
    assert_clean(rig)


def test_start_failure_after_capture_still_publishes(rig: Rig) -> None:
    rig.containers.fail_start = ContainerRuntimeError("start failed")
    rig.request({"archive_paths": ["/app/data"]})
    assert rig.publisher.publish_pending(NOW).status == "ok"  # type: ignore[union-attr]
    assert rig.journal == ["stop", "start", "put"]


# --- r1fs_upload and chainstore_publish ----------


def test_upload_failure_is_r1fs_upload_and_nothing_is_published(tmp_path: Path) -> None:
    rig = make_rig(tmp_path, store_faults={"put": [StoreUnavailable("s3 down at 10.0.0.1")]})
    rig.request({"archive_paths": ["/app/data"]})
    outcome = rig.publisher.publish_pending(NOW)
    assert outcome is not None and outcome.stage == "r1fs_upload"
    assert rig.journal == ["stop", "start", "put"]
    assert rig.registry.count("hset") == 0 and rig.history.entries() == []
    assert "10.0.0.1" not in rig.response()["error"]
    rig.store.assert_all_faults_fired()
    assert_clean(rig)


def test_lost_ack_with_our_cid_on_reread_is_success(tmp_path: Path) -> None:
    registry = FaultyRegistry(
        MemoryRegistry(), {"hset": [Fault(RegistryUnavailable("lost"), after=True)]}
    )
    rig = make_rig(tmp_path, registry=registry)
    rig.request({"archive_paths": ["/app/data"]})
    outcome = rig.publisher.publish_pending(NOW)
    assert outcome is not None and outcome.status == "ok"
    assert registry.count("hget") == 1
    assert rig.response()["chainstore_ack"] is True
    assert rig.history.entries()[0].data["chainstore_ack"] is False  # recorded as observed
    registry.assert_all_faults_fired()


def test_publish_failure_deletes_blob_and_writes_no_history(tmp_path: Path) -> None:
    registry = FaultyRegistry(MemoryRegistry(), {"hset": [RegistryUnavailable("down")]})
    rig = make_rig(tmp_path, registry=registry, publish_retry_seconds=0)
    rig.request({"archive_paths": ["/app/data"], "request_id": "q"})
    outcome = rig.publisher.publish_pending(NOW)
    assert outcome is not None and outcome.stage == "chainstore_publish"
    assert registry.count("hget") == 1
    assert rig.store.inner.cids() == set()  # best-effort delete of the uploaded blob
    assert rig.store.count("delete") == 1
    assert rig.history.entries() == []
    assert rig.response()["stage"] == "chainstore_publish" and rig.response()["request_id"] == "q"
    assert_clean(rig)


def test_publish_failure_when_registry_holds_another_cid(tmp_path: Path) -> None:
    inner = MemoryRegistry()
    inner.hset(C.CHAINSTORE_HKEY, "key-1", json.dumps({"cid": "bafkreiother"}))
    registry = FaultyRegistry(inner, {"hset": [RegistryUnavailable("down")]})
    rig = make_rig(tmp_path, registry=registry, publish_retry_seconds=0)
    rig.request({"archive_paths": ["/app/data"]})
    assert rig.publisher.publish_pending(NOW).stage == "chainstore_publish"  # type: ignore[union-attr]
    assert json.loads(inner.hget(C.CHAINSTORE_HKEY, "key-1") or "")["cid"] == "bafkreiother"


def test_publish_failure_survives_reread_failure_and_delete_failure(tmp_path: Path) -> None:
    registry = FaultyRegistry(
        MemoryRegistry(), {"hset": [RegistryUnavailable("a")], "hget": [RegistryUnavailable("b")]}
    )
    rig = make_rig(
        tmp_path,
        registry=registry,
        store_faults={"delete": [StoreUnavailable("c")]},
        publish_retry_seconds=0,
    )
    rig.request({"archive_paths": ["/app/data"]})
    assert rig.publisher.publish_pending(NOW).stage == "chainstore_publish"  # type: ignore[union-attr]
    registry.assert_all_faults_fired()
    rig.store.assert_all_faults_fired()
    assert_clean(rig)


def test_history_failure_after_commit_reports_ok_with_history_error(rig: Rig, mocker) -> None:
    mocker.patch.object(rig.history, "append", side_effect=OSError(28, "No space", "/host/secret"))
    rig.request({"archive_paths": ["/app/data"]})
    outcome = rig.publisher.publish_pending(NOW)
    assert outcome is not None and outcome.status == "ok"
    response = rig.response()
    assert response["status"] == "ok" and "history_error" in response
    assert "/host/secret" not in response["history_error"]
    assert rig.record()["cid"] == response["cid"]


def test_snapshot_published_without_history_is_still_retired_later(rig: Rig, mocker) -> None:
    # Every older CID is retired, also one the history could not record.
    real_append = rig.history.append
    calls = iter([OSError(28, "No space")])

    def append(entry: dict[str, Any]) -> Path:
        failure = next(calls, None)
        if failure is not None:
            raise failure
        return real_append(entry)

    mocker.patch.object(rig.history, "append", side_effect=append)
    rig.request({"archive_paths": ["/app/data"]})
    first = rig.publisher.publish_pending(NOW)
    assert first is not None and "history_error" in first.response
    (rig.data / "a.txt").write_text("changed")
    rig.request({"archive_paths": ["/app/data"]})
    second = rig.publisher.publish_pending(NOW + 1)
    assert second is not None and second.status == "ok"
    assert first.cid not in rig.store.inner.cids()
    assert second.cid in rig.store.inner.cids()


def test_cid_published_without_history_is_retired_after_a_restart(
    tmp_path: Path, mocker: Any
) -> None:
    # Retirement across a restart: the CID the history could not record is kept on disk
    # (sync_state/unrecorded_cids.json), so a new provider over the same dirs retires it.
    rig = make_rig(tmp_path)
    mocker.patch.object(rig.history, "append", side_effect=OSError(28, "No space"))
    rig.request({"archive_paths": ["/app/data"]})
    first = rig.publisher.publish_pending(NOW)
    assert first is not None and "history_error" in first.response
    state = json.loads((tmp_path / "state" / C.UNRECORDED_CIDS_FILE).read_text())
    assert state == {"cids": [first.cid]}

    restarted = make_rig(tmp_path, store=rig.store.inner, registry=rig.registry)
    (restarted.data / "a.txt").write_text("changed")
    restarted.request({"archive_paths": ["/app/data"]})
    second = restarted.publisher.publish_pending(NOW + 1)
    assert second is not None and second.status == "ok"
    assert rig.store.inner.cids() == {second.cid}
    state = json.loads((tmp_path / "state" / C.UNRECORDED_CIDS_FILE).read_text())
    assert state == {"cids": []}


def test_unreadable_unrecorded_cids_file_is_set_aside_not_fatal(tmp_path: Path) -> None:
    (tmp_path / "state").mkdir()
    (tmp_path / "state" / C.UNRECORDED_CIDS_FILE).write_text("{not json")
    rig = make_rig(tmp_path)
    rig.request({"archive_paths": ["/app/data"]})
    outcome = rig.publisher.publish_pending(NOW)
    assert outcome is not None and outcome.status == "ok"
    assert list((tmp_path / "state").glob(f"{C.UNRECORDED_CIDS_FILE}.unreadable.*"))
