"""restic, the peer figure for incremental transfer: its repository growth and seconds.

restic (Debian's package: ``apt-get install -y restic``) also cuts files into
content-defined chunks, packs and indexes them and deduplicates across snapshots, so
what its local repository grows by when one file changed is the yardstick for what our
blob store grows by. Everything it writes (repository, cache) stays under ``root``;
``RESTIC_PASSWORD`` is a fixed bench password, never a real secret.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import time
from pathlib import Path

from container_apps.bench.common import tree_bytes

RESTIC_INSTALL = "apt-get install -y restic"


def restic_missing() -> str | None:
    """The install hint when the ``restic`` command is missing, else None."""
    return None if shutil.which("restic") else f"restic not found: {RESTIC_INSTALL}"


class ResticPeer:
    """A local restic repository under ``root``."""

    def __init__(self, root: Path) -> None:
        self.repo = root / "repo"
        root.mkdir(parents=True, exist_ok=True)
        self._env = {
            **os.environ,
            "RESTIC_REPOSITORY": str(self.repo),
            "RESTIC_PASSWORD": "bench-only-password",
            "RESTIC_CACHE_DIR": str(root / "cache"),  # its cache must not count as growth
        }

    def _run(self, *args: str) -> str:
        proc = subprocess.run(
            ["restic", *args], env=self._env, capture_output=True, text=True, check=False
        )
        if proc.returncode != 0:
            raise RuntimeError(f"restic {' '.join(args)} failed: {proc.stderr.strip()[-2000:]}")
        return proc.stdout

    def version(self) -> str:
        """``restic 0.14.0`` and the repository format version, once ``init`` ran."""
        words = self._run("version").split()
        text = " ".join(words[:2])
        if self.repo.exists():
            config = self._run("cat", "config", "--json")
            text += f" (repository v{json.loads(config).get('version')})"
        return text

    def init(self) -> None:
        self._run("init")

    def backup(self, path: Path) -> float:
        """Seconds of ``restic backup PATH`` (the previous snapshot of PATH is its parent)."""
        start = time.perf_counter()
        self._run("backup", "--quiet", "--host", "bench", str(path))
        return time.perf_counter() - start

    def repo_bytes(self) -> int:
        """Bytes of every file in the repository."""
        return tree_bytes(self.repo)[0]
