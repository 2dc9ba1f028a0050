"""Machine noise during a bench run: /proc/loadavg sampled on a thread.

The bench shares 2 cores with whatever else runs; its ratios are measured in the same
run so that load hits a method and its baseline alike, but a reader still needs to know
how busy the machine was. ``LoadSampler`` reads the 1-minute load average every
``interval`` seconds from start to stop; ``summary()`` gives min / median / max.
"""

from __future__ import annotations

import os
import threading
from pathlib import Path

from container_apps.bench.common import median

LOADAVG = Path("/proc/loadavg")


def read_loadavg(path: Path = LOADAVG) -> float:
    """The 1-minute load average (first field of /proc/loadavg)."""
    return float(path.read_text().split()[0])


class LoadSampler:
    """Samples the 1-minute load average on a daemon thread until ``stop()``."""

    def __init__(self, interval: float = 2.0, path: Path = LOADAVG) -> None:
        self.interval = interval
        self.path = path
        self.samples: list[float] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="bench-loadavg", daemon=True)

    def start(self) -> LoadSampler:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join(timeout=self.interval + 5)

    def _run(self) -> None:
        while True:
            self.samples.append(read_loadavg(self.path))
            if self._stop.wait(self.interval):
                return

    def summary(self) -> str:
        """``loadavg (1 min) min/median/max 2.9/3.4/4.1 over N samples, 2 CPUs``."""
        if not self.samples:
            return "loadavg: no samples"
        low, mid, high = min(self.samples), median(self.samples), max(self.samples)
        return (
            f"loadavg (1 min) min/median/max {low:.2f}/{mid:.2f}/{high:.2f} over "
            f"{len(self.samples)} samples every {self.interval:g} s; {os.cpu_count()} CPUs"
        )
