"""ApplyTransaction: overlay semantics, safe modes/owners/mtimes, journal, rollback, recovery."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest
from container_apps.errors import ApplyFailed
from container_apps.sync.journal import STATE_COMMITTING, Journal
from container_apps.sync.preflight import ConsumerLimits
from container_apps.sync.rollback import RECOVERY_FINISHED, RECOVERY_NONE, recover
from container_apps.tests.support.apply_kill import kill_commit, transaction
from container_apps.tests.support.consumer_rig import (
    LOG,
    build_snapshot,
    d,
    f,
    leftovers,
    make_record,
    new_entries,
    seed_old,
    tree,
)


def _staged(tmp: Path, volume: Path, entries=None, on_step=None):
    archive = build_snapshot(tmp / "snap.tar.zst", entries or new_entries())
    record = make_record(archive)
    txn, journal = transaction(tmp, volume, on_step)
    txn.stage(archive, record, ConsumerLimits())
    return txn, journal, archive


@pytest.fixture
def volume(tmp_path: Path) -> Path:
    vol = tmp_path / "volume"
    vol.mkdir()
    seed_old(vol)
    return vol


def test_commit_overlays_snapshot_and_keeps_other_files(tmp_path: Path, volume: Path) -> None:
    txn, journal, _ = _staged(tmp_path, volume)
    txn.commit()
    assert txn.finish()
    assert (volume / "keep.txt").read_bytes() == b"kept"
    assert (volume / "replace.txt").read_bytes() == b"new bytes"
    assert (volume / "sub" / "old.bin").read_bytes() == b"\x00old"
    assert (volume / "sub" / "new.bin").read_bytes() == b"\x01new" * 1000
    assert (volume / "fresh" / "a.txt").read_bytes() == b"a"
    assert leftovers(volume) == []
    assert not journal.header_path.exists() and not journal.plan_path.exists()


def test_commit_strips_special_bits_and_enforces_minimum_modes(
    tmp_path: Path, volume: Path
) -> None:
    txn, _, _ = _staged(tmp_path, volume)
    txn.commit()
    txn.finish()
    assert os.stat(volume / "replace.txt").st_mode & 0o7777 == 0o644  # 0600 raised to 0644
    assert os.stat(volume / "sub" / "new.bin").st_mode & 0o7777 == 0o755  # setuid stripped
    assert os.stat(volume / "sub").st_mode & 0o7777 == 0o755  # 0700 raised to 0755


def test_commit_preserves_archive_mtimes_of_files_and_dirs(tmp_path: Path, volume: Path) -> None:
    txn, _, _ = _staged(tmp_path, volume)
    txn.commit()
    txn.finish()
    assert os.stat(volume / "replace.txt").st_mtime == 1_600_000_000
    assert os.stat(volume / "sub" / "new.bin").st_mtime == 1_600_000_200
    assert os.stat(volume / "sub").st_mtime == 1_600_000_100


def test_commit_gives_entries_to_the_volume_root_owner(tmp_path: Path, volume: Path) -> None:
    os.chown(volume, 1234, 2345)
    txn, _, _ = _staged(tmp_path, volume)
    txn.commit()
    txn.finish()
    for rel in ("replace.txt", "sub", "sub/new.bin", "fresh", "fresh/a.txt"):
        st = os.lstat(volume / rel)
        assert (st.st_uid, st.st_gid) == (1234, 2345), rel


def test_journal_lists_every_operation_before_the_first_write(tmp_path: Path, volume: Path) -> None:
    seen: dict[str, object] = {}
    before = tree(volume)

    def on_step(index: int) -> None:
        if index == 0:
            header = json.loads((tmp_path / "sync_state" / "journal.json").read_text())
            seen["state"] = header["state"]
            seen["ops"] = header["ops"]
            seen["planned"] = len(list(journal.ops()))

    txn, journal, _ = _staged(tmp_path, volume, on_step=on_step)
    assert tree(volume) == before  # staging wrote nothing into the volume
    txn.commit()
    assert seen["state"] == STATE_COMMITTING
    assert seen["ops"] == seen["planned"] == txn.plan.ops  # type: ignore[union-attr]


def test_error_mid_commit_rolls_back_to_exactly_the_old_content(
    tmp_path: Path, volume: Path
) -> None:
    before = tree(volume)

    def on_step(index: int) -> None:
        if index == 4:
            raise OSError(5, "injected I/O error")

    txn, journal, _ = _staged(tmp_path, volume, on_step=on_step)
    with pytest.raises(ApplyFailed) as info:
        txn.commit()
    assert info.value.rolled_back is True
    assert tree(volume) == before
    assert leftovers(volume) == []
    assert not journal.header_path.exists()


@pytest.mark.parametrize(
    "error", [ValueError("Invalid value NaN"), OverflowError("out of range"), KeyError("k")]
)
def test_unexpected_error_mid_commit_rolls_back_to_exactly_the_old_content(
    tmp_path: Path, volume: Path, error: Exception
) -> None:
    before = tree(volume)

    def on_step(index: int) -> None:
        if index == 3:
            raise error

    txn, journal, _ = _staged(tmp_path, volume, on_step=on_step)
    with pytest.raises(ApplyFailed) as info:
        txn.commit()
    assert info.value.rolled_back is True
    assert type(error).__name__ in str(info.value)
    assert tree(volume) == before
    assert leftovers(volume) == []
    assert not journal.header_path.exists()


def test_damaged_marker_makes_the_rollback_unproven_not_a_crash(
    tmp_path: Path, volume: Path
) -> None:
    def on_step(index: int) -> None:
        if index == 2:  # op 2 (the existing dir "sub") left an n.meta marker
            [meta] = list(volume.glob(".car-sync-*/2.meta"))
            meta.write_text("{not json")
            raise OSError(5, "injected I/O error")

    txn, journal, _ = _staged(tmp_path, volume, on_step=on_step)
    with pytest.raises(ApplyFailed) as info:
        txn.commit()
    assert info.value.rolled_back is False
    assert "JSONDecodeError" in str(info.value)
    assert journal.header_path.exists()


def test_rollback_that_cannot_prove_consistency_reports_not_rolled_back(
    tmp_path: Path, volume: Path
) -> None:
    def on_step(index: int) -> None:
        if index == 5:  # fresh/a.txt written: drop an unjournaled file into the new dir
            (volume / "fresh" / "intruder").write_bytes(b"?")
            raise OSError(5, "injected I/O error")

    txn, journal, _ = _staged(tmp_path, volume, on_step=on_step)
    with pytest.raises(ApplyFailed) as info:
        txn.commit()
    assert info.value.rolled_back is False
    assert journal.header_path.exists()  # kept for the operator and the next recovery


def test_leaf_symlink_pointing_outside_is_replaced_not_written_through(
    tmp_path: Path, volume: Path
) -> None:
    outside = tmp_path / "outside.txt"
    outside.write_bytes(b"host secret")
    (volume / "replace.txt").unlink()
    (volume / "replace.txt").symlink_to(outside)
    txn, _, _ = _staged(tmp_path, volume)
    txn.commit()
    txn.finish()
    assert outside.read_bytes() == b"host secret"
    assert not (volume / "replace.txt").is_symlink()
    assert (volume / "replace.txt").read_bytes() == b"new bytes"


def test_symlinked_parent_pointing_outside_is_moved_aside_never_written_through(
    tmp_path: Path, volume: Path
) -> None:
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "victim").write_bytes(b"host file")
    (volume / "link").symlink_to(outside)
    # No directory member for app/data/link: a naive extract would write through the link.
    txn, _, _ = _staged(tmp_path, volume, [f("app/data/link/victim", b"pwned")])
    txn.commit()
    txn.finish()
    assert (outside / "victim").read_bytes() == b"host file"
    assert sorted(os.listdir(outside)) == ["victim"]
    assert not (volume / "link").is_symlink()
    assert (volume / "link" / "victim").read_bytes() == b"pwned"


def test_symlink_appearing_before_a_write_is_caught_by_the_recheck_and_rolled_back(
    tmp_path: Path, volume: Path
) -> None:
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "victim").write_bytes(b"host file")  # must not even be moved aside
    os.utime(outside, (1_000_000_000, 1_000_000_000))  # any rename in or out changes it
    before = tree(volume)
    entries = [d("app/data/x"), f("app/data/x/victim", b"pwned")]

    def on_step(index: int) -> None:
        if index == 0:  # swap the new dir for a link to outside before the file is written
            os.rmdir(volume / "x")
            (volume / "x").symlink_to(outside)

    txn, _, _ = _staged(tmp_path, volume, entries, on_step=on_step)
    with pytest.raises(ApplyFailed) as info:
        txn.commit()
    assert info.value.rolled_back is True
    assert os.listdir(outside) == ["victim"]
    assert (outside / "victim").read_bytes() == b"host file"
    assert os.stat(outside).st_mtime == 1_000_000_000
    assert tree(volume) == before
    assert leftovers(volume) == []


def test_archive_replaced_after_staging_is_detected_and_rolled_back(
    tmp_path: Path, volume: Path
) -> None:
    before = tree(volume)
    txn, _, archive = _staged(tmp_path, volume)
    build_snapshot(archive, [*new_entries(), f("app/data/extra", b"x")])
    with pytest.raises(ApplyFailed) as info:
        txn.commit()
    assert info.value.rolled_back is True
    assert tree(volume) == before


def test_recover_finishes_a_committed_apply_and_leaves_no_backup(
    tmp_path: Path, volume: Path
) -> None:
    txn, journal, _ = _staged(tmp_path, volume)
    txn.commit()  # crash "before finish": backups still in the volume
    assert leftovers(volume) != []
    outcome, header = recover(journal, LOG)
    assert outcome == RECOVERY_FINISHED and header is not None
    assert leftovers(volume) == []
    assert (volume / "replace.txt").read_bytes() == b"new bytes"


def test_recover_drops_a_plan_that_was_never_committed(tmp_path: Path, volume: Path) -> None:
    _, journal, _ = _staged(tmp_path, volume)
    assert journal.plan_path.exists()
    outcome, _ = recover(journal, LOG)
    assert outcome == RECOVERY_NONE
    assert not journal.plan_path.exists()


def test_dir_member_over_existing_file_and_file_over_existing_dir_roll_back(
    tmp_path: Path, volume: Path
) -> None:
    before = tree(volume)
    entries = [d("app/data/keep.txt"), f("app/data/sub", b"now a file"), f("app/data/z", b"z")]

    def on_step(index: int) -> None:
        if index == 2:
            raise OSError(28, "No space left on device")

    txn, _, _ = _staged(tmp_path, volume, entries, on_step=on_step)
    with pytest.raises(ApplyFailed):
        txn.commit()
    assert tree(volume) == before
    assert leftovers(volume) == []


# --- SIGKILL in the middle of a commit -------------------------------------------------


def sigkill_case(tmp: Path, volume: Path, pause_after: int) -> tuple[dict, dict]:
    """Kill a commit after op ``pause_after`` (-1: after committed); recover; return trees."""
    build_snapshot(tmp / "snap.tar.zst", new_entries())
    before = tree(volume)
    kill_commit(tmp, volume, pause_after)
    journal = Journal(tmp / "sync_state")
    assert journal.header_path.exists()
    recover(journal, LOG)
    return before, tree(volume)


@pytest.mark.parametrize("pause_after", [0, 3, 5])
def test_sigkill_mid_commit_then_recover_restores_exactly_old_content(
    tmp_path: Path, volume: Path, pause_after: int
) -> None:
    before, after = sigkill_case(tmp_path, volume, pause_after)
    assert after == before
    assert leftovers(volume) == []


def test_sigkill_after_commit_point_then_recover_keeps_exactly_new_content(
    tmp_path: Path, volume: Path
) -> None:
    ref_tmp = tmp_path / "ref"
    reference = ref_tmp / "volume"
    reference.mkdir(parents=True)
    seed_old(reference)
    txn, _, _ = _staged(ref_tmp, reference)
    txn.commit()
    txn.finish()
    _, after = sigkill_case(tmp_path, volume, -1)
    assert after == tree(reference)
    assert leftovers(volume) == []
