"""LeaseKeeper: the provider's hold on its key's lease (README, "One writer per key").

Two providers on one key used to replace each other's records silently, and a consumer
could end up with both providers' files mixed. Now a provider publishes only while it
holds the key's lease (``registries/lease.py``): the ticks renew it (``renew``) and the
publish takes it again right before capturing and right before writing the record
(``require``), so a provider that lost it between ticks never writes.

``SYNC.TAKEOVER: true`` takes a live lease from another holder, but only until this
keeper has held the lease once: a provider that then loses it (to another provider
taking over on purpose) stops publishing instead of taking it back, so two providers
both set to take over do not trade the key on every tick. Both sides log it: the taker
when it takes over, the old holder when its next renew is refused.

What the keeper last saw is written to ``sync_state/lease.json`` for ``car sync status``.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..errors import CarError, SyncError
from ..fsutil import atomic_write_json
from ..registries.base import Registry
from ..registries.lease import LEASE_HKEY, Lease, LeaseHolder, LeaseResult
from ..timestamps import utc_iso
from . import constants as C

_log = logging.getLogger(__name__)


def lease_seconds(poll_interval: float) -> float:
    """How long a lease lasts unrenewed: ``max(60 s, 3 x POLL_INTERVAL)``.

    Three missed ticks in a row (a busy host, a registry blip the retries absorb) do not
    lose the lease; a provider that died is replaced within a minute or three ticks.
    """
    return max(C.MIN_LEASE_SECONDS, 3 * poll_interval)


def when(epoch: float) -> str:
    """An expiry time as ISO 8601 UTC, for messages."""
    return utc_iso(epoch)


class LeaseRefused(SyncError):
    """Another provider holds the key's lease: this publish must not write the record."""

    def __init__(self, key: str, lease: Lease) -> None:
        super().__init__(
            f"another provider holds the lease on key {key!r}: {lease.holder.describe()}, "
            f"until {when(lease.expires_at)} (set SYNC.TAKEOVER to take it over)",
            stage=C.STAGE_CHAINSTORE_PUBLISH,
        )
        self.lease = lease


@dataclass(frozen=True, slots=True)
class LeaseSettings:
    """Who this provider is and how it holds its key."""

    holder: LeaseHolder
    ttl_s: float
    takeover: bool = False


class LeaseKeeper:
    """Takes and renews one key's lease for one provider."""

    def __init__(
        self,
        registry: Registry,
        sync_key: str,
        settings: LeaseSettings,
        state_path: Path,
        *,
        log: logging.Logger = _log,
    ) -> None:
        self.registry = registry
        self.sync_key = sync_key
        self.settings = settings
        self.state_path = state_path
        self._log = log
        self._ever_held = False
        self._held = False
        self._last_refused_by: LeaseHolder | None = None

    @property
    def held(self) -> bool:
        """True if the last acquire granted the lease."""
        return self._held

    def renew(self) -> None:
        """Take or renew the lease (a tick); never raises, failures are logged."""
        try:
            self._acquire()
        except Exception as exc:
            self._log.debug("lease renewal on key %r failed: %s", self.sync_key, exc)

    def require(self) -> None:
        """Take or renew the lease now, or refuse the publish.

        Raises:
            LeaseRefused: another provider holds a live lease on the key.
            RegistryError: the registry could not be asked (``RegistryUnavailable`` if
                transient).
        """
        result = self._acquire()
        if not result.acquired:
            raise LeaseRefused(self.sync_key, result.lease)

    def precheck(self) -> None:
        """Before a capture: refuse at once if another provider holds the key.

        A registry that cannot be asked now does not refuse: ``require`` asks again right
        before the record is written, within the commit point's retry window.

        Raises:
            LeaseRefused: another provider holds a live lease on the key.
        """
        try:
            self.require()
        except LeaseRefused:
            raise
        except CarError as exc:
            self._log.debug("lease not checked before the capture: %s", exc)

    def _acquire(self) -> LeaseResult:
        takeover = self.settings.takeover and not self._ever_held
        result = self.registry.acquire_lease(
            LEASE_HKEY, self.sync_key, self.settings.holder, self.settings.ttl_s, takeover
        )
        self._log_change(result)
        self._held = result.acquired
        self._ever_held = self._ever_held or result.acquired
        self._save(result)
        return result

    def _log_change(self, result: LeaseResult) -> None:
        key = self.sync_key
        if not result.acquired:
            holder = result.lease.holder
            if self._held:
                self._log.error(
                    "lost the lease on key %r to %s (until %s): this provider publishes "
                    "nothing while it holds it",
                    key,
                    holder.describe(),
                    when(result.lease.expires_at),
                )
            elif holder != self._last_refused_by:
                self._log.warning(
                    "key %r is held by %s until %s: publishes are refused "
                    "(SYNC.TAKEOVER takes it over)",
                    key,
                    holder.describe(),
                    when(result.lease.expires_at),
                )
            self._last_refused_by = holder
            return
        self._last_refused_by = None
        if result.displaced is not None:
            self._log.warning(
                "took over the lease on key %r from %s (its lease ran until %s): "
                "SYNC.TAKEOVER is true",
                key,
                result.displaced.holder.describe(),
                when(result.displaced.expires_at),
            )
        elif result.expired is not None:
            self._log.info(
                "took the lease on key %r: the lease of %s had expired at %s",
                key,
                result.expired.holder.describe(),
                when(result.expired.expires_at),
            )
        elif not self._held:
            self._log.info(
                "holding the lease on key %r until %s", key, when(result.lease.expires_at)
            )

    def _save(self, result: LeaseResult) -> None:
        """``sync_state/lease.json``: what ``car sync status`` shows; best effort."""
        state: dict[str, Any] = {
            "held": result.acquired,
            "holder_node_id": result.lease.holder.node_id,
            "holder_instance_id": result.lease.holder.instance_id,
            "expires_at": result.lease.expires_at,
        }
        try:
            self.state_path.parent.mkdir(parents=True, exist_ok=True)
            atomic_write_json(self.state_path, state)
        except OSError as exc:
            self._log.debug("lease state not saved: %s", exc)
