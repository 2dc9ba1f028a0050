"""_SyncMixin: volume-sync lifecycle glue for the runner (STYLE G6).

Lifecycle glue only: build the manager from the runner's config and what it provisioned,
forward the start, the start gate and the ticks. Every decision (disabled reasons,
recovery order, poll cadence, halts) lives in ``SyncManager`` and the step classes. The
runner calls:
- ``_sync_setup()`` once volumes are provisioned and before the first container start;
- ``_sync_may_start()`` before every container start (False while halted);
- ``_sync_tick(now)`` every loop iteration while the container runs (``now`` monotonic);
- ``_sync_shutdown()`` when the runner stops.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING

from .manager import SyncManager, SyncSite, build_sync_manager

if TYPE_CHECKING:
    from ..layout import InstancePaths
    from ..runner.runner_config import RunnerConfig
    from ..volumes.binding import VolumeBinding
    from .container_control import ContainerControl
    from .events import SyncEvents


class _SyncMixin:
    """Config -> manager, ticks forwarded, stop/start through ContainerControl."""

    config: RunnerConfig
    paths: InstancePaths
    bindings: list[VolumeBinding]
    system_volume_error: str | None
    log: logging.Logger
    _sync: SyncManager | None = None
    sync_events: SyncEvents | None = None  # metrics and alerts (README, "Operating")

    def _container_control(self) -> ContainerControl:
        raise NotImplementedError  # provided by the runner

    def _sync_setup(self) -> None:
        """Build the manager, recover, and apply before the first start (consumer)."""
        site = SyncSite(
            paths=self.paths,
            bindings=tuple(self.bindings),
            node_id=self.config.node_id,
            blobs_url=self.config.storage.blobs,
            registry_url=self.config.storage.registry,
            system_volume_error=self.system_volume_error,
        )
        self._sync = build_sync_manager(
            self.config.sync, site, self._container_control(), log=self.log, events=self.sync_events
        )
        self._sync.start()

    def _sync_may_start(self) -> bool:
        """False while the instance is halted."""
        return self._sync is None or self._sync.may_start()

    def _sync_tick(self, now: float) -> None:
        """Forward one monitoring-loop tick (throttled by the manager)."""
        if self._sync is not None:
            self._sync.tick(now)

    def _sync_shutdown(self) -> None:
        """End sync's pending work, drop the manager; nothing of sync's outlives the runner."""
        if self._sync is not None:
            self._sync.shutdown()
        self._sync = None
