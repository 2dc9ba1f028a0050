"""Atomic writes and per-filesystem flushes."""

from __future__ import annotations

import json
import os
import stat
from pathlib import Path

import pytest
from container_apps.errors import CarError
from container_apps.fsutil import (
    OwnerOnlyFileError,
    atomic_file,
    atomic_write_json,
    dumps_json,
    read_owner_only,
    sync_filesystems,
)
from container_apps.tests.support.strict_json import loads_strict
from pytest_mock import MockerFixture


def test_atomic_json_is_sorted_0644_and_leaves_no_temp_file(tmp_path: Path) -> None:
    target = tmp_path / "out.json"
    atomic_write_json(target, {"b": 1, "a": 2}, mode=0o644)
    assert list(json.loads(target.read_text())) == ["a", "b"]
    assert stat.S_IMODE(target.stat().st_mode) == 0o644
    assert os.listdir(tmp_path) == ["out.json"]


def test_atomic_write_refuses_a_symlinked_directory(tmp_path: Path) -> None:
    real = tmp_path / "real"
    real.mkdir()
    (tmp_path / "link").symlink_to(real)
    with pytest.raises(CarError):
        atomic_write_json(tmp_path / "link" / "x.json", {})
    assert os.listdir(real) == []


def test_failed_write_keeps_the_old_file_and_removes_the_temp(
    tmp_path: Path, mocker: MockerFixture
) -> None:
    target = tmp_path / "out.json"
    atomic_write_json(target, {"v": 1})
    mocker.patch("container_apps.fsutil.os.replace", side_effect=OSError("disk gone"))
    with pytest.raises(OSError, match="disk gone"):
        atomic_write_json(target, {"v": 2})
    assert json.loads(target.read_text()) == {"v": 1}
    assert os.listdir(tmp_path) == ["out.json"]


def test_sync_filesystems_flushes_each_given_directory(tmp_path: Path) -> None:
    sync_filesystems([str(tmp_path), str(tmp_path)])  # no error on a real directory


def test_sync_filesystems_reports_a_missing_directory(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError):
        sync_filesystems([str(tmp_path / "gone")])


# --- the writer is total over JSON values (issue 9 item 14) -------------------------------


def test_json_writer_is_total_over_values_a_lenient_parser_produces(tmp_path: Path) -> None:
    deep: list[object] = []
    for _ in range(5000):
        deep = [deep]
    value = {
        "surrogate": "a\udcffb",
        "\ud800key": 1,
        "nan": float("nan"),
        "inf": [float("inf"), -float("inf")],
        "huge": 10**5000,
        "deep": deep,
        "fine": {"é": 1.5},
    }
    target = tmp_path / "out.json"
    atomic_write_json(target, value)
    written = loads_strict(target.read_bytes())
    assert written["surrogate"] == "a\ufffdb" and written["\ufffdkey"] == 1
    assert written["nan"] is None and written["inf"] == [None, None]
    assert written["huge"] is None
    assert written["fine"] == {"é": 1.5}
    assert os.listdir(tmp_path) == ["out.json"]


def test_json_writer_output_is_unchanged_for_ordinary_values() -> None:
    value = {"b": [1, 2.5, None, True], "a": "naïve ✓", "c": {"z": {}, "y": []}}
    expected = json.dumps(value, sort_keys=True, indent=2, ensure_ascii=False) + "\n"
    assert dumps_json(value) == expected


def test_atomic_file_shows_the_content_only_when_complete(tmp_path: Path) -> None:
    target = tmp_path / "out.log"
    target.write_bytes(b"old")
    with atomic_file(target) as handle:
        handle.write(b"part one, ")
        assert target.read_bytes() == b"old"  # readers still see the previous file
        handle.write(b"part two")
    assert target.read_bytes() == b"part one, part two"
    assert os.listdir(tmp_path) == ["out.log"]


def test_atomic_file_removes_its_temp_file_on_failure(tmp_path: Path) -> None:
    target = tmp_path / "out.log"
    with pytest.raises(RuntimeError), atomic_file(target) as handle:
        handle.write(b"half")
        raise RuntimeError("stream broke")
    assert os.listdir(tmp_path) == []


def test_read_owner_only_reads_a_0600_file_bounded_and_names_why_it_refuses(
    tmp_path: Path,
) -> None:
    secret = tmp_path / "secret"
    secret.write_bytes(b"x" * 10)
    secret.chmod(0o600)
    assert read_owner_only(secret, 4, follow_symlinks=True) == b"xxxxx"
    assert read_owner_only(secret, None, follow_symlinks=True) == b"x" * 10
    link = tmp_path / "link"
    link.symlink_to(secret)
    assert read_owner_only(link, None, follow_symlinks=True) == b"x" * 10
    refusals = []
    for path, follow in ((link, False), (tmp_path, True), (tmp_path / "missing", True)):
        with pytest.raises(OwnerOnlyFileError) as caught:
            read_owner_only(path, None, follow_symlinks=follow)
        refusals.append(caught.value.kind)
    secret.chmod(0o640)
    with pytest.raises(OwnerOnlyFileError) as shared:
        read_owner_only(secret, None, follow_symlinks=True)
    assert refusals == ["unreadable", "not_regular", "unreadable"]
    assert (shared.value.kind, shared.value.detail) == ("shared", "0640")
