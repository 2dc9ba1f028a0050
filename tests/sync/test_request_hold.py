"""RequestHold: a request that arrives while the backends are down is answered in_progress."""

from __future__ import annotations

import json
import logging
from pathlib import Path

from container_apps.sync import constants as C
from container_apps.sync.control_files import ControlDir
from container_apps.sync.request_hold import RequestHold

LOG = logging.getLogger("test.hold")


def _hold(tmp_path: Path) -> tuple[RequestHold, Path]:
    control = tmp_path / "volume-sync"
    control.mkdir()
    return RequestHold(ControlDir(control, "node-a"), LOG), control


def _response(control: Path) -> object:
    return json.loads((control / C.RESPONSE_FILE).read_text())


def test_a_pending_request_is_claimed_and_answered_in_progress_as_written(
    tmp_path: Path,
) -> None:
    hold, control = _hold(tmp_path)
    body = {"archive_paths": ["/app/data/"], "request_id": "r-7", "metadata": {"a": 1}}
    (control / C.REQUEST_FILE).write_text(json.dumps(body))
    hold.hold()
    assert _response(control) == {
        "status": "in_progress",
        "request_id": "r-7",
        "archive_paths": ["/app/data/"],
    }
    assert not (control / C.REQUEST_FILE).exists()
    assert json.loads((control / C.PROCESSING_FILE).read_text()) == body


def test_release_gives_the_held_request_back_unchanged(tmp_path: Path) -> None:
    hold, control = _hold(tmp_path)
    (control / C.REQUEST_FILE).write_text('{"archive_paths": ["/app/data"]}')
    hold.hold()
    hold.hold()  # nothing new: no second claim, the held one stays
    assert (control / C.PROCESSING_FILE).exists()
    hold.release()
    assert (control / C.REQUEST_FILE).read_text() == '{"archive_paths": ["/app/data"]}'
    assert not (control / C.PROCESSING_FILE).exists()


def test_a_newer_request_replaces_the_held_one(tmp_path: Path) -> None:
    hold, control = _hold(tmp_path)
    (control / C.REQUEST_FILE).write_text('{"archive_paths": ["/app/a"], "request_id": "old"}')
    hold.hold()
    (control / C.REQUEST_FILE).write_text('{"archive_paths": ["/app/b"], "request_id": "new"}')
    hold.hold()
    assert _response(control) == {
        "status": "in_progress",
        "request_id": "new",
        "archive_paths": ["/app/b"],
    }
    hold.release()
    assert "new" in (control / C.REQUEST_FILE).read_text()


def test_release_without_a_held_request_leaves_the_control_dir_alone(tmp_path: Path) -> None:
    hold, control = _hold(tmp_path)
    (control / C.PROCESSING_FILE).write_text("{}")  # not ours to re-queue mid-run
    hold.release()
    assert (control / C.PROCESSING_FILE).exists()
    assert not (control / C.REQUEST_FILE).exists()


def test_a_missing_control_dir_holds_nothing_and_raises_nothing(tmp_path: Path) -> None:
    hold = RequestHold(ControlDir(tmp_path / "absent", "node-a"), LOG)
    hold.hold()
    hold.release()
