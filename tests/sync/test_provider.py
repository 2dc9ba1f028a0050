"""README, "Provider" and the sent history: a provider tick that succeeds or is refused.

Also retirement, online capture and recovery; failure stages are in test_provider_failures.
"""

from __future__ import annotations

import io
import json
import os
import tarfile
from pathlib import Path
from typing import Any

import pytest
from container_apps.errors import StoreUnavailable
from container_apps.sync import constants as C
from container_apps.sync.records import parse_record
from container_apps.tests.support.provider_rig import (
    NOW,
    Rig,
    archive_names,
    assert_clean,
    make_rig,
)


@pytest.fixture
def rig(tmp_path: Path) -> Rig:
    return make_rig(tmp_path)


# --- success ----------


def test_publish_success_record_response_and_history(rig: Rig) -> None:
    rig.request({"archive_paths": ["/app/data/"], "metadata": {"epoch": 1}, "request_id": "r-7"})
    outcome = rig.publisher.publish_pending(NOW)
    assert outcome is not None and outcome.status == "ok"
    record = rig.record()
    cid = record["cid"]
    assert cid.startswith("bafkrei") and outcome.cid == cid
    assert record["version"] == int(NOW) and record["timestamp"] == NOW
    assert record["node_id"] == "node-a" and record["metadata"] == {"epoch": 1}
    runtime = {"provider_capture": "offline", "consumer_apply": "offline_restart"}
    assert record["runtime"] == runtime
    blob = rig.store.inner.get(cid)
    manifest = record["manifest"]
    assert manifest == {
        "schema_version": 1,
        "archive_paths": ["/app/data"],
        "archive_format": "tar.zst",
        "archive_size_bytes": blob.stat().st_size,
        "encryption": "none",
        "runtime": runtime,
        "archive_sha256": manifest["archive_sha256"],
        "unpacked_bytes": 9,
        "members": 4,
    }
    parse_record(json.dumps(record))  # the consumer's codec accepts it
    assert archive_names(blob) == [
        "app/data",
        "app/data/a.txt",
        "app/data/sub",
        "app/data/sub/b.txt",
    ]
    response = rig.response()
    assert response == {
        "status": "ok",
        "cid": cid,
        "version": int(NOW),
        "published_timestamp": NOW,
        "archive_paths": ["/app/data/"],  # as the app wrote it
        "archive_size_bytes": manifest["archive_size_bytes"],
        "chainstore_ack": True,
        "metadata": {"epoch": 1},
        "request_id": "r-7",
        "downtime_seconds": response["downtime_seconds"],
    }
    assert response["downtime_seconds"] >= 0
    [entry] = rig.history.entries()
    assert entry.path.name == f"{int(NOW):010d}__{cid[:12]}.json"
    data = entry.data
    assert data["cid"] == cid and data["version"] == int(NOW)
    assert data["published_timestamp"] == NOW and data["node_id"] == "node-a"
    assert (
        data["manifest"] == manifest
        and data["archive_size_bytes"] == manifest["archive_size_bytes"]
    )
    assert data["chainstore_ack"] is True
    assert (
        data["request"]["archive_paths"] == ["/app/data/"]
        and data["request"]["request_id"] == "r-7"
    )
    assert set(data["durations"]) == {"archive", "upload", "publish"}
    assert all(isinstance(v, float) for v in data["durations"].values())
    assert data["downtime_seconds"] == response["downtime_seconds"]
    assert data["deletion"] == {
        "deleted_at": None,
        "deletion_succeeded": None,
        "deletion_error": None,
    }
    assert_clean(rig)


def test_archive_paths_are_echoed_as_written_and_normalised_only_in_the_manifest(
    rig: Rig, monkeypatch: pytest.MonkeyPatch
) -> None:
    written = ["/app/data/sub/", "/app/data//a.txt", "/app/data/sub"]
    rig.request({"archive_paths": written, "request_id": "r-8"})
    seen: list[dict[str, Any]] = []
    real_in_progress = rig.publisher.control.in_progress

    def spy(**fields: Any) -> None:
        seen.append(fields)
        real_in_progress(**fields)

    monkeypatch.setattr(rig.publisher.control, "in_progress", spy)
    outcome = rig.publisher.publish_pending(NOW)
    assert outcome is not None and outcome.status == "ok"
    assert seen == [{"archive_paths": written, "request_id": "r-8"}]
    assert rig.response()["archive_paths"] == written
    [entry] = rig.history.entries()
    assert entry.data["request"]["archive_paths"] == written
    normalised = ["/app/data/sub", "/app/data/a.txt"]
    assert rig.record()["manifest"]["archive_paths"] == normalised
    assert entry.data["manifest"]["archive_paths"] == normalised


def test_nothing_pending_does_nothing(rig: Rig) -> None:
    assert rig.publisher.publish_pending(NOW) is None
    assert rig.journal == [] and list(rig.control_dir.iterdir()) == []


def test_container_restarts_before_upload(rig: Rig) -> None:
    rig.request({"archive_paths": ["/app/data"]})
    rig.publisher.publish_pending(NOW)
    assert rig.journal == ["stop", "start", "put"]


def test_stale_invalid_is_removed_on_success(rig: Rig) -> None:
    (rig.control_dir / C.INVALID_FILE).write_text("{}")
    rig.request({"archive_paths": ["/app/data"]})
    rig.publisher.publish_pending(NOW)
    assert not (rig.control_dir / C.INVALID_FILE).exists()


def test_tar_gz_format_is_published_and_readable(tmp_path: Path) -> None:
    rig = make_rig(tmp_path, archive_format="tar.gz", compression_level=9)
    rig.request({"archive_paths": ["/app/data/sub"]})
    assert rig.publisher.publish_pending(NOW).status == "ok"  # type: ignore[union-attr]
    record = rig.record()
    assert record["manifest"]["archive_format"] == "tar.gz"
    blob = rig.store.inner.get(record["cid"])
    assert archive_names(blob, "tar.gz") == ["app/data/sub", "app/data/sub/b.txt"]


# --- validation ----------


@pytest.mark.parametrize(
    ("body", "fragment"),
    [
        ({"archive_paths": ["/etc"]}, "not inside any mounted volume"),
        ({"archive_paths": ["/app/data/../x"]}, "'..'"),
        ([1, 2], "JSON object"),
        ({"archive_paths": ["/app/data"], "runtime": {"provider_capture": "online"}}, "online"),
    ],
)
def test_validation_failure_does_not_stop_the_container(rig: Rig, body: Any, fragment: str) -> None:
    rig.request(body)
    outcome = rig.publisher.publish_pending(NOW)
    assert outcome is not None and outcome.stage == "validation"
    assert rig.journal == []
    response = rig.response()
    assert response["status"] == "error" and response["stage"] == "validation"
    assert fragment in response["error"]
    assert rig.invalid()["request"] == body
    assert_clean(rig)


def test_unparseable_body_reports_raw_body(rig: Rig) -> None:
    rig.request('{"archive_paths": [')
    rig.publisher.publish_pending(NOW)
    assert rig.invalid()["_error"]["raw_body"] == '{"archive_paths": ['
    assert rig.invalid()["request"] is None
    assert rig.journal == []


def test_error_response_echoes_request_id(rig: Rig) -> None:
    rig.request({"archive_paths": ["/nope"], "request_id": "abc"})
    rig.publisher.publish_pending(NOW)
    assert rig.response()["request_id"] == "abc"
    assert rig.response()["archive_paths"] == ["/nope"]


def test_symlinked_control_dir_is_skipped(tmp_path: Path) -> None:
    rig = make_rig(tmp_path)
    real = tmp_path / "real-dir"
    rig.control_dir.rename(real)
    os.symlink(real, rig.control_dir)
    (real / C.REQUEST_FILE).write_text('{"archive_paths": ["/app/data"]}')
    assert rig.publisher.publish_pending(NOW) is None
    assert (real / C.REQUEST_FILE).exists() and rig.journal == []


# --- retirement ----------


def _publish_version(rig: Rig, n: int) -> str:
    (rig.data / "a.txt").write_text(f"content {n}")
    rig.request({"archive_paths": ["/app/data"]})
    outcome = rig.publisher.publish_pending(NOW + n)
    assert outcome is not None and outcome.status == "ok" and outcome.cid
    return outcome.cid


def test_every_older_cid_is_retired_and_failures_are_retried(tmp_path: Path) -> None:
    rig = make_rig(tmp_path, store_faults={"delete": [StoreUnavailable("flaky")]})
    first = _publish_version(rig, 1)
    assert rig.store.inner.cids() == {first}
    second = _publish_version(rig, 2)
    assert rig.store.inner.cids() == {first, second}  # the delete failed
    entries = {e.cid: e.data["deletion"] for e in rig.history.entries()}
    assert (
        entries[first]["deletion_succeeded"] is False
        and "flaky" in entries[first]["deletion_error"]
    )
    assert entries[second]["deletion_succeeded"] is None
    third = _publish_version(rig, 3)
    assert rig.store.inner.cids() == {third}  # first retried, second retired
    entries = {e.cid: e.data["deletion"] for e in rig.history.entries()}
    assert entries[first] == {
        "deleted_at": NOW + 3,
        "deletion_succeeded": True,
        "deletion_error": None,
    }
    assert entries[second]["deletion_succeeded"] is True
    assert entries[third]["deletion_succeeded"] is None


def test_republishing_same_content_never_deletes_the_current_blob(rig: Rig) -> None:
    a = _publish_version(rig, 1)
    rig.request({"archive_paths": ["/app/data"]})
    assert rig.publisher.publish_pending(NOW + 5).cid == a  # type: ignore[union-attr]
    assert rig.store.inner.cids() == {a}
    assert rig.store.count("delete") == 0


# --- online capture ----------


def _docker_tar() -> list[bytes]:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as tar:
        d = tarfile.TarInfo("data")
        d.type = tarfile.DIRTYPE
        tar.addfile(d)
        f = tarfile.TarInfo("data/live.txt")
        f.size = 4
        tar.addfile(f, io.BytesIO(b"live"))
    return [buf.getvalue()]


def test_online_capture_uses_get_archive_without_stopping(tmp_path: Path) -> None:
    rig = make_rig(tmp_path, allow_online=True)
    rig.containers.archives["/app/data"] = _docker_tar()
    rig.request({"archive_paths": ["/app/data"], "runtime": {"provider_capture": "online"}})
    outcome = rig.publisher.publish_pending(NOW)
    assert outcome is not None and outcome.status == "ok"
    assert rig.journal == ["get_archive /app/data", "put"]
    record = rig.record()
    assert record["runtime"]["provider_capture"] == "online"
    assert archive_names(rig.store.inner.get(record["cid"])) == ["app/data", "app/data/live.txt"]
    assert rig.response()["downtime_seconds"] == 0.0


def test_online_capture_docker_failure_is_archive_build(tmp_path: Path) -> None:
    rig = make_rig(tmp_path, allow_online=True)
    rig.request({"archive_paths": ["/app/data"], "runtime": {"provider_capture": "online"}})
    outcome = rig.publisher.publish_pending(NOW)
    assert outcome is not None and outcome.stage == "archive_build"
    assert "stop" not in rig.journal and rig.store.count("put") == 0
    assert_clean(rig)


# --- recovery ----------


def test_recover_requeues_an_unfinished_request_and_publishes_it(rig: Rig) -> None:
    (rig.control_dir / C.PROCESSING_FILE).write_text('{"archive_paths": ["/app/data"]}')
    rig.publisher.recover()
    assert rig.publisher.publish_pending(NOW).status == "ok"  # type: ignore[union-attr]


def test_recover_removes_temp_archives_of_a_crashed_publish(rig: Rig) -> None:
    # A publish killed between archive and cleanup leaves its temp archive behind.
    rig.work.mkdir(parents=True, exist_ok=True)
    (rig.work / "snapshot-123.tar.zst").write_bytes(b"partial")
    (rig.work / "keep.txt").write_text("not ours")
    rig.request({"archive_paths": ["/app/data"]})
    (rig.control_dir / C.REQUEST_FILE).rename(rig.control_dir / C.PROCESSING_FILE)
    rig.publisher.recover()
    assert sorted(p.name for p in rig.work.iterdir()) == ["keep.txt"]
    assert (rig.control_dir / C.REQUEST_FILE).exists()  # the request is redone
    outcome = rig.publisher.publish_pending(NOW)
    assert outcome is not None and outcome.status == "ok"
