"""The offline busybox test image builds and runs a shell command."""

from __future__ import annotations

from typing import Any

import pytest


@pytest.mark.docker
def test_busybox_image_runs_a_shell_command(container_factory: Any) -> None:
    container = container_factory(["sh", "-c", "echo hello-from-busybox"])
    result = container.wait(timeout=30)
    assert result["StatusCode"] == 0
    assert b"hello-from-busybox" in container.logs()
