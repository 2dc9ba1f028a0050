"""Consumer stage labels on every failure path (outcome, quarantine, current_apply).

Each refusal must carry the stage an operator reads in ``car sync status``:
``validation`` for the record, ``r1fs_download`` for a missing or corrupt blob and a
digest mismatch, ``extract`` for bad members and space, ``runtime_stop`` for a failed
stop and ``commit`` for a rolled-back commit.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from container_apps.errors import ContainerRuntimeError
from container_apps.sync import constants as C
from container_apps.tests.support.consumer_rig import (
    KEY,
    Env,
    build_snapshot,
    d,
    f,
    make_env,
    make_record,
    new_entries,
    seed_old,
)

NOW = 1_764_400_000.0


def _stages(env: Env) -> tuple[str | None, str | None, str | None]:
    outcome = env.consumer.tick(NOW)
    assert outcome is not None and not outcome.applied
    [entry] = env.consumer.quarantine.entries()
    current = env.consumer.state.current() or {}
    return outcome.stage, entry.stage, current.get("stage")


@pytest.fixture
def env(tmp_path: Path) -> Env:
    e = make_env(tmp_path)
    seed_old(e.volume)
    return e


def test_missing_blob_is_labelled_r1fs_download(env: Env) -> None:
    archive = build_snapshot(env.tmp / "s.tar.zst", new_entries())
    env.registry.hset(C.CHAINSTORE_HKEY, KEY, make_record(archive).to_json())  # no blob
    assert _stages(env) == (C.STAGE_R1FS_DOWNLOAD,) * 3


def test_blob_corrupt_in_the_store_is_labelled_r1fs_download(env: Env) -> None:
    archive = build_snapshot(env.tmp / "s.tar.zst", new_entries())
    record = make_record(archive)
    env.publish(archive, record)
    env.store.corrupt(record.cid, b"junk" + archive.read_bytes())
    assert _stages(env) == (C.STAGE_R1FS_DOWNLOAD,) * 3


def test_manifest_digest_mismatch_is_labelled_r1fs_download(env: Env) -> None:
    archive = build_snapshot(env.tmp / "s.tar.zst", new_entries())
    record = make_record(archive, manifest_extra={"archive_sha256": "0" * 64})
    env.publish(archive, record)
    assert _stages(env) == (C.STAGE_R1FS_DOWNLOAD,) * 3


def test_bad_record_is_labelled_validation(env: Env) -> None:
    archive = build_snapshot(env.tmp / "s.tar.zst", new_entries())
    env.publish(archive, make_record(archive, manifest_extra={"archive_format": "tar.xz"}))
    assert _stages(env) == (C.STAGE_VALIDATION,) * 3


def test_bad_member_is_labelled_extract(env: Env) -> None:
    archive = build_snapshot(env.tmp / "s.tar.zst", [d("app/data"), f("app/data/../x", b"x")])
    env.publish(archive, make_record(archive))
    assert _stages(env) == (C.STAGE_EXTRACT,) * 3


def test_failed_stop_is_labelled_runtime_stop(env: Env) -> None:
    archive = build_snapshot(env.tmp / "s.tar.zst", new_entries())
    env.publish(archive, make_record(archive))
    env.containers.fail_stop = ContainerRuntimeError("stop not confirmed")
    assert _stages(env) == (C.STAGE_RUNTIME_STOP,) * 3


def test_rolled_back_commit_is_labelled_commit(tmp_path: Path) -> None:
    def on_step(index: int) -> None:
        if index == 2:
            raise OSError(28, "No space left on device")

    env = make_env(tmp_path, on_step=on_step)
    archive = build_snapshot(env.tmp / "s.tar.zst", new_entries())
    env.publish(archive, make_record(archive))
    assert _stages(env) == (C.STAGE_COMMIT,) * 3
