"""ContainerAppRunnerPlugin: one app container, its volumes and the monitoring loop.

The plugin composes thin mixins (volumes, sync) and owns only the lifecycle order of
README "Lifecycle"; the decisions live in plain classes: ``RestartPolicy`` (when to restart),
``AppContainer`` (confirmed stop, start with the same spec), ``VolumeProvisioner``
(volumes), ``images`` (pull policy, default owner).

Two stop paths, kept apart on purpose:
- the *full restart* (restart policy): confirmed stop, release every volume, provision
  again, start;
- the *runtime-only* path sync uses through ``_container_control()``: confirmed stop and
  start of the container while every volume stays mounted.

A container sync stopped is not an app exit, so the restart policy never judges it:
when sync leaves it down (a consumer halt, or a start after the stop failed) the loop
starts it again once ``_sync_may_start()`` allows, whatever ``RESTART_POLICY`` says.
Only if that start fails does the restart policy take over (as for a crash).
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

from .errors import CarError
from .layout import DataDir, InstancePaths, topmost_missing
from .mixins.volumes import _VolumesMixin
from .ops.service import OpsServices
from .runner.app_container import AppContainer
from .runner.app_logs import LogRetention
from .runner.docker_runtime import ContainerSpec, DockerRuntime
from .runner.images import ensure_image, image_owner
from .runner.instance_lock import InstanceLock
from .runner.restart_policy import Action, RestartDecision, RestartPolicy
from .runner.runner_config import RunnerConfig
from .runner.shutdown import stop_signals
from .sync.container_control import ContainerControl
from .sync.container_env import RESERVED_ENV_NAMES, system_env
from .sync.mixin import _SyncMixin
from .volumes.binding import VolumeBinding


class ContainerAppRunnerPlugin(_VolumesMixin, _SyncMixin):
    """Runs one app container as configured; see the module docstring."""

    def __init__(
        self,
        config: RunnerConfig,
        data_dir: DataDir,
        *,
        runtime: DockerRuntime | None = None,
        log: logging.Logger | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.config = config
        self.data_dir = data_dir
        self.paths: InstancePaths = data_dir.instance(config.instance_id)
        self.runtime = runtime or DockerRuntime()
        self.log = log or logging.getLogger(f"car.{config.instance_id}")
        self.bindings: list[VolumeBinding] = []
        self.system_volume_error: str | None = None
        self.clock = clock
        self.restart_policy = RestartPolicy(
            config.restart_policy,
            initial=config.restart_backoff_initial,
            maximum=config.restart_backoff_max,
            multiplier=config.restart_backoff_multiplier,
            max_retries=config.restart_max_retries,
            clock=clock,
        )
        self.app = AppContainer(
            self.runtime,
            self._container_spec(),
            stop_timeout=config.stop_timeout,
            logs_dir=self.paths.logs,
            log=self.log,
            log_retention=LogRetention(config.logs_keep_files, config.logs_keep_bytes),
        )
        self.stop_requested = threading.Event()
        self.finished: RestartDecision | None = None  # set when the policy gave up
        self.final_exit_code: int | None = None
        self._default_owner: tuple[int, int] | None = None
        self._began = False  # start() touched Docker or volumes: stop() has work to do
        self._created: Path | None = None  # the folder start() created; taken back if it fails
        self.lock = InstanceLock(self.paths.root / "runner.lock")
        self._ever_started = False  # the container was started at least once
        self._sync_stopped = False  # sync stopped the container and has not started it yet
        self.ops = OpsServices()  # started by start(): METRICS_ADDR, NOTIFY

    # --- what sync sees -----------------------------------------------------------------
    def _container_control(self) -> ContainerControl:
        """The runtime-only stop/start path (volumes stay mounted)."""
        return _SyncControl(self)

    # --- start --------------------------------------------------------------------------
    def start(self) -> None:
        """Image, volumes, env, sync setup, then the container (README, "Lifecycle").

        Raises:
            ContainerRuntimeError: Docker failed or the image is unavailable.
            VolumeError: a data volume could not be provisioned.
        """
        cfg = self.config
        self._create_folders()
        self.lock.acquire()  # before Docker or volumes: a second runner must touch nothing
        self._ops_start()
        ensure_image(self.runtime, cfg.image, cfg.image_pull_policy, self.log)
        self._default_owner = image_owner(self.runtime, cfg.image, cfg.container_user, self.log)
        self.app.remove_leftover()  # refuses a same-named container of another data dir
        self._began = True  # from here on, stop() has a container and volumes to clean up
        self._provision()
        self._sync_setup()
        if self._sync_may_start():
            self._start_container()
        else:
            self.log.warning("container %s not started: sync holds the start", self.app.name)

    def _ops_start(self) -> None:
        """Metrics and alerts (README, "Metrics and alerts"), before sync's first event."""
        cfg = self.config
        self.ops = OpsServices.start(
            instance_id=cfg.instance_id,
            node_id=cfg.node_id,
            key=(cfg.sync.key or "") if cfg.sync.enabled else "",
            metrics_addr=cfg.metrics_addr,
            notify=cfg.notify,
            log=self.log,
        )
        self.sync_events = self.ops.events

    def _create_folders(self) -> None:
        """The instance folders, remembering which this start created (see ``stop``)."""
        self._created = topmost_missing(self.paths.root)
        try:
            self.paths.ensure()
        except OSError as exc:
            raise CarError(
                f"cannot create the instance folder {self.paths.root}: {exc.strerror or exc}",
                hint="point --data-dir (or CAR_DATA_DIR) at a directory root can write",
            ) from None

    def _provision(self) -> None:
        self._volumes_provision(self._default_owner)
        self.app.spec = self._container_spec()

    def _start_container(self, *, resumed: bool = False) -> None:
        """Start the app; ``resumed``: right after sync's own stop (run time goes on)."""
        self.app.start()
        if resumed:
            self.restart_policy.resumed()
        else:
            self.restart_policy.started()
        self._ever_started = True
        self._sync_stopped = False

    def _stop_for_sync(self) -> None:
        """Sync's confirmed stop; marked first so a half-done stop is not an app exit."""
        self._sync_stopped = True
        self.app.stop_confirmed()

    def _container_spec(self) -> ContainerSpec:
        cfg = self.config
        # The R1_* names are the runner's (README, "Volumes"): never taken from ENV, so without a
        # system volume the app sees none of them, not even ones pointing elsewhere.
        env = {k: v for k, v in cfg.app_env().items() if k not in RESERVED_ENV_NAMES}
        if self.system_volume_error is None and self.bindings:
            env.update(system_env(cfg.sync))
        res = cfg.container_resources
        return ContainerSpec(
            instance_id=cfg.instance_id,
            image=cfg.image,
            data_dir=str(self.data_dir.root.absolute()),
            command=cfg.container_start_command,
            entrypoint=cfg.container_entrypoint,
            user=cfg.container_user,
            env=env,
            bindings=tuple(self.bindings),
            network_mode=cfg.network_mode,
            cpu=res.cpu,
            memory=res.memory,
            ports=res.ports,
        )

    # --- loop ---------------------------------------------------------------------------
    def run_once(self, now: float) -> None:
        """One monitoring iteration: restart policy when down, sync tick when running."""
        if self.finished is not None:
            return
        state = self.app.state()
        if state is not None and state.running:
            self._sync_stopped = False  # a sync stop that failed left it running
            self._sync_tick(now)
            return
        if not self._ever_started or self._sync_stopped:
            self._start_held(state is not None)  # held by sync: no app exit to judge
            return
        self._apply_restart_policy(state.exit_code if state is not None else None)

    def _start_held(self, container_present: bool) -> None:
        """Start a container sync held back or stopped, once sync allows it."""
        if not self._sync_may_start():
            return
        if not self._ever_started:
            self._start_container()  # a failed first start fails the run, as in start()
            return
        try:
            if container_present:
                self.app.stop_confirmed()  # what a failed sync stop left behind
            self._start_container()
        except CarError as exc:
            self.log.error("start of %s after a sync stop failed: %s", self.app.name, exc)
            self._sync_stopped = False
            self._count_failed_start()

    def _count_failed_start(self) -> None:
        """Hand a failed start to the restart policy as an immediate crash."""
        self.restart_policy.started()
        self.restart_policy.exited(None)

    def _apply_restart_policy(self, exit_code: int | None) -> None:
        fresh = self.restart_policy.pending is None
        decision = self.restart_policy.exited(exit_code)
        if fresh:
            self.log.warning(
                "container %s exited (code %s): %s", self.app.name, exit_code, decision.reason
            )
        if decision.action is Action.GIVE_UP:
            self.finished = decision
            self.final_exit_code = exit_code
            return
        if self.restart_policy.due() and self._sync_may_start():
            self._full_restart()

    def _full_restart(self) -> None:
        """Restart-policy path: confirmed stop, volumes released and provisioned again."""
        try:
            self.app.stop_confirmed()
            self._volumes_release()
            self._provision()
            self._start_container()
        except CarError as exc:
            self.log.error("restart of %s failed: %s", self.app.name, exc)
            self._count_failed_start()

    def run_forever(self) -> int:
        """Start, loop every PROCESS_DELAY until a signal or the policy gives up, stop.

        Returns:
            0 after a requested stop or when the app's last exit was 0; else 1.

        Raises:
            CarError: start or stop failed (stop still released what it could).
            ForcedExit: a second signal abandoned the graceful stop.
        """
        with stop_signals(self.stop_requested.set, self.log):
            try:
                self.start()
                while not self.stop_requested.is_set() and self.finished is None:
                    self.run_once(self.clock())
                    self.stop_requested.wait(self.config.process_delay)
            finally:
                self.stop()
        return self._exit_code()

    def _exit_code(self) -> int:
        if self.finished is None or self.stop_requested.is_set():
            return 0
        return 0 if self.final_exit_code == 0 else 1

    # --- stop ---------------------------------------------------------------------------
    def stop(self) -> None:
        """Stop and remove the container, save its logs, shut sync down, release volumes.

        Idempotent; every step runs even if an earlier one failed.

        Raises:
            CarError: listing the steps that failed (after all were attempted).
        """
        if not self._began:
            self.ops.close()
            self._release_unused_folders()
            return
        problems: list[str] = []
        for step, action in (
            ("container stop", self.app.stop_confirmed),
            ("sync shutdown", self._sync_shutdown),
            ("metrics and alerts stop", self.ops.close),
            ("volume release", self._volumes_release),
        ):
            try:
                action()
            except CarError as exc:
                self.log.error("%s failed: %s", step, exc)
                problems.append(f"{step}: {exc}")
        if problems:
            raise CarError("stop incomplete: " + "; ".join(problems))
        self._began = False
        self.lock.release()
        self.log.info("runner %s stopped; nothing left running or mounted", self.config.instance_id)

    def _release_unused_folders(self) -> None:
        """Drop the lock; after a first start that failed before Docker or volumes, also
        remove the folders it created, so ``car sync status`` lists no empty instance."""
        if self._created is None or self._ever_started:
            self.lock.release()
            return
        self.lock.discard()
        self.paths.remove_empty(self._created)
        self._created = None


class _SyncControl:
    """ContainerControl for sync: the runtime-only path, with the runner's bookkeeping.

    A stop marks the container as stopped by sync (not an app exit, see the module
    docstring); a start goes through ``_start_container`` like every other start, as a
    resumed run so the restart policy's healthy-run clock is not reset by snapshots.
    """

    def __init__(self, runner: ContainerAppRunnerPlugin) -> None:
        self._runner = runner

    def stop_confirmed(self) -> None:
        self._runner._stop_for_sync()

    def start(self) -> None:
        self._runner._start_container(resumed=True)

    def is_running(self) -> bool:
        return self._runner.app.is_running()

    def get_archive(self, container_path: str) -> Iterator[bytes]:
        return self._runner.app.get_archive(container_path)
