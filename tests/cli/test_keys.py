"""`car keys generate --out PATH` through the real CLI."""

from __future__ import annotations

import stat
from pathlib import Path

from container_apps.cli import app
from typer.testing import CliRunner


def test_generate_prints_the_public_key_it_wrote_beside_a_0600_private_key(tmp_path: Path) -> None:
    out = tmp_path / "sync.key"
    result = CliRunner().invoke(app, ["keys", "generate", "--out", str(out)])
    assert result.exit_code == 0, result.output
    pub = (tmp_path / "sync.key.pub").read_text().strip()
    assert pub.startswith("car-ed25519:") and result.stdout.strip() == pub
    assert stat.S_IMODE(out.stat().st_mode) == 0o600


def test_generate_over_an_existing_key_is_one_line_error_and_keeps_it(tmp_path: Path) -> None:
    out = tmp_path / "sync.key"
    out.write_text("precious")
    result = CliRunner().invoke(app, ["keys", "generate", "--out", str(out)])
    assert result.exit_code == 1
    assert result.output.strip().count("\n") == 0
    assert "already exists" in result.output and "--force" in result.output
    assert out.read_text() == "precious" and not (tmp_path / "sync.key.pub").exists()
    forced = CliRunner().invoke(app, ["keys", "generate", "--out", str(out), "--force"])
    assert forced.exit_code == 0 and out.read_text() != "precious"
