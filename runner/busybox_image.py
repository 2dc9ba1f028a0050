"""The local busybox image that tests and ``car demo`` run (no registry is reachable).

``FROM scratch`` with the host's static busybox copied in: it builds offline in well
under a second. This module only prepares the build context; building goes through
``docker_runtime`` (the only module that talks to Docker).
"""

from __future__ import annotations

import shutil
from pathlib import Path

from ..errors import CarError

BUSYBOX_IMAGE_TAG = "car-busybox:latest"
BUSYBOX_CANDIDATES = ("/bin/busybox", "/usr/bin/busybox")

DOCKERFILE = """\
FROM scratch
COPY busybox /bin/busybox
RUN ["/bin/busybox", "--install", "-s", "/bin"]
CMD ["/bin/sh"]
"""


def find_static_busybox() -> Path:
    """The host's busybox binary (Debian's busybox-static installs /bin/busybox).

    Raises:
        CarError: none found, with the install command as hint.
    """
    for candidate in BUSYBOX_CANDIDATES:
        if Path(candidate).is_file():
            return Path(candidate)
    raise CarError("no static busybox binary found", hint="apt-get install -y busybox-static")


def write_build_context(directory: Path) -> Path:
    """Write Dockerfile + busybox into ``directory`` and return it."""
    directory.mkdir(parents=True, exist_ok=True)
    (directory / "Dockerfile").write_text(DOCKERFILE)
    shutil.copy2(find_static_busybox(), directory / "busybox")
    return directory
