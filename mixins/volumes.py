"""_VolumesMixin: the runner's glue over ``volumes.provisioner.VolumeProvisioner``.

Provision and release only; the order, idempotency and failure rules live in the
provisioner (STYLE G6). Sets the attributes the sync mixin reads: ``bindings`` and
``system_volume_error``.
"""

from __future__ import annotations

import logging

from ..layout import InstancePaths
from ..runner.runner_config import RunnerConfig
from ..volumes.binding import VolumeBinding
from ..volumes.provisioner import VolumeProvisioner


class _VolumesMixin:
    """Lifecycle glue for every volume of the instance."""

    config: RunnerConfig
    paths: InstancePaths
    log: logging.Logger
    bindings: list[VolumeBinding]
    system_volume_error: str | None

    def _volume_provisioner(self, default_owner: tuple[int, int] | None) -> VolumeProvisioner:
        return VolumeProvisioner(
            self.paths,
            fixed=self.config.fixed_size_volumes,
            legacy=self.config.volumes,
            files=self.config.file_volumes,
            default_owner=default_owner,
            log=self.log,
        )

    def _volumes_provision(self, default_owner: tuple[int, int] | None) -> None:
        """Raises: VolumeError (nothing this call mounted is left mounted)."""
        result = self._volume_provisioner(default_owner).provision()
        self.bindings = list(result.bindings)
        self.system_volume_error = result.system_volume_error

    def _volumes_release(self) -> None:
        """Raises: VolumeError listing every volume that could not be released."""
        self.bindings = []
        self._volume_provisioner(None).release()
