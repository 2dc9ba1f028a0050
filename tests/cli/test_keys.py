"""`car keys generate --out PATH` through the real CLI."""

from __future__ import annotations

import json
import stat
import subprocess
import sys
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


def test_car_run_with_a_world_readable_signing_key_exits_2_before_touching_anything(
    tmp_path: Path,
) -> None:
    out = tmp_path / "sync.key"
    assert CliRunner().invoke(app, ["keys", "generate", "--out", str(out)]).exit_code == 0
    out.chmod(0o644)
    config = tmp_path / "car.json"
    sync = {"ENABLED": True, "KEY": "k", "TYPE": "provider", "SIGNING_KEY_FILE": str(out)}
    config.write_text(
        json.dumps({"INSTANCE_ID": "k1", "IMAGE": "car-busybox:latest", "SYNC": sync})
    )
    data = tmp_path / "data"
    result = subprocess.run(
        [sys.executable, "-m", "container_apps", "run", str(config), "--data-dir", str(data)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 2, result.stderr
    assert f"car: config error: SYNC.SIGNING_KEY_FILE: {out}: readable by group or others" in (
        result.stderr
    )
    assert not data.exists()
