"""examples/car.service (README, "Running as a systemd service") is a unit systemd accepts
and says what the README says: `car run` after Docker, SIGTERM, a stop timeout above the
app's STOP_TIMEOUT, restarts on failure only."""

from __future__ import annotations

import configparser
import re
import shutil
import subprocess
from pathlib import Path

import pytest
from container_apps.runner.runner_config import RunnerConfig

REPO = Path(__file__).resolve().parents[1]
UNIT = REPO / "examples" / "car.service"
SHIPPED_CAR = "/usr/local/bin/car"


def _unit() -> configparser.ConfigParser:
    parser = configparser.ConfigParser(interpolation=None, strict=True)
    parser.optionxform = str  # type: ignore[assignment,method-assign]  # keys are case-sensitive
    parser.read_string(UNIT.read_text())
    return parser


def test_the_unit_runs_car_after_docker_and_stops_it_cleanly() -> None:
    unit = _unit()
    assert unit.sections() == ["Unit", "Service", "Install"]
    assert "docker.service" in unit["Unit"]["After"].split()
    assert "docker.service" in unit["Unit"]["Requires"].split()
    service = unit["Service"]
    assert service["ExecStart"].split()[:2] == [SHIPPED_CAR, "run"]
    assert service["Restart"] == "on-failure"
    assert service["RestartPreventExitStatus"] == "2"  # a config error is not retried
    assert service["KillSignal"] == "SIGTERM"
    assert unit["Install"]["WantedBy"] == "multi-user.target"


def test_the_stop_timeout_is_above_the_apps_and_the_comment_says_so() -> None:
    timeout = int(_unit()["Service"]["TimeoutStopSec"])
    app_default = RunnerConfig.model_fields["stop_timeout"].default
    assert timeout >= app_default + 60, "room for the app's stop plus unmounting"
    lines = UNIT.read_text().splitlines()
    at = next(i for i, line in enumerate(lines) if line.startswith("TimeoutStopSec="))
    comment: list[str] = []
    for line in reversed(lines[:at]):
        if not line.startswith("#"):
            break
        comment.insert(0, line)
    assert "STOP_TIMEOUT" in " ".join(comment) and "above" in " ".join(comment)
    readme = (REPO / "README.md").read_text()
    assert f"TimeoutStopSec={timeout}" in readme


def test_systemd_analyze_verify_accepts_the_unit(tmp_path: Path) -> None:
    analyze = shutil.which("systemd-analyze")
    if analyze is None:
        pytest.skip("systemd-analyze is not installed (no systemd here): only the parse tests ran")
    car = shutil.which("car")
    assert car, "the car console script is installed (pip install -e .)"
    # verify checks that ExecStart's program exists: point it at this machine's car.
    unit = tmp_path / "car.service"
    unit.write_text(UNIT.read_text().replace(SHIPPED_CAR, car))
    result = subprocess.run(
        [analyze, "verify", str(unit)], capture_output=True, text=True, timeout=60, check=False
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout + result.stderr == "", "systemd ignores (and reports) bad lines"


def test_systemd_analyze_would_catch_a_bad_line(tmp_path: Path) -> None:
    analyze = shutil.which("systemd-analyze")
    if analyze is None:
        pytest.skip("systemd-analyze is not installed (no systemd here)")
    car = shutil.which("car") or "/bin/true"
    text = UNIT.read_text().replace(SHIPPED_CAR, car)
    unit = tmp_path / "car.service"
    unit.write_text(re.sub(r"TimeoutStopSec=\d+", "TimeoutStopSec=two minutes", text))
    result = subprocess.run(
        [analyze, "verify", str(unit)], capture_output=True, text=True, timeout=60, check=False
    )
    assert "TimeoutStopSec" in result.stderr or "time value" in result.stderr
