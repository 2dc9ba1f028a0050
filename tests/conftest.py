"""Session-wide test wiring.

Fixtures for real parts live in their own modules (one owner each):
- ``fixtures_docker``: dockerd check, the busybox test image, ``container_factory``;
- ``fixtures_loop``: loopback volumes and the loop-device sweep;
- ``fixtures_servers``: redis-server and the ``weed`` S3 server on 127.0.0.1.
"""

from __future__ import annotations

import pytest
from container_apps.tests.support.parts import PARTS_USED, required_parts

pytest_plugins = [
    "container_apps.tests.support.fixtures_docker",
    "container_apps.tests.support.fixtures_loop",
    "container_apps.tests.support.fixtures_servers",
]


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    """Say which real parts actually ran, so a silently skipped backend is visible."""
    ran = ", ".join(sorted(PARTS_USED)) or "none"
    terminalreporter.write_line(f"real parts used: {ran}")
    missing = required_parts() - PARTS_USED
    if missing:
        terminalreporter.write_line(f"required but never used: {', '.join(sorted(missing))}")
