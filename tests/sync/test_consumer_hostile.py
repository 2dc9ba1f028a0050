"""Hostile snapshots against a consumer on REAL loop ext4 volumes (issue 9, items 12, 16).

Archives are made with plain ``tarfile`` and raw PAX records (``mtime=nan`` and so on)
or base-256 header numbers, as an attacker who can write the registry and the store
would make them. Every one must be refused before the stop, quarantined with a reason
naming the field, and must leave the volume byte-for-byte as it was: no restart loop,
no ``.car-sync-*`` backup dir, old bytes intact. An unexpected error inside a commit
must be rolled back, and start-up recovery removes every orphan backup dir of ours.
"""

from __future__ import annotations

import io
import os
import tarfile
from pathlib import Path
from typing import Any

import pytest
from container_apps.sync import constants as C
from container_apps.sync.journal import Journal
from container_apps.tests.support.consumer_rig import (
    Entry,
    Env,
    build_snapshot,
    d,
    f,
    leftovers,
    make_env,
    make_record,
    new_entries,
    seed_old,
    tree,
    write_compressed,
)

NOW = 1_764_400_000.0
pytestmark = pytest.mark.loopdev


@pytest.fixture
def loop_env(tmp_path: Path, make_loop_volume: Any) -> Env:
    volume = make_loop_volume(name="data", size="16M")
    volume.provision()
    env = make_env(tmp_path, volume.mount_point)
    seed_old(env.volume)
    return env


def _publish(env: Env, archive: Path, **kw: Any) -> Any:
    record = make_record(archive, **kw)
    env.publish(archive, record)
    return record


def _ticks_for_ten_minutes(env: Env) -> list[Any]:
    """Tick every 10 s for 10 minutes (several backoff steps): the outcomes."""
    return [o for i in range(60) if (o := env.consumer.tick(NOW + i * 10)) is not None]


def _assert_refused_once_before_stop(env: Env, before: dict[str, Any], words: tuple[str, ...]):
    outcomes = _ticks_for_ten_minutes(env)
    # 60 s, 120 s, 240 s backoff: retried 4 times in 10 minutes, never stopped
    assert [o.kind for o in outcomes] == ["extract"] * 4, outcomes
    assert env.containers.calls == []  # never stopped, hence never restarted
    assert tree(env.volume) == before  # old bytes intact
    assert leftovers(env.volume) == []
    [entry] = env.consumer.quarantine.entries()
    assert entry.kind == "extract" and entry.stage == C.STAGE_EXTRACT
    for word in words:
        assert word in entry.error, entry.error
    state = env.consumer.state.current() or {}
    assert state["state"] == C.APPLY_STATE_FAILED_PREFLIGHT
    assert not Journal(env.settings.sync_state_dir).header_path.exists()


@pytest.mark.parametrize(
    ("pax", "field"),
    [
        ({"mtime": "nan"}, "mtime"),
        ({"mtime": "inf"}, "mtime"),
        ({"mtime": "-inf"}, "mtime"),
        ({"mtime": "1e300"}, "mtime"),
        ({"mtime": "-1e300"}, "mtime"),
        ({"mtime": "99999999999999999999"}, "mtime"),
        ({"uid": "99999999999999999999"}, "uid"),
        ({"gid": "-3"}, "gid"),
        ({"size": "-5"}, "size"),
    ],
)
def test_pax_header_field_out_of_range_is_refused_before_stop(
    loop_env: Env, pax: dict[str, str], field: str
) -> None:
    env = loop_env
    before = tree(env.volume)
    hostile = Entry("app/data/replace.txt", b"hostile bytes", pax=pax)
    archive = build_snapshot(env.tmp / "hostile.tar.zst", [d("app/data"), hostile])
    _publish(env, archive)
    _assert_refused_once_before_stop(env, before, (field, "/app/data/replace.txt"))


@pytest.mark.parametrize("mode", [-1, 2**40])
def test_base256_mode_out_of_range_is_refused_before_stop(loop_env: Env, mode: int) -> None:
    env = loop_env
    before = tree(env.volume)
    hostile = Entry("app/data/sub", None, raw_mode=mode)
    archive = build_snapshot(env.tmp / "hostile.tar.zst", [d("app/data"), hostile])
    _publish(env, archive)
    _assert_refused_once_before_stop(env, before, ("mode", "/app/data/sub"))


# --- item 16: the manifest's member count and unpacked size ------------------------------


def _tar_bytes(entries: list[Entry]) -> tuple[bytes, list[int]]:
    """Uncompressed tar of ``entries`` and the offset where each member's header starts."""
    raw = io.BytesIO()
    offsets = []
    with tarfile.open(fileobj=raw, mode="w", format=tarfile.PAX_FORMAT) as tar:
        for e in entries:
            offsets.append(tar.offset)
            info = tarfile.TarInfo(e.name)
            info.mtime = int(e.mtime)
            if e.data is None:
                info.type = tarfile.DIRTYPE
                tar.addfile(info)
            else:
                info.size = len(e.data)
                tar.addfile(info, io.BytesIO(e.data))
    return raw.getvalue(), offsets


def test_tar_cut_at_a_member_boundary_is_refused_as_incomplete_before_stop(
    loop_env: Env,
) -> None:
    env = loop_env
    before = tree(env.volume)
    full, offsets = _tar_bytes(new_entries())
    # The manifest describes the whole archive (6 members, 4010 bytes of files); the blob
    # is cut before the last member, end-of-archive blocks gone: every byte left is valid.
    cut = write_compressed(env.tmp / "cut.tar.zst", full[: offsets[-1]])
    _publish(env, cut, manifest_extra={"members": 6, "unpacked_bytes": 4010})
    _assert_refused_once_before_stop(env, before, ("incomplete", "members", "6"))


def test_unpacked_size_differing_from_the_manifest_is_refused_before_stop(
    loop_env: Env,
) -> None:
    env = loop_env
    before = tree(env.volume)
    archive = build_snapshot(env.tmp / "s.tar.zst", new_entries())
    _publish(env, archive, manifest_extra={"members": 6, "unpacked_bytes": 1})
    _assert_refused_once_before_stop(env, before, ("unpacked", "4010", "1"))


def test_archive_matching_its_manifest_counts_is_applied(loop_env: Env) -> None:
    env = loop_env
    archive = build_snapshot(env.tmp / "s.tar.zst", new_entries())
    _publish(env, archive, manifest_extra={"members": 6, "unpacked_bytes": 4010})
    outcome = env.consumer.tick(NOW)
    assert outcome is not None and outcome.applied, outcome


# --- any error inside a commit is rolled back --------------------------------------------


@pytest.mark.parametrize(
    "error",
    [
        ValueError("Invalid value NaN (not a number)"),
        OverflowError("timestamp out of range for platform time_t"),
        RuntimeError("a bug"),
        KeyError("x"),
    ],
)
def test_unexpected_error_mid_commit_rolls_back_restarts_once_and_backs_off(
    tmp_path: Path, make_loop_volume: Any, error: Exception
) -> None:
    volume = make_loop_volume(name="data", size="16M")
    volume.provision()

    def on_step(index: int) -> None:
        if index == 3:  # replace.txt and sub/new.bin are already replaced
            raise error

    env = make_env(tmp_path, volume.mount_point, on_step=on_step)
    seed_old(env.volume)
    before = tree(env.volume)
    record = _publish(env, build_snapshot(tmp_path / "s.tar.zst", new_entries()))
    outcomes = [o for i in range(6) if (o := env.consumer.tick(NOW + i * 10)) is not None]
    assert [(o.kind, o.stopped, o.halted) for o in outcomes] == [("commit", True, False)]
    assert env.containers.calls == ["stop", "start"]  # no restart loop
    assert tree(env.volume) == before
    assert leftovers(env.volume) == []
    [entry] = env.consumer.quarantine.entries()
    assert (entry.cid, entry.kind) == (record.cid, "commit")
    assert "rolled back" in entry.error
    assert env.consumer.state.current()["state"] == C.APPLY_STATE_FAILED_ROLLED_BACK


def test_a_plan_with_a_nan_mtime_past_preflight_is_rolled_back_not_left_half_applied(
    loop_env: Env,
) -> None:
    # Defence in depth: should a hostile value ever get past preflight, the syscall's
    # ValueError (what PAX mtime=nan did before preflight checked it) is rolled back.
    env = loop_env
    before = tree(env.volume)
    journal = Journal(env.settings.sync_state_dir)
    original = Journal.ops

    def ops_with_nan(self: Journal) -> Any:
        for op in original(self):
            yield op if op.container_path != "/app/data/sub/new.bin" else _with_mtime(op, "nan")

    record = _publish(env, build_snapshot(env.tmp / "s.tar.zst", new_entries()))
    Journal.ops = ops_with_nan  # type: ignore[method-assign]
    try:
        outcome = env.consumer.tick(NOW)
    finally:
        Journal.ops = original  # type: ignore[method-assign]
    assert outcome is not None and (outcome.kind, outcome.halted) == ("commit", False)
    assert env.containers.calls == ["stop", "start"]
    assert tree(env.volume) == before
    assert leftovers(env.volume) == []
    assert not journal.header_path.exists()
    assert env.consumer.quarantine.entries()[0].cid == record.cid


def _with_mtime(op: Any, value: str) -> Any:
    from dataclasses import replace

    return replace(op, mtime=float(value))


# --- orphan backup dirs -------------------------------------------------------------------


def _orphan(volume: Path, name: str, old: bytes = b"old bytes") -> Path:
    """A backup dir as an interrupted (journal-less) apply of an older runner left it."""
    path = volume / name
    path.mkdir(mode=0o700)
    (path / "0.bak").write_bytes(old)
    (path / "1.new").write_bytes(b"")
    (path / "2.meta").write_text("{}")
    (path / "3.bak").mkdir()
    (path / "3.bak" / "inner.txt").write_bytes(old)
    return path


def test_recovery_removes_every_orphan_backup_dir_of_ours_and_nothing_else(
    loop_env: Env, tmp_path: Path
) -> None:
    env = loop_env
    vol = env.volume
    orphans = [_orphan(vol, f".car-sync-{i:012x}") for i in range(41)]
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "0.bak").write_bytes(b"host file")
    # Look-alikes that are not ours: each must survive, and nothing is followed.
    (vol / ".car-sync-notours").mkdir()
    (vol / ".car-sync-notours" / "0.bak").write_bytes(b"app")
    (vol / ".car-sync-0123456789ab").symlink_to(outside)
    (vol / ".car-sync-aaaaaaaaaaaa").write_bytes(b"app file")
    (vol / ".car-sync-bbbbbbbbbbbb").mkdir()
    (vol / ".car-sync-bbbbbbbbbbbb" / "notes.txt").write_bytes(b"app data")
    foreign = _orphan(vol, ".car-sync-cccccccccccc")
    os.chown(foreign, 1000, 1000)  # made by someone else (the app), not by the runner
    (vol / "sub" / ".car-sync-dddddddddddd").mkdir()  # not at a volume root
    kept = {
        ".car-sync-notours",
        ".car-sync-0123456789ab",
        ".car-sync-aaaaaaaaaaaa",
        ".car-sync-bbbbbbbbbbbb",
        ".car-sync-cccccccccccc",
        "sub/.car-sync-dddddddddddd",
    }
    env.consumer.recover(NOW)
    assert not any(p.exists() for p in orphans)
    assert set(leftovers(vol)) >= kept
    assert {p for p in leftovers(vol) if "/" not in p or p.startswith("sub/")} == kept
    assert sorted(os.listdir(outside)) == ["0.bak"]
    assert (outside / "0.bak").read_bytes() == b"host file"
    assert (vol / "keep.txt").read_bytes() == b"kept"
    assert not env.consumer.is_halted()


def test_orphans_left_by_earlier_failed_commits_are_gone_after_a_restart_and_apply(
    loop_env: Env,
) -> None:
    env = loop_env
    for i in range(3):
        _orphan(env.volume, f".car-sync-{i:012x}")
    _publish(env, build_snapshot(env.tmp / "s.tar.zst", [*new_entries(), f("app/data/n", b"n")]))
    env.consumer.recover(NOW)
    outcome = env.consumer.tick(NOW)
    assert outcome is not None and outcome.applied
    assert leftovers(env.volume) == []
