"""In-volume staging of a chunked apply on real loop volumes (``sync/volume_staging.py``).

The new files are staged in ``<volume>/.car-sync-staging/`` while the app runs and
renamed into place at the commit; a volume without room stages on the host and copies;
a staged file the app changed is fetched again; a kill -9 at any point of the
rename-commit is rolled back (or finished) at the next start, which also sweeps the
staging dir; a provider never captures it.
"""

from __future__ import annotations

import os
import random
from pathlib import Path
from typing import Any

import pytest
from container_apps.sync import constants as C
from container_apps.sync.volume_staging import APP_HEADROOM_FRACTION, STAGE_DIR_NAME
from container_apps.tests.support.consumer_rig import leftovers
from container_apps.tests.support.provider_rig import NOW
from container_apps.tests.support.sigkill import run_and_kill
from container_apps.tests.support.volume_stage_rig import (
    consumer,
    publish,
    seed_consumer,
    seed_provider,
    staged_inodes,
    tree,
)

pytestmark = [pytest.mark.loopdev]
MiB = 1024 * 1024


def _loop(make_loop_volume: Any, name: str, size: str = "64M") -> Path:
    volume = make_loop_volume(name, size)
    volume.provision()
    mount: Path = volume.mount_point
    return mount


def _data(tmp: Path, **kw: Any) -> Path:
    data = tmp / "p-data"
    seed_provider(data, **kw)
    return data


def test_new_files_are_staged_in_the_volume_and_renamed_into_place(
    tmp_path: Path, make_loop_volume: Any
) -> None:
    data = _data(tmp_path)
    volume = _loop(make_loop_volume, "c")
    seed_consumer(volume)
    publish(tmp_path, data)
    seen: dict[str, int] = {}

    def on_step(index: int) -> None:
        if index == 0:  # the app is stopped, nothing renamed yet
            seen.update(staged_inodes(volume))

    side, _ = consumer(tmp_path, volume, on_step)
    outcome = side.tick(NOW + 1)
    assert outcome is not None and outcome.applied, outcome
    written = {p.lstat().st_ino for p in (volume / "sub").iterdir()}
    written.add((volume / "notes.txt").lstat().st_ino)
    assert len(seen) == 7  # six .bin files and notes.txt; the empty file needs no bytes
    assert set(seen.values()) == written  # the very inodes staged: renamed, not copied
    expected = tree(data)
    expected["local-only.txt"] = tree(volume)["local-only.txt"]
    assert tree(volume) == expected
    assert leftovers(volume) == []


def test_a_volume_without_room_for_staging_copies_from_the_host(
    tmp_path: Path, make_loop_volume: Any
) -> None:
    """Room for the snapshot but not for the app's headroom too: staged on the host."""
    data = _data(tmp_path, files=8, size=MiB)
    volume = _loop(make_loop_volume, "c", "32M")
    st = os.statvfs(volume)
    headroom = int(st.f_blocks * st.f_frsize * APP_HEADROOM_FRACTION)
    filler = st.f_bavail * st.f_frsize - (9 * MiB + 64 * 1024 + headroom // 2)
    (volume / "filler.bin").write_bytes(random.Random(1).randbytes(filler))
    publish(tmp_path, data)
    seen: list[tuple[bool, int]] = []

    def on_step(index: int) -> None:
        if index == 0:
            host = tmp_path / "consumer" / "state" / C.STAGING_DIR
            seen.append(((volume / STAGE_DIR_NAME).exists(), len(list(host.rglob("*.bin")))))

    side, _ = consumer(tmp_path, volume, on_step)
    outcome = side.tick(NOW + 1)
    assert outcome is not None and outcome.applied, outcome
    assert seen == [(False, 8)]
    for n in range(8):
        assert (volume / "sub" / f"f{n}.bin").read_bytes() == (
            data / "sub" / f"f{n}.bin"
        ).read_bytes()
    assert leftovers(volume) == []


def test_a_staged_file_the_app_changed_is_fetched_again(
    tmp_path: Path, make_loop_volume: Any
) -> None:
    data = _data(tmp_path)
    volume = _loop(make_loop_volume, "c")
    publish(tmp_path, data)
    side, containers = consumer(tmp_path, volume)
    stop = containers.stop_confirmed

    def tamper_then_stop() -> None:  # the app's last write before the stop
        staged = sorted((volume / STAGE_DIR_NAME).iterdir())
        assert staged
        for path in staged:
            with open(path, "r+b") as handle:
                handle.write(b"tampered")
        stop()

    containers.stop_confirmed = tamper_then_stop  # type: ignore[method-assign]
    outcome = side.tick(NOW + 1)
    assert outcome is not None and outcome.applied, outcome
    assert tree(volume) == tree(data)
    assert leftovers(volume) == []


@pytest.mark.parametrize("point", ["staged", "rename_1", "rename_4", "op_3", "op_7", "committed"])
def test_kill_9_during_a_rename_commit_is_undone_or_finished_at_start(
    tmp_path: Path, make_loop_volume: Any, point: str
) -> None:
    data = _data(tmp_path)
    volume = _loop(make_loop_volume, "c")
    seed_consumer(volume)
    before = tree(volume)
    publish(tmp_path, data)
    run_and_kill(
        tmp_path,
        "container_apps.tests.support.volume_stage_rig",
        str(tmp_path),
        str(volume),
        point,
    )
    assert staged_inodes(volume) or point == "committed"  # the kill left staged files
    side, _ = consumer(tmp_path, volume)
    side.recover(NOW + 2)
    assert leftovers(volume) == []
    if point == "committed":
        expected = tree(data)
        expected["local-only.txt"] = before["local-only.txt"]
        assert tree(volume) == expected
    else:
        assert tree(volume) == before
    outcome = side.tick(NOW + 3)  # and the next tick applies it cleanly
    if point != "committed":
        assert outcome is not None and outcome.applied, outcome
    expected = tree(data)
    expected["local-only.txt"] = before["local-only.txt"]
    assert tree(volume) == expected
    assert leftovers(volume) == []


@pytest.mark.parametrize("fmt", [C.ARCHIVE_FORMAT_CHUNKED, C.ARCHIVE_FORMAT_ZST])
def test_a_provider_never_captures_a_staging_dir_at_its_volume_root(
    tmp_path: Path, fmt: str
) -> None:
    """A volume that is also a consumer's may hold one while its app runs.

    A consumer refuses a snapshot holding a reserved name, so the apply succeeding
    shows the capture left it out; below the root the name is app data and is kept.
    """
    data = _data(tmp_path)
    (data / STAGE_DIR_NAME).mkdir()
    (data / STAGE_DIR_NAME / "7").write_bytes(b"half a snapshot")
    (data / "sub" / STAGE_DIR_NAME).mkdir()
    publish(tmp_path, data, fmt)
    volume = tmp_path / "c-volume"
    volume.mkdir()
    side, _ = consumer(tmp_path, volume)
    outcome = side.tick(NOW + 1)
    assert outcome is not None and outcome.applied, outcome
    assert not (volume / STAGE_DIR_NAME).exists()
    assert (volume / "sub" / STAGE_DIR_NAME).is_dir()
