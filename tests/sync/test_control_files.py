"""Claiming request.json, failure/success artifacts, recovery.

docs/FORMAT.md, "App-facing control files".
"""

from __future__ import annotations

import json
import os
import socket
import stat
import threading
from pathlib import Path

import pytest
from container_apps.errors import SyncError
from container_apps.sync import constants as C
from container_apps.sync.control_files import ControlDir
from container_apps.sync.request_body import ClaimedRequest
from container_apps.tests.support.fakes import FakeClock
from container_apps.tests.support.strict_json import loads_strict

SECRET = "HOST-SECRET-CONTENT-4711"


@pytest.fixture
def control_dir(tmp_path: Path) -> Path:
    d = tmp_path / "volume-sync"
    d.mkdir()
    return d


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def control(control_dir: Path, clock: FakeClock) -> ControlDir:
    return ControlDir(control_dir, "node-a", clock)


def _read(path: Path) -> dict:
    return json.loads(path.read_text())


def _all_artifact_text(directory: Path) -> str:
    return "".join(p.read_text() for p in directory.iterdir() if p.is_file() and not p.is_symlink())


def _assert_refused(control_dir: Path, clock: FakeClock, fragment: str) -> None:
    response = _read(control_dir / C.RESPONSE_FILE)
    assert response == {
        "status": "error",
        "stage": "validation",
        "error": response["error"],
        "failed_timestamp": clock.now,
        "archive_paths": [],
    }
    assert fragment in response["error"]
    invalid = _read(control_dir / C.INVALID_FILE)
    assert invalid["request"] is None
    assert invalid["_error"] == {
        "stage": "validation",
        "error": response["error"],
        "failed_timestamp": clock.now,
        "node_id": "node-a",
    }
    assert not os.path.lexists(control_dir / C.REQUEST_FILE)
    assert not os.path.lexists(control_dir / C.PROCESSING_FILE)


def test_claim_returns_none_when_nothing_is_pending(control: ControlDir, control_dir: Path) -> None:
    assert control.claim() is None
    assert list(control_dir.iterdir()) == []


def test_claim_renames_to_processing_and_parses(control: ControlDir, control_dir: Path) -> None:
    body = {"archive_paths": ["/app/data"], "request_id": "r1"}
    (control_dir / C.REQUEST_FILE).write_text(json.dumps(body))
    claimed = control.claim()
    assert claimed is not None
    assert claimed.body == body and claimed.error is None and claimed.request_id == "r1"
    assert not (control_dir / C.REQUEST_FILE).exists()
    assert json.loads((control_dir / C.PROCESSING_FILE).read_text()) == body


def test_symlink_request_is_removed_unread(control, control_dir, clock, tmp_path) -> None:
    secret = tmp_path / "secret.json"
    secret.write_text(json.dumps({"archive_paths": [SECRET]}))
    os.symlink(secret, control_dir / C.REQUEST_FILE)
    assert control.claim() is None
    _assert_refused(control_dir, clock, "symbolic link")
    assert SECRET not in _all_artifact_text(control_dir)
    assert secret.read_text().startswith("{")  # the target itself is untouched


def test_fifo_request_is_removed_without_blocking(control, control_dir, clock) -> None:
    os.mkfifo(control_dir / C.REQUEST_FILE)
    result: list[object] = []
    worker = threading.Thread(target=lambda: result.append(control.claim()), daemon=True)
    worker.start()
    worker.join(timeout=5)
    assert not worker.is_alive(), "claim blocked on a FIFO"
    assert result == [None]
    _assert_refused(control_dir, clock, "FIFO")


def test_socket_request_is_removed(control, control_dir, clock) -> None:
    sock = socket.socket(socket.AF_UNIX)
    try:
        sock.bind(str(control_dir / C.REQUEST_FILE))
        assert control.claim() is None
    finally:
        sock.close()
    _assert_refused(control_dir, clock, "socket")


def test_non_empty_directory_request_is_moved_aside(control, control_dir, clock) -> None:
    (control_dir / C.REQUEST_FILE).mkdir()
    (control_dir / C.REQUEST_FILE / "keep.txt").write_text("app data")
    assert control.claim() is None
    _assert_refused(control_dir, clock, "directory")
    aside = [p for p in control_dir.iterdir() if p.name.startswith(C.UNSAFE_PREFIX)]
    assert len(aside) == 1
    assert (aside[0] / "keep.txt").read_text() == "app data"


def test_empty_directory_request_is_removed(control, control_dir, clock) -> None:
    (control_dir / C.REQUEST_FILE).mkdir()
    assert control.claim() is None
    _assert_refused(control_dir, clock, "directory")
    assert not [p for p in control_dir.iterdir() if p.name.startswith(C.UNSAFE_PREFIX)]


def test_request_swapped_for_link_after_lstat_is_not_followed(
    control, control_dir, clock, tmp_path
):
    secret = tmp_path / "secret"
    secret.write_text(SECRET)
    (control_dir / C.REQUEST_FILE).write_text("{}")
    real_rename = os.rename

    def racing_rename(src, dst, **dir_fds):  # the app swaps the file for a link before rename
        os.unlink(src, dir_fd=dir_fds["src_dir_fd"])
        os.symlink(secret, src, dir_fd=dir_fds["src_dir_fd"])
        real_rename(src, dst, **dir_fds)

    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(os, "rename", racing_rename)
        assert control.claim() is None
    assert SECRET not in _all_artifact_text(control_dir)
    assert _read(control_dir / C.RESPONSE_FILE)["stage"] == "validation"
    assert not os.path.lexists(control_dir / C.PROCESSING_FILE)


def test_oversize_body_is_refused_after_reading_at_most_limit_plus_one(control, control_dir):
    big = b'{"x": "' + b"a" * C.MAX_REQUEST_BYTES + b'"}'
    (control_dir / C.REQUEST_FILE).write_bytes(big)
    claimed = control.claim()
    assert claimed is not None
    assert claimed.error is not None and "exceeds 65536 bytes" in claimed.error
    assert claimed.raw_body is None and claimed.body is None


# --- failure artifacts (docs/FORMAT.md, "response.json and request.json.invalid, failure")


def test_fail_writes_invalid_and_response_exactly(control, control_dir, clock) -> None:
    (control_dir / C.REQUEST_FILE).write_text("{broken")
    claimed = control.claim()
    assert claimed is not None
    control.fail_claimed(claimed, C.STAGE_VALIDATION, claimed.error or "")
    invalid = _read(control_dir / C.INVALID_FILE)
    assert invalid == {
        "request": None,
        "_error": {
            "stage": "validation",
            "error": claimed.error,
            "failed_timestamp": clock.now,
            "node_id": "node-a",
            "raw_body": "{broken",
        },
    }
    assert _read(control_dir / C.RESPONSE_FILE) == {
        "status": "error",
        "stage": "validation",
        "error": claimed.error,
        "failed_timestamp": clock.now,
        "archive_paths": [],
    }
    assert not (control_dir / C.PROCESSING_FILE).exists()


def test_fail_echoes_request_id_and_paths_of_a_parsed_object(control, control_dir) -> None:
    body = {"archive_paths": ["/app/data", 7], "request_id": "abc", "extra": 1}
    (control_dir / C.REQUEST_FILE).write_text(json.dumps(body))
    claimed = control.claim()
    assert claimed is not None
    control.fail_claimed(claimed, C.STAGE_R1FS_UPLOAD, "upload to the blob store failed")
    response = _read(control_dir / C.RESPONSE_FILE)
    assert response["request_id"] == "abc"
    assert response["archive_paths"] == ["/app/data"]
    assert response["stage"] == "r1fs_upload"
    invalid = _read(control_dir / C.INVALID_FILE)
    assert invalid["request"] == body
    assert "raw_body" not in invalid["_error"]


def test_non_string_request_id_is_not_echoed(control, control_dir) -> None:
    (control_dir / C.REQUEST_FILE).write_text(json.dumps({"request_id": 5}))
    claimed = control.claim()
    assert claimed is not None
    control.fail_claimed(claimed, C.STAGE_VALIDATION, "bad")
    assert "request_id" not in _read(control_dir / C.RESPONSE_FILE)


@pytest.mark.parametrize("name", [C.RESPONSE_FILE, C.INVALID_FILE])
def test_artifacts_are_0644_sorted_and_replace_app_symlinks(control, control_dir, tmp_path, name):
    victim = tmp_path / "victim"
    victim.write_text("untouched")
    os.symlink(victim, control_dir / name)  # the app tries to redirect our write
    control.fail(C.STAGE_VALIDATION, "x")
    path = control_dir / name
    assert not path.is_symlink()
    assert stat.S_IMODE(path.stat().st_mode) == 0o644
    text = path.read_text()
    assert text == json.dumps(json.loads(text), sort_keys=True, indent=2, ensure_ascii=False) + "\n"
    assert victim.read_text() == "untouched"


def test_app_directory_in_place_of_response_is_moved_aside(control, control_dir) -> None:
    (control_dir / C.RESPONSE_FILE).mkdir()
    (control_dir / C.RESPONSE_FILE / "x").write_text("y")
    control.fail(C.STAGE_VALIDATION, "x")
    assert _read(control_dir / C.RESPONSE_FILE)["status"] == "error"


def test_no_temp_files_are_left_after_writes(control, control_dir) -> None:
    control.fail(C.STAGE_VALIDATION, "x")
    control.succeed({"cid": "b"})
    assert sorted(p.name for p in control_dir.iterdir()) == [C.RESPONSE_FILE]


def test_symlinked_control_dir_is_refused(tmp_path: Path, control_dir: Path) -> None:
    link = tmp_path / "link-dir"
    os.symlink(control_dir, link)
    (control_dir / C.REQUEST_FILE).write_text("{}")
    control = ControlDir(link, "node-a", FakeClock())
    with pytest.raises(SyncError):
        control.claim()
    with pytest.raises(SyncError):
        control.recover_stale_processing()
    assert (control_dir / C.REQUEST_FILE).exists()  # nothing was touched through the link


def test_writes_into_a_symlinked_control_dir_are_refused_and_logged(
    tmp_path, control_dir, caplog
) -> None:
    link = tmp_path / "link-dir"
    os.symlink(control_dir, link)
    ControlDir(link, "node-a", FakeClock()).fail(C.STAGE_VALIDATION, "x")  # never raises
    assert list(control_dir.iterdir()) == []
    assert "not a real directory" in caplog.text


# --- success (docs/FORMAT.md, "response.json (provider → app), success") ---------------


def test_succeed_writes_ok_removes_stale_invalid_and_processing(control, control_dir) -> None:
    (control_dir / C.INVALID_FILE).write_text("{}")
    (control_dir / C.REQUEST_FILE).write_text("{}")
    assert control.claim() is not None
    control.succeed({"cid": "bafk", "version": 1})
    assert _read(control_dir / C.RESPONSE_FILE) == {"status": "ok", "cid": "bafk", "version": 1}
    assert not (control_dir / C.INVALID_FILE).exists()
    assert not (control_dir / C.PROCESSING_FILE).exists()


def test_in_progress_status(control: ControlDir, control_dir: Path) -> None:
    control.in_progress(request_id="r")
    assert _read(control_dir / C.RESPONSE_FILE) == {"status": "in_progress", "request_id": "r"}


# --- recovery of a claimed request (docs/FORMAT.md, "request.json (app → provider)") ----


def test_orphan_processing_is_renamed_back(control, control_dir) -> None:
    (control_dir / C.PROCESSING_FILE).write_text('{"a": 1}')
    control.recover_stale_processing()
    assert (control_dir / C.REQUEST_FILE).read_text() == '{"a": 1}'
    assert not (control_dir / C.PROCESSING_FILE).exists()


def test_pending_request_wins_over_stale_processing(control, control_dir) -> None:
    (control_dir / C.PROCESSING_FILE).write_text('{"old": 1}')
    (control_dir / C.REQUEST_FILE).write_text('{"new": 1}')
    control.recover_stale_processing()
    assert (control_dir / C.REQUEST_FILE).read_text() == '{"new": 1}'
    claimed = control.claim()
    assert isinstance(claimed, ClaimedRequest) and claimed.body == {"new": 1}


def test_symlinked_processing_is_removed_on_recovery(control, control_dir, tmp_path) -> None:
    target = tmp_path / "t"
    target.write_text(SECRET)
    os.symlink(target, control_dir / C.PROCESSING_FILE)
    control.recover_stale_processing()
    assert not os.path.lexists(control_dir / C.PROCESSING_FILE)
    assert not os.path.lexists(control_dir / C.REQUEST_FILE)
    assert target.read_text() == SECRET


def test_recovery_without_processing_is_a_no_op(control, control_dir) -> None:
    control.recover_stale_processing()
    assert list(control_dir.iterdir()) == []


# --- answers never fail (issue 9 item 14) ----------------------------------------------------


def test_fail_echoing_an_unwritable_value_still_answers(control, control_dir) -> None:
    # A caller handing fail() a value the writer cannot render must not cost the answer.
    deep: list[object] = []
    for _ in range(5000):
        deep = [deep]
    control.fail(
        C.STAGE_VALIDATION,
        "bad \udcff",
        request_body={"n": float("nan"), "deep": deep, "s": "\udcff"},
        archive_paths=["/app/\udcff"],
        request_id="\ud800",
    )
    response = loads_strict((control_dir / C.RESPONSE_FILE).read_bytes())
    assert response["status"] == "error" and response["stage"] == "validation"
    loads_strict((control_dir / C.INVALID_FILE).read_bytes())


def test_ok_answer_that_cannot_be_serialised_is_written_bare(control, control_dir) -> None:
    control.succeed({"cid": "bafk", "version": 3, "metadata": {"x": object()}})
    assert loads_strict((control_dir / C.RESPONSE_FILE).read_bytes()) == {
        "status": "ok",
        "cid": "bafk",
        "version": 3,
    }
