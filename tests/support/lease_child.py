"""Child processes that take a key's lease on a real registry (Redis or SQLite).

``race URL KEY N OUT``: wait for ``OUT.go``, then try once to take the lease as holder
``N`` and write ``granted`` or ``refused`` to ``OUT``; many such children race for one
key. ``hold URL KEY TMP TTL``: take the lease as ``killed-node/killed-instance``, then
pause (``sigkill.pause``) to be SIGKILLed while holding it.
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

from container_apps.registries.factory import open_registry
from container_apps.registries.lease import LEASE_HKEY, LeaseHolder
from container_apps.tests.support.sigkill import pause

KILLED = LeaseHolder("killed-node", "killed-instance")


def race(url: str, key: str, number: str, out: Path) -> None:
    registry = open_registry(url)
    registry.check()  # connect before the start signal, so the acquires really overlap
    go = out.with_suffix(".go")
    while not go.exists():
        time.sleep(0.005)
    holder = LeaseHolder(f"node-{number}", f"instance-{number}")
    result = registry.acquire_lease(LEASE_HKEY, key, holder, 60)
    out.write_text("granted" if result.acquired else "refused")


def hold(url: str, key: str, tmp: Path, ttl: float) -> None:
    result = open_registry(url).acquire_lease(LEASE_HKEY, key, KILLED, ttl)
    assert result.acquired, result
    pause(tmp)


if __name__ == "__main__":
    if sys.argv[1] == "race":
        race(sys.argv[2], sys.argv[3], sys.argv[4], Path(sys.argv[5]))
    else:
        hold(sys.argv[2], sys.argv[3], Path(sys.argv[4]), float(sys.argv[5]))
