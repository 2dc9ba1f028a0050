"""SyncMetrics: one runner's Prometheus metrics, served on ``METRICS_ADDR``.

README, "Metrics and alerts" lists the series.

Each runner has its own ``CollectorRegistry`` (never the process-global one), so two
runners in one process (tests, the demo) do not share counters, and the HTTP server
stops with the runner. Every series is labelled by instance id and sync key; names
start with ``car_``. The server is prometheus-client's own WSGI server on a daemon
thread: a scrape never touches the sync tick, which only bumps in-memory values.
"""

from __future__ import annotations

import logging
from wsgiref.simple_server import WSGIServer

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, Info, start_http_server

from ..sync import events as E
from ..sync.events import SyncEvent, SyncState
from .config import split_metrics_addr

_log = logging.getLogger(__name__)

# Downtime: a container stop/start is seconds; a big offline capture minutes.
DOWNTIME_BUCKETS = (0.1, 0.5, 1, 2, 5, 10, 30, 60, 120, 300, 600, 1800)
# Snapshot sizes: 64 KiB to 64 GiB, each bucket 4x the last.
SIZE_BUCKETS = tuple(float(64 * 1024 * 4**i) for i in range(11))

_OUTCOMES = {
    E.EVENT_PUBLISHED: ("publishes", "ok"),
    E.EVENT_PUBLISH_FAILED: ("publishes", "error"),
    E.EVENT_APPLIED: ("applies", "ok"),
    E.EVENT_QUARANTINED: ("applies", "quarantined"),
    E.EVENT_HALTED: ("applies", "halted"),
}


class SyncMetrics:
    """The ``SyncEvents`` observer that keeps the runner's metrics."""

    def __init__(self, instance_id: str, key: str = "") -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        self._labels = {"instance": instance_id, "key": key}
        base = ("instance", "key")
        r = self.registry
        self.publishes = Counter(
            "car_publishes", "Snapshot publishes by outcome and failed stage.",
            (*base, "outcome", "stage"), registry=r,
        )  # fmt: skip
        self.applies = Counter(
            "car_applies", "Snapshot applies by outcome (ok, quarantined, halted) and stage.",
            (*base, "outcome", "stage"), registry=r,
        )  # fmt: skip
        self.downtime = Histogram(
            "car_downtime_seconds", "App downtime of a publish (offline capture) or apply.",
            (*base, "role"), buckets=DOWNTIME_BUCKETS, registry=r,
        )  # fmt: skip
        self.size = Histogram(
            "car_snapshot_size_bytes", "archive_size_bytes of each published or applied snapshot.",
            (*base, "role"), buckets=SIZE_BUCKETS, registry=r,
        )  # fmt: skip
        self.sent = Counter(
            "car_snapshot_bytes_sent", "Snapshot bytes published (archive_size_bytes summed).",
            base, registry=r,
        )  # fmt: skip
        self.received = Counter(
            "car_snapshot_bytes_received", "Snapshot bytes applied (archive_size_bytes summed).",
            base, registry=r,
        )  # fmt: skip
        self.last_success = Gauge(
            "car_last_success_timestamp_seconds", "Wall-clock time of the last publish or apply.",
            (*base, "role"), registry=r,
        )  # fmt: skip
        self.quarantined = Gauge(
            "car_quarantined_snapshots", "Snapshots this consumer holds in quarantine.",
            base, registry=r,
        )  # fmt: skip
        self.halted = Gauge(
            "car_halted", "1 while the consumer is halted (car sync retry clears it).",
            base, registry=r,
        )  # fmt: skip
        self.backend_up = Gauge(
            "car_backend_up", "1 while the blob store or registry is reachable.",
            (*base, "backend"), registry=r,
        )  # fmt: skip
        self.snapshot = Info(
            "car_snapshot", "The applied (consumer) or last published (provider) snapshot.",
            (*base, "role"), registry=r,
        )  # fmt: skip

    # --- SyncEvents -----------------------------------------------------------------------
    def on_event(self, event: SyncEvent) -> None:
        counted = _OUTCOMES.get(event.event)
        if counted is None:
            return
        family, outcome = counted
        counter = self.publishes if family == "publishes" else self.applies
        counter.labels(**self._labels, outcome=outcome, stage=event.stage or "").inc()
        if outcome == "ok":
            self._success(event)

    def _success(self, event: SyncEvent) -> None:
        role = {**self._labels, "role": event.role}
        self.last_success.labels(**role).set(event.timestamp)
        if event.downtime_seconds is not None:
            self.downtime.labels(**role).observe(event.downtime_seconds)
        if event.size_bytes is not None:
            self.size.labels(**role).observe(event.size_bytes)
            moved = self.sent if event.role == E.ROLE_PROVIDER else self.received
            moved.labels(**self._labels).inc(event.size_bytes)

    def on_state(self, state: SyncState) -> None:
        self.quarantined.labels(**self._labels).set(state.quarantined)
        self.halted.labels(**self._labels).set(1 if state.halted else 0)
        for backend, up in state.backends_up:
            self.backend_up.labels(**self._labels, backend=backend).set(1 if up else 0)
        if state.cid is not None:
            version = "" if state.version is None else str(state.version)
            self.snapshot.labels(**self._labels, role=state.role).info(
                {"cid": state.cid, "version": version}
            )

    def on_cycle_ok(self, now: float) -> None:
        pass


class MetricsServer:
    """prometheus-client's HTTP server for one registry; ``close`` stops it."""

    def __init__(self, registry: CollectorRegistry, addr: str) -> None:
        host, port = split_metrics_addr(addr)
        self._server: WSGIServer
        self._server, self._thread = start_http_server(port, host, registry)
        self.host = host
        self.port = int(self._server.server_address[1])

    @property
    def url(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"http://{host}:{self.port}/metrics"

    def close(self) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(timeout=5)
