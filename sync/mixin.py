"""_SyncMixin: volume-sync lifecycle glue for the runner (STYLE G6).

Placeholder hooks; the wiring to SyncManager lands with issue 6. The runner calls:
- ``_sync_setup()`` once volumes are provisioned and before the first container start
  (stale-request and journal recovery, apply-before-first-start for consumers);
- ``_sync_may_start()`` before every container start (False while halted, SPEC §7.7);
- ``_sync_tick(now)`` every loop iteration while the container runs;
- ``_sync_shutdown()`` when the runner stops.
"""

from __future__ import annotations


class _SyncMixin:
    """Lifecycle glue only: config -> manager, ticks forwarded, stop/start via ContainerControl."""

    def _sync_setup(self) -> None:
        """Recover and apply before the first start (no-op until issue 6)."""

    def _sync_may_start(self) -> bool:
        """False while the instance is halted."""
        return True

    def _sync_tick(self, now: float) -> None:
        """Forward one monitoring-loop tick to the sync manager."""

    def _sync_shutdown(self) -> None:
        """Release sync resources."""
