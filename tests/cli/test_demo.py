"""`car demo` argument errors: one line, exit 2, before Docker or any volume."""

from __future__ import annotations

from pathlib import Path

from container_apps.cli import app
from typer.testing import CliRunner


def test_demo_with_a_file_as_data_dir_exits_2_in_one_line(tmp_path: Path) -> None:
    not_a_dir = tmp_path / "afile"
    not_a_dir.write_text("mine\n")
    result = CliRunner().invoke(app, ["demo", "--data-dir", str(not_a_dir)])
    assert result.exit_code == 2
    assert result.output.strip().splitlines() == [
        f"car: --data-dir {not_a_dir} is not a directory: pass a directory (created if missing)"
    ]
    assert not_a_dir.read_text() == "mine\n"
