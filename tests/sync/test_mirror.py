"""Mirror mode (``SYNC.APPLY_MODE: "mirror"``) on real loop ext4 volumes, tar and chunked.

What the snapshot does not hold is removed (a stale SQLite ``-wal`` first of all), links
are removed as links, a failed or killed commit brings every removed entry back byte
for byte with its mode and mtime, and overlay mode keeps all of it.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path

import pytest
from container_apps.sync import constants as C
from container_apps.sync.journal import Journal
from container_apps.sync.mirror import KIND_REMOVE
from container_apps.sync.rollback import recover
from container_apps.tests.support.apply_kill import kill_commit
from container_apps.tests.support.consumer_rig import (
    LOG,
    Env,
    build_snapshot,
    d,
    f,
    leftovers,
    make_env,
    make_record,
)
from container_apps.tests.support.mirror_rig import (
    MIRRORED,
    NEW_DB,
    chunked_store,
    full_tree,
    publish_chunked,
    publish_tar,
    seed_stale,
)
from container_apps.tests.support.provider_rig import NOW

pytestmark = pytest.mark.loopdev
FORMATS = ["tar", "chunked"]


def _env(tmp: Path, make_loop_volume: Callable[..., object], mode: str, **kw: object) -> Env:
    volume = make_loop_volume(name="data", size="16M")
    volume.provision()  # type: ignore[attr-defined]
    env = make_env(
        tmp,
        volume.mount_point,
        apply_mode=mode,
        store=chunked_store(tmp),
        **kw,  # type: ignore[attr-defined,arg-type]
    )
    seed_stale(env.volume, tmp / "outside")
    return env


def _publish(env: Env, fmt: str) -> None:
    if fmt == "tar":
        publish_tar(env)
    else:
        publish_chunked(env, env.tmp)


def _mine(env: Env) -> set[str]:
    return set(full_tree(env.volume)) - {"lost+found"}


@pytest.mark.parametrize("fmt", FORMATS)
def test_mirror_removes_a_stale_wal_old_entries_and_links_as_links(
    tmp_path: Path, make_loop_volume: Callable[..., object], fmt: str
) -> None:
    env = _env(tmp_path, make_loop_volume, C.APPLY_MODE_MIRROR)
    outside_before = full_tree(tmp_path / "outside")
    _publish(env, fmt)
    outcome = env.consumer.tick(NOW + 1)
    assert outcome is not None and outcome.applied, outcome
    assert _mine(env) == MIRRORED
    assert (env.volume / "app.db").read_bytes() == NEW_DB
    assert full_tree(tmp_path / "outside") == outside_before  # link targets untouched
    assert leftovers(env.volume) == []


@pytest.mark.parametrize("fmt", FORMATS)
def test_overlay_keeps_the_stale_wal_and_everything_the_snapshot_lacks(
    tmp_path: Path, make_loop_volume: Callable[..., object], fmt: str
) -> None:
    env = _env(tmp_path, make_loop_volume, C.APPLY_MODE_OVERLAY)
    before = _mine(env)
    _publish(env, fmt)
    outcome = env.consumer.tick(NOW + 1)
    assert outcome is not None and outcome.applied, outcome
    assert _mine(env) == before | MIRRORED
    assert (env.volume / "app.db-wal").read_bytes() == b"stale write-ahead log"
    assert (env.volume / "app.db").read_bytes() == NEW_DB


@pytest.mark.parametrize("fmt", FORMATS)
def test_a_mirror_commit_failing_after_its_removals_restores_them_byte_for_byte(
    tmp_path: Path, make_loop_volume: Callable[..., object], fmt: str
) -> None:
    failed_at: list[str] = []

    def fail_at_last_removal(index: int) -> None:
        ops = list(Journal(env.settings.sync_state_dir).ops())
        if index == ops[-1].index:
            failed_at.append(ops[-1].kind)
            raise OSError(5, "Input/output error")

    env = _env(tmp_path, make_loop_volume, C.APPLY_MODE_MIRROR, on_step=fail_at_last_removal)
    before = full_tree(env.volume)
    _publish(env, fmt)
    outcome = env.consumer.tick(NOW + 1)
    assert outcome is not None and not outcome.applied and outcome.kind == "commit"
    assert failed_at == [KIND_REMOVE]  # every removal had run
    assert full_tree(env.volume) == before  # bytes, modes, mtimes, links
    assert leftovers(env.volume) == []


def _stage_tar(tmp: Path, volume: Path) -> None:
    env = make_env(tmp / "stage", volume)  # only to build snap.tar.zst where the child reads it
    publish_tar(env)
    os.replace(env.tmp / "snap.tar.zst", tmp / "snap.tar.zst")


@pytest.mark.parametrize(("pause_after", "expect_new"), [(5, False), (6, False), (-1, True)])
def test_a_mirror_commit_killed_with_sigkill_recovers_to_exactly_old_or_new(
    tmp_path: Path, make_loop_volume: Callable[..., object], pause_after: int, expect_new: bool
) -> None:
    volume = make_loop_volume(name="data", size="16M")
    volume.provision()  # type: ignore[attr-defined]
    root: Path = volume.mount_point  # type: ignore[attr-defined]
    seed_stale(root, tmp_path / "outside")
    (tmp_path / "stage").mkdir()
    _stage_tar(tmp_path, root)
    before = full_tree(root)
    kill_commit(tmp_path, root, pause_after, "mirror")  # ops 0-3 write, 4.. remove
    assert leftovers(root)  # the backup dir of the killed commit
    recover(Journal(tmp_path / "sync_state"), LOG)
    after = full_tree(root)
    if expect_new:
        assert set(after) - {"lost+found"} == MIRRORED
        assert (root / "app.db").read_bytes() == NEW_DB
    else:
        assert after == before
    assert leftovers(root) == []


def test_mirror_never_leaves_the_snapshots_archive_paths(
    tmp_path: Path, make_loop_volume: Callable[..., object]
) -> None:
    env = _env(tmp_path, make_loop_volume, C.APPLY_MODE_MIRROR)
    before = _mine(env)
    entries = [d("app/data/sub"), f("app/data/sub/keep.txt", b"keep")]
    archive = build_snapshot(tmp_path / "sub.tar.zst", entries)
    # Nested archive paths: the walk of both meets sub/old.txt; it is removed once.
    env.publish(archive, make_record(archive, archive_paths=("/app/data/sub", "/app/data/sub/")))
    outcome = env.consumer.tick(NOW + 1)
    assert outcome is not None and outcome.applied, outcome
    assert _mine(env) == (before - {"sub/old.txt"}) | {"sub/keep.txt"}  # the rest stays
    assert (env.volume / "app.db-wal").exists()
