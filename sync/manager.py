"""SyncManager: wires the provider or consumer step objects and drives them (STYLE G5).

The only code that knows the order of things at start (check the backends, recover,
then apply before the first start) and the poll cadence (``POLL_INTERVAL`` on a monotonic
clock; the consumer's registry refresh cadence lives in ``RecordSource``). While a backend
that failed its check is down (``BackendGate``), the role waits: a provider answers a new
request ``in_progress`` and holds it (``RequestHold``), a consumer applies nothing.
``build_sync_manager`` turns a ``SyncConfig`` plus what the runner provisioned into a
manager; when sync cannot run (not enabled, no system volume, a backend URL that is
wrong) it returns a manager that does nothing and says why, so the runner never branches
on it. A backend that is down or broken is not such a case: it is an outage.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

from ..errors import CarError
from ..layout import InstancePaths
from ..registries.base import Registry
from ..registries.factory import default_registry_url, open_registry
from ..stores.base import BlobStore
from ..stores.factory import default_store_url, open_store
from ..stores.progress import ProgressStore
from ..volumes.binding import VolumeBinding
from . import constants as C
from .backend_gate import BackendGate
from .chunked_publish import ChunkedSnapshotPublisher
from .config import SyncConfig
from .consumer import ConsumerSettings, SnapshotConsumer
from .container_control import ContainerControl
from .control_files import ControlDir
from .crypto.framing import Sealer
from .crypto.keys import load_keys
from .event_watch import EventWatch
from .events import SyncEvents
from .history import HistoryLog
from .host_control import KEPT_RECORDS_FILE, host_requests_dir
from .host_side import HostSide
from .kept_records import KeptRecords
from .key_files import KeyFileError, load_signing_key
from .lease_keeper import lease_seconds
from .paths import PathResolver
from .pin import PinnedRecordSource
from .preflight import ConsumerLimits
from .provider import PublisherConfig, PublishTargets, SnapshotPublisher
from .request_channels import RequestChannels, default_paths
from .request_hold import RequestHold
from .restore import RestoreDesk
from .runner_state import RunnerState
from .schedule import SnapshotSchedule
from .signing import RecordSigner, RecordVerifier

_log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class SyncSite:
    """What the runner provisioned and knows, as sync needs it."""

    paths: InstancePaths
    bindings: Sequence[VolumeBinding]
    node_id: str
    blobs_url: str | None = None
    registry_url: str | None = None
    system_volume_error: str | None = None

    @property
    def store_url(self) -> str:
        return self.blobs_url or default_store_url(self.paths.data.root)

    @property
    def registry_url_or_default(self) -> str:
        return self.registry_url or default_registry_url(self.paths.data.root)

    @property
    def volume_roots(self) -> tuple[Path, ...]:
        """Where this instance's syncable volumes live (docs/FORMAT.md, "Host-side layout")."""
        return (self.paths.fixed_volumes / "mounts", self.paths.data.container_volumes)

    @property
    def download_dir(self) -> Path:
        return self.paths.sync_state / "downloads"


class SyncManager:
    """Drives one role: ``start`` once before the first container start, then ``tick``."""

    def __init__(
        self,
        cfg: SyncConfig,
        *,
        publisher: SnapshotPublisher | None = None,
        consumer: SnapshotConsumer | None = None,
        disabled_reason: str | None = None,
        gate: BackendGate | None = None,
        hold: RequestHold | None = None,
        host: HostSide | None = None,
        wall_clock: Callable[[], float] = time.time,
        log: logging.Logger = _log,
        events: SyncEvents | None = None,
    ) -> None:
        self.cfg = cfg
        self.publisher = publisher
        self.consumer = consumer
        self.disabled_reason = disabled_reason
        self.gate = gate or BackendGate([], log)
        self._hold = hold
        self.host = host or HostSide(log)
        self._wall = wall_clock
        self._log = log
        self._next_tick: float | None = None
        self._halt_seen = False
        # Metrics and alerts (README, "Operating"): fed from the steps' outcomes.
        self._watch = EventWatch(
            events,
            cfg.key or "",
            log,
            publisher=publisher,
            consumer=consumer,
            gate=self.gate,
        )

    @property
    def active(self) -> bool:
        return self.publisher is not None or self.consumer is not None

    def start(self) -> None:
        """Check the backends, recover interrupted work; a consumer applies the current record.

        A backend that fails its check does not stop the start: it is logged once and
        re-checked by the ticks; local recovery needs no backend and runs regardless.
        """
        if not self.active:
            return
        self.gate.check_all()
        self._watch.baseline(self._wall())
        if self.publisher is not None:
            self.publisher.recover()
            if self.gate.is_open:
                self.publisher.renew_lease()
        if self.consumer is None:
            return
        self._recover_and_apply(self.consumer)
        if self.consumer.is_halted():
            self._halt_seen = True
            self._log.error("volume-sync halted: %s", self.consumer.halt_reason())
        self._watch.check_halt(self._wall())

    def _recover_and_apply(self, consumer: SnapshotConsumer) -> None:
        """Recover, then apply the current record while the app is down (no double boot).

        With a backend down, the app starts on its current data; a tick applies later.
        """
        now = self._wall()
        consumer.recover(now)
        if not self.gate.is_open:
            return
        if not consumer.is_halted() and consumer.needs_initial_apply(now):
            self._log.info("volume-sync: applying the current snapshot before the container starts")
            self._watch.after_apply(consumer.apply_before_first_start(now), now)

    def may_start(self) -> bool:
        """False while halted; after ``car sync retry`` recovers first."""
        if self.consumer is None:
            return True
        if self.consumer.is_halted():
            self._halt_seen = True
            return False
        if self._halt_seen:
            self._log.info("volume-sync halt cleared; recovering before the container starts")
            self._halt_seen = False
            self._recover_and_apply(self.consumer)
            self._halt_seen = self.consumer.is_halted()
            self._watch.check_halt(self._wall())
            return not self._halt_seen
        return True

    def tick(self, monotonic_now: float) -> None:
        """One sync step, at most every ``POLL_INTERVAL`` seconds."""
        if self._next_tick is not None and monotonic_now < self._next_tick:
            return
        self._next_tick = monotonic_now + self.cfg.poll_interval
        if not self.active:
            self.host.answer_while_disabled()
            return
        now = self._wall()
        self._watch.begin_tick()
        ran = False
        try:
            ran = self._step(monotonic_now, now)
        except Exception:
            # The steps answer every failure they know; anything else is a bug, and a bug
            # in sync must not take the app's runner down. Logged and retried next tick.
            self._log.exception("volume-sync tick failed unexpectedly; retrying next tick")
        self._watch.end_tick(now, ran=ran)

    def _step(self, monotonic_now: float, now: float) -> bool:
        """The tick's work; False when a backend is down (the role waits)."""
        if not self.gate.ready(monotonic_now):
            if self._hold is not None:
                self._hold.hold()
            return False
        if self._hold is not None:
            self._hold.release()
        if self.publisher is not None:
            self.publisher.renew_lease()  # README, "One writer per key"
            self.host.before_publish(now)
            published = self.publisher.publish_pending(now)
            self.host.after_publish(published)
            self._watch.after_publish(published, now)
        if self.consumer is not None:
            self.host.before_apply(now)
            self._watch.after_apply(self.consumer.tick(now), now)
            return self.consumer.registry_up and self.consumer.store_up
        return not (self.publisher is not None and self.publisher.waiting_for_registry)

    def shutdown(self) -> None:
        """The runner stops: a publish still waiting for the registry gets a last attempt."""
        if self.publisher is None:
            return
        try:
            published = self.publisher.shutdown()
            self.host.after_publish(published)
            self._watch.after_publish(published, self._wall())
        except Exception:  # as in tick: a bug here must not block the runner's stop
            self._log.exception("volume-sync shutdown failed unexpectedly")


def build_sync_manager(
    cfg: SyncConfig,
    site: SyncSite,
    containers: ContainerControl,
    *,
    log: logging.Logger = _log,
    events: SyncEvents | None = None,
) -> SyncManager:
    """The manager for this runner; a disabled one (with a reason) when sync cannot run.

    ``events`` (metrics and alerts, README "Operating") is told what the role does.
    """
    reason = _disabled_reason(cfg, site)
    store: BlobStore | None = None
    registry: Registry | None = None
    if reason is None:
        try:
            # URL checks only: a backend that is down or broken is set up by its first
            # use and is an outage (BackendGate), not a reason to switch sync off.
            store = ProgressStore(open_store(site.store_url, cache_dir=site.download_dir))
            registry = open_registry(site.registry_url_or_default)
        except CarError as exc:
            reason = f"volume-sync backend misconfigured: {exc}"
    signer, key_problem = _signer(cfg) if reason is None else (None, None)
    reason = reason or key_problem
    write_runner_state(cfg, site, store, registry, reason)
    if reason is not None or store is None or registry is None:
        if cfg.enabled:
            log.error("volume-sync is off: %s", reason)
        idle = HostSide(log, disabled_reason=reason)
        if site.system_volume_error is None:
            idle.idle_control = ControlDir(site.paths.volume_sync_dir, site.node_id, log=log)
        return SyncManager(cfg, disabled_reason=reason, host=idle, log=log)
    if cfg.apply_mode_note and cfg.is_consumer:
        log.warning(cfg.apply_mode_note)
    # Rule 6's anchored check: a volume root must lie in this instance's own volume dirs.
    resolver = PathResolver(site.bindings, allowed_roots=site.volume_roots)
    gate = BackendGate([("blob store", store), ("registry", registry)], log)
    if cfg.is_provider:
        publisher = _publisher(cfg, site, resolver, containers, store, registry, log, signer)
        hold = RequestHold(publisher.control, log)
        host = _provider_host_side(cfg, site, registry, log)
        return SyncManager(
            cfg, publisher=publisher, gate=gate, hold=hold, host=host, log=log, events=events
        )
    consumer = _consumer(cfg, site, resolver, containers, store, registry, log)
    assert cfg.key is not None
    desk = RestoreDesk(
        host_requests_dir(site.paths), site.paths.sync_state, cfg.key, registry, store, log
    )
    if cfg.schedule is not None:
        log.warning("SYNC.SCHEDULE is ignored on a consumer (only a provider makes snapshots)")
    host = HostSide(log, restore=desk)
    return SyncManager(cfg, consumer=consumer, gate=gate, host=host, log=log, events=events)


def _provider_host_side(
    cfg: SyncConfig, site: SyncSite, registry: Registry, log: logging.Logger
) -> HostSide:
    """The kept-snapshot list and, with ``SYNC.SCHEDULE``, the schedule."""
    assert cfg.key is not None
    kept = KeptRecords(
        registry,
        cfg.key,
        HistoryLog(site.paths.history_sent),
        site.paths.sync_state / KEPT_RECORDS_FILE,
        log,
    )
    schedule = None
    if cfg.schedule is not None:
        schedule = SnapshotSchedule(
            cfg.schedule, host_requests_dir(site.paths), site.paths.volume_sync_dir, log
        )
    return HostSide(log, schedule=schedule, kept=kept)


def _disabled_reason(cfg: SyncConfig, site: SyncSite) -> str | None:
    if not cfg.enabled:
        return "SYNC.ENABLED is false"
    if site.system_volume_error is not None:
        return f"system volume unavailable: {site.system_volume_error}"
    return None


def _publisher(
    cfg: SyncConfig,
    site: SyncSite,
    resolver: PathResolver,
    containers: ContainerControl,
    store: BlobStore,
    registry: Registry,
    log: logging.Logger,
    signer: RecordSigner | None = None,
) -> SnapshotPublisher:
    assert cfg.key is not None  # SyncConfig requires KEY when enabled
    config = PublisherConfig(
        sync_key=cfg.key,
        node_id=site.node_id,
        work_dir=site.paths.output,
        state_dir=site.paths.sync_state,
        archive_format=cfg.archive_format,
        compression_level=cfg.effective_compression_level,
        allow_online=cfg.allow_online_provider_capture,
        max_archive_bytes=cfg.max_archive_bytes,
        publish_retry_seconds=cfg.publish_retry_seconds,
        keep_snapshots=cfg.keep_snapshots,
        signer=signer,
        sealer=sealer_of(cfg),
        instance_id=site.paths.instance_id,
        lease_seconds=lease_seconds(cfg.poll_interval),
        takeover=cfg.takeover,
    )
    history = HistoryLog(site.paths.history_sent)
    host_dir = host_requests_dir(site.paths)
    host_dir.mkdir(mode=0o700, parents=True, exist_ok=True)
    control = RequestChannels(
        ControlDir(site.paths.volume_sync_dir, site.node_id, log=log),
        ControlDir(host_dir, site.node_id, log=log),
        lambda: default_paths(history, site.bindings),
        log,
    )
    targets = PublishTargets(store=store, registry=registry, history=history)
    kind = (
        ChunkedSnapshotPublisher
        if cfg.archive_format == C.ARCHIVE_FORMAT_CHUNKED
        else SnapshotPublisher
    )
    return kind(config, control, resolver, containers, targets, log=log)


def sealer_of(cfg: SyncConfig) -> Sealer | None:
    """The sync set's sealer when ``SYNC.ENCRYPTION_KEY_FILE`` is set.

    Raises:
        ConfigError: the key file changed since the config was parsed.
    """
    if cfg.encryption_key_file is None:
        return None
    return Sealer(load_keys(cfg.encryption_key_file))


def _consumer(
    cfg: SyncConfig,
    site: SyncSite,
    resolver: PathResolver,
    containers: ContainerControl,
    store: BlobStore,
    registry: Registry,
    log: logging.Logger,
) -> SnapshotConsumer:
    assert cfg.key is not None
    settings = ConsumerSettings(
        sync_state_dir=site.paths.sync_state,
        control_dir=site.paths.volume_sync_dir,
        history_dir=site.paths.history_received,
        limits=ConsumerLimits.from_config(cfg),
        apply_mode=cfg.apply_mode,
        verifier=_verifier(cfg, cfg.key),
        sealer=sealer_of(cfg),
    )
    source = PinnedRecordSource(
        registry, cfg.key, cfg.hsync_poll_interval, log, site.paths.sync_state
    )
    return SnapshotConsumer(settings, source, store, containers, resolver, log)


def _signer(cfg: SyncConfig) -> tuple[RecordSigner | None, str | None]:
    """A provider's record signer, or why its key cannot be used.

    The config check already loaded the key, but the file may have changed since; a
    provider whose key is unusable turns sync off rather than publish unsigned records.
    """
    if not cfg.is_provider or cfg.signing_key_file is None:
        return None, None
    try:
        return RecordSigner(load_signing_key(Path(cfg.signing_key_file))), None
    except KeyFileError as exc:
        return None, f"SYNC.SIGNING_KEY_FILE: {exc}"


def _verifier(cfg: SyncConfig, key: str) -> RecordVerifier | None:
    """The consumer's signature check; None without ``SYNC.TRUSTED_KEYS`` (as before)."""
    return None if cfg.trusted_keys is None else RecordVerifier(cfg.trusted_keys, key)


def record_trust(cfg: SyncConfig) -> str | None:
    """How this role treats record signatures, for ``car sync status`` (``records``)."""
    if cfg.is_provider:
        return "signed" if cfg.signing_key_file is not None else "unsigned"
    if cfg.is_consumer:
        if cfg.trusted_keys is None:
            return "not verified (no SYNC.TRUSTED_KEYS)"
        return f"verified ({len(cfg.trusted_keys)} trusted key(s))"
    return None


def write_runner_state(
    cfg: SyncConfig,
    site: SyncSite,
    store: BlobStore | None,
    registry: Registry | None,
    disabled_reason: str | None,
) -> None:
    """``runner.json``: what ``car sync status`` shows about this instance's setup."""
    state = RunnerState(
        instance_id=site.paths.instance_id,
        node_id=site.node_id,
        role=cfg.type if cfg.enabled else None,
        key=cfg.key if cfg.enabled else None,
        blob_store=store.describe() if store is not None else None,
        registry=registry.describe() if registry is not None else None,
        sync_disabled_reason=disabled_reason if cfg.enabled else None,
        system_volume_error=site.system_volume_error,
        started_timestamp=time.time(),
        records=record_trust(cfg),
    )
    site.paths.root.mkdir(parents=True, exist_ok=True)
    state.save(site.paths.runner_state)
