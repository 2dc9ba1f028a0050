"""OpsServices: what ``METRICS_ADDR`` and ``NOTIFY`` start for one runner, and their stop.

The runner starts them before sync (so the first apply is counted and alerted) and
stops them after sync's shutdown (whose last publish attempt may still alert). Both
are off unless configured; ``events`` is then None and sync keeps its no-op observer.
"""

from __future__ import annotations

import logging

from ..errors import CarError
from ..sync.events import FanOut, SyncEvents
from .config import NotifyConfig
from .metrics import MetricsServer, SyncMetrics
from .notify import Notifier

_log = logging.getLogger(__name__)


class OpsServices:
    """The metrics server and the notifier of one runner (either may be absent)."""

    def __init__(
        self,
        metrics: SyncMetrics | None = None,
        server: MetricsServer | None = None,
        notifier: Notifier | None = None,
    ) -> None:
        self.metrics = metrics
        self.server = server
        self.notifier = notifier

    @classmethod
    def start(
        cls,
        *,
        instance_id: str,
        node_id: str,
        key: str,
        metrics_addr: str | None,
        notify: NotifyConfig,
        log: logging.Logger = _log,
    ) -> OpsServices:
        """Start what is configured.

        Raises:
            CarError: ``METRICS_ADDR`` cannot be listened on (in use, not an address here).
        """
        metrics = server = None
        if metrics_addr is not None:
            metrics = SyncMetrics(instance_id, key)
            try:
                server = MetricsServer(metrics.registry, metrics_addr)
            except OSError as exc:
                raise CarError(f"METRICS_ADDR {metrics_addr}: cannot listen: {exc}") from exc
            log.info("metrics served at %s", server.url)
        notifier = None
        if notify.enabled:
            notifier = Notifier(notify, instance_id=instance_id, node_id=node_id, log=log)
        return cls(metrics, server, notifier)

    @property
    def events(self) -> SyncEvents | None:
        observers: list[SyncEvents] = [o for o in (self.metrics, self.notifier) if o is not None]
        return FanOut(observers) if observers else None

    def close(self) -> None:
        """Stop serving and sending; idempotent, never raises, bounded in time."""
        server, notifier, self.server, self.notifier = self.server, self.notifier, None, None
        if server is not None:
            server.close()
        if notifier is not None:
            notifier.close()
