"""A put or get in a child process that pauses mid-transfer, so a test can SIGKILL it.

``python -m container_apps.tests.support.transfer_child STORE_URL CACHE_DIR put|get ARG
CONTROL_DIR``: at the first progress report (the temp file exists and holds bytes) it
creates ``CONTROL_DIR/paused`` and waits until ``CONTROL_DIR/go`` exists, then finishes
and prints the CID or the path. The parent either kills it there (a runner killed during
upload or download) or lets it go (a concurrent runner's transfer in flight).
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

from container_apps.stores.factory import open_store


def main(argv: list[str]) -> int:
    url, cache_dir, op, arg, control = argv
    store = open_store(url, cache_dir=Path(cache_dir))
    control_dir = Path(control)

    def progress(done: int, total: int | None) -> None:
        # Every transfer thread stops here until the parent says go (or kills us).
        marker = control_dir / "paused"
        if not marker.exists():
            marker.write_text(f"{done}/{total}")
        while not (control_dir / "go").exists():
            time.sleep(0.02)

    if op == "put":
        print(store.put(Path(arg), progress=progress), flush=True)
    else:
        print(store.get(arg, progress=progress), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
