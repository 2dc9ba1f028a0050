"""`car run` refusals are one line and leave nothing behind (README, "Logs and output").

Each case runs `car run` as a subprocess, as an operator would, and then looks at the
file system: a data dir that is a file, a run as a user other than root, and starts that
fail on Docker or on the image must not leave a data dir or an empty instance folder.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest
from container_apps.cli import app
from typer.testing import CliRunner

CAR = [sys.executable, "-c", "from container_apps.cli import main; main()"]
VALID = {"INSTANCE_ID": "err1", "IMAGE": "car-busybox:latest", "NETWORK_MODE": "none"}
NOBODY = 65534


def car_lines(stderr: str) -> list[str]:
    return [line for line in stderr.splitlines() if line.startswith("car: ")]


def _car_run(config: Path, *extra: str, env: dict[str, str] | None = None) -> tuple[int, str]:
    result = subprocess.run(
        [*CAR, "run", str(config), *extra],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
        env={**os.environ, **(env or {})},
    )
    return result.returncode, result.stderr


@pytest.fixture
def config(tmp_path: Path) -> Path:
    path = tmp_path / "car.json"
    path.write_text(json.dumps(VALID))
    return path


@pytest.mark.parametrize("below", ["", "sub/data"])
def test_a_data_dir_that_is_a_file_is_one_line_exit_2(
    tmp_path: Path, config: Path, below: str
) -> None:
    blocker = tmp_path / "datafile"
    blocker.write_text("not a directory\n")
    data = blocker / below if below else blocker
    code, err = _car_run(config, "--data-dir", str(data))
    assert code == 2, err
    assert car_lines(err) == err.splitlines(), err  # nothing but the one `car:` line
    [line] = car_lines(err)
    assert f"{blocker} is not a directory" in line and "--data-dir" in line
    assert blocker.read_text() == "not a directory\n"


@pytest.fixture
def open_home() -> Iterator[Path]:
    """A HOME any user may write to, so a run that wrongly creates its skeleton can."""
    home = Path(tempfile.mkdtemp(prefix="car-home-"))
    home.chmod(0o777)
    yield home
    shutil.rmtree(home)


def test_a_run_as_non_root_is_one_line_exit_2_and_creates_nothing(
    config: Path, open_home: Path
) -> None:
    config.parent.chmod(0o755)
    config.chmod(0o644)
    # Python lives under /root (0700): load the CLI and what it loads lazily (a dry run of
    # `car run --help`) first, then drop to nobody, as `sudo -u nobody car run` would run.
    code = (
        "import os, sys; from container_apps.cli import app, main; "
        "from typer.testing import CliRunner; CliRunner().invoke(app, ['run', '--help']); "
        f"os.setgroups([]); os.setgid({NOBODY}); os.setuid({NOBODY}); "
        f"sys.argv = ['car', 'run', {str(config)!r}]; main()"
    )
    env = {k: v for k, v in os.environ.items() if k != "CAR_DATA_DIR"}
    env["HOME"] = str(open_home)
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=60, env=env
    )
    assert result.returncode == 2, result.stderr
    [line] = result.stderr.splitlines()
    assert line.startswith("car: ") and "root" in line
    assert "dockerd" not in line
    assert list(open_home.iterdir()) == []


def test_a_start_without_docker_leaves_no_data_dir(tmp_path: Path, config: Path) -> None:
    # Nothing listens on 127.0.0.1:1: Docker is "down" without leaving the host.
    data = tmp_path / "new" / "data"
    code, err = _car_run(config, "--data-dir", str(data), env={"DOCKER_HOST": "tcp://127.0.0.1:1"})
    assert code == 1, err
    assert "dockerd" in car_lines(err)[-1]
    assert not (tmp_path / "new").exists()


@pytest.mark.docker
def test_a_failed_start_keeps_the_data_dir_and_other_instances_but_no_empty_folder(
    tmp_path: Path, config: Path, busybox_image: str
) -> None:
    data = tmp_path / "data"
    (data / "instances" / "other" / "logs").mkdir(parents=True)
    config.write_text(
        json.dumps({**VALID, "IMAGE": "car-no-such-image:x", "IMAGE_PULL_POLICY": "never"})
    )
    code, err = _car_run(config, "--data-dir", str(data))
    assert code == 1, err
    assert sorted(p.name for p in (data / "instances").iterdir()) == ["other"]
    status = CliRunner().invoke(app, ["sync", "status", "--data-dir", str(data)])
    assert "err1" not in status.output


@pytest.mark.docker
def test_a_failed_start_of_a_known_instance_keeps_its_folder(
    tmp_path: Path, config: Path, busybox_image: str
) -> None:
    data = tmp_path / "data"
    kept = data / "instances" / "err1" / "sync_history" / "sent" / "0000000001__x.json"
    kept.parent.mkdir(parents=True)
    kept.write_text("{}")
    config.write_text(
        json.dumps({**VALID, "IMAGE": "car-no-such-image:x", "IMAGE_PULL_POLICY": "never"})
    )
    code, err = _car_run(config, "--data-dir", str(data))
    assert code == 1, err
    assert kept.read_text() == "{}"


def test_with_log_format_json_even_the_refusals_are_json_lines(tmp_path: Path) -> None:
    config = tmp_path / "car.json"
    config.write_text(json.dumps({**VALID, "IMAGEE": "x"}))
    code, err = _car_run(config, "--log-format", "json", "--data-dir", str(tmp_path / "d"))
    assert code == 2, err
    entries = [json.loads(line) for line in err.splitlines()]
    assert [e["level"] for e in entries] == ["ERROR", "ERROR"]
    assert "IMAGEE: unknown key" in entries[0]["message"]
    blocker = tmp_path / "file"
    blocker.write_text("")
    config.write_text(json.dumps(VALID))
    code, err = _car_run(config, "--log-format", "json", "--data-dir", str(blocker))
    assert code == 2, err
    [entry] = [json.loads(line) for line in err.splitlines()]
    assert entry["instance"] == "err1" and "is not a directory" in entry["message"]
