"""`car --version` and shell completion (README, "Logs and output"), run as a user runs them."""

from __future__ import annotations

import os
import subprocess
import sys
from importlib.metadata import version
from pathlib import Path

import pytest


@pytest.fixture
def car(tmp_path: Path) -> list[str]:
    """A script named ``car`` (completion keys on the program name, ``_CAR_COMPLETE``)."""
    script = tmp_path / "bin" / "car"
    script.parent.mkdir()
    script.write_text("from container_apps.cli import main\nmain()\n")
    return [sys.executable, str(script)]


def _run(argv: list[str], **env: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        argv, capture_output=True, text=True, timeout=60, check=False, env={**os.environ, **env}
    )


def test_version_is_the_installed_package_version(car: list[str]) -> None:
    result = _run([*car, "--version"])
    assert result.returncode == 0, result.stderr
    assert result.stdout == f"car {version('container_apps')}\n"


def test_bash_completion_completes_commands_and_subcommands(car: list[str]) -> None:
    shown = _run([*car, "--show-completion", "bash"])
    assert shown.returncode == 0, shown.stderr
    assert "_CAR_COMPLETE=complete_bash" in shown.stdout
    assert "complete -o default -F _car_completion car" in shown.stdout
    top = _run(car, _CAR_COMPLETE="complete_bash", COMP_WORDS="car sy", COMP_CWORD="1")
    assert top.stdout.split() == ["sync"]
    sub = _run(car, _CAR_COMPLETE="complete_bash", COMP_WORDS="car sync hi", COMP_CWORD="2")
    assert sub.stdout.split() == ["history"]


def test_install_completion_writes_the_script_for_the_shell(car: list[str], tmp_path: Path) -> None:
    home = tmp_path / "home"
    home.mkdir()
    result = _run([*car, "--install-completion", "bash"], HOME=str(home))
    assert result.returncode == 0, result.stderr
    assert "_car_completion" in (home / ".bash_completions" / "car.sh").read_text()
    assert "car.sh" in (home / ".bashrc").read_text()
