"""layout: where a data dir cannot be, and how a failed first start takes its folders back."""

from __future__ import annotations

from pathlib import Path

from container_apps.layout import DataDir, topmost_missing, unusable_dir_reason


def test_a_file_on_the_way_makes_the_data_dir_unusable(tmp_path: Path) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("x")
    assert unusable_dir_reason(blocker) == f"{blocker} is not a directory"
    assert unusable_dir_reason(blocker / "a" / "b") == f"{blocker} is not a directory"
    assert unusable_dir_reason(tmp_path / "new" / "data") is None
    assert unusable_dir_reason(tmp_path) is None


def test_topmost_missing_is_what_creating_the_path_makes_first(tmp_path: Path) -> None:
    assert topmost_missing(tmp_path / "a" / "b") == tmp_path / "a"
    assert topmost_missing(tmp_path) is None


def test_remove_empty_takes_back_only_empty_folders_up_to_the_created_one(
    tmp_path: Path,
) -> None:
    data = DataDir(tmp_path / "new" / "data")
    paths = data.instance("app")
    paths.ensure()
    paths.remove_empty(tmp_path / "new")
    assert not (tmp_path / "new").exists()
    paths.ensure()
    (data.instance("other").logs).mkdir(parents=True)
    paths.remove_empty(paths.root)
    assert data.instance_ids() == ["other"]
    paths.ensure()
    (paths.logs / "run.log").write_text("kept")
    paths.remove_empty(tmp_path / "new")
    assert (paths.logs / "run.log").read_text() == "kept"
    assert not paths.history_sent.exists()
