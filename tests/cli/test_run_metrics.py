"""`car run --metrics-addr`: checked like a config key, served by the running runner."""

from __future__ import annotations

import json
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import Any
from urllib.error import URLError
from urllib.request import urlopen

import pytest
from container_apps.tests.support.fixtures_loop import require_loopdev, sweep_loop_leftovers

CAR = [sys.executable, "-c", "from container_apps.cli import main; main()"]


def _config(tmp_path: Path, image: str, **keys: Any) -> Path:
    config = tmp_path / "car.json"
    raw = {"INSTANCE_ID": "metrics1", "IMAGE": image, "NETWORK_MODE": "none", **keys}
    config.write_text(json.dumps(raw))
    return config


def test_a_bad_metrics_addr_flag_exits_2_before_touching_anything(tmp_path: Path) -> None:
    config = _config(tmp_path, "car-busybox:latest")
    data = tmp_path / "data"
    result = subprocess.run(
        [*CAR, "run", str(config), "--data-dir", str(data), "--metrics-addr", "localhost:http"],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 2, result.stderr
    assert "car: config error: --metrics-addr: expected" in result.stderr
    assert not data.exists()


@pytest.mark.docker
@pytest.mark.loopdev
def test_the_flag_overrides_the_config_and_metrics_are_served_until_the_stop(
    tmp_path: Path, busybox_image: str
) -> None:
    require_loopdev()
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    config = _config(tmp_path, busybox_image, METRICS_ADDR="127.0.0.1:1")
    data = tmp_path / "data"
    proc = subprocess.Popen(
        [*CAR, "run", str(config), "--data-dir", str(data), "--metrics-addr", f":{port}"],
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        text = _scrape_when_up(f"http://127.0.0.1:{port}/metrics", proc)
        assert "# TYPE car_publishes_total counter" in text
        assert "# TYPE car_backend_up gauge" in text
        proc.send_signal(signal.SIGINT)
        _, stderr = proc.communicate(timeout=60)
        assert proc.returncode == 0, stderr
        assert f"metrics served at http://127.0.0.1:{port}/metrics" in stderr
        with pytest.raises(URLError):
            urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(timeout=10)
        sweep_loop_leftovers(data)


def _scrape_when_up(url: str, proc: subprocess.Popen[str]) -> str:
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        assert proc.poll() is None, proc.stderr.read() if proc.stderr else ""
        try:
            with urlopen(url, timeout=5) as answer:  # 127.0.0.1 only
                return str(answer.read().decode())
        except (URLError, ConnectionError):
            time.sleep(0.2)
    raise AssertionError("metrics never served")
