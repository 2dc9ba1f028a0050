"""The Registry protocol: a small replicated hash store (the ChainStore role).

Every backend guarantees (tests/contracts/test_registry.py checks each one):
- ``hset()`` returns True only once the value is durably stored (the ack is the
  provider's publish commit point, README "Provider"); a later ``hget`` on any node sees it
  after ``hsync``.
- Last writer wins for concurrent ``hset`` of one field.
- ``hget()`` of a missing field returns None.
- ``hsync()`` refreshes this node's replica of ``hkey``; it may be a no-op for
  backends that read through to the server.
- Transient failures raise ``RegistryUnavailable``; backends never retry themselves.
- ``acquire_lease()`` is one atomic compare-and-set (``registries/lease.py``): of
  concurrent calls for one key by different holders, at most one is granted a live lease.
  Leases live in their own hash (``LEASE_HKEY``), never beside records.
- ``check()`` is one cheap round trip that proves the registry can be used now (the
  server answers PING, the SQLite file is a writable registry); the sync manager runs
  it at start and, while it fails, again with backoff.

Values are JSON text: the registry stores and returns them unchanged, and the consumer
parses them as untrusted input.
"""

from __future__ import annotations

from typing import ClassVar, Protocol, runtime_checkable

from .lease import LeaseHolder, LeaseResult


@runtime_checkable
class Registry(Protocol):
    """A replicated hash of hashes; see the module docstring for the guarantees."""

    scheme: ClassVar[str]

    def hset(self, hkey: str, key: str, value: str) -> bool:
        """Store ``value`` under (hkey, key); True means durably acknowledged."""
        ...

    def hget(self, hkey: str, key: str) -> str | None:
        """The value under (hkey, key), or None."""
        ...

    def hsync(self, hkey: str) -> None:
        """Refresh the local replica of ``hkey`` (may be a no-op)."""
        ...

    def acquire_lease(
        self, hkey: str, key: str, holder: LeaseHolder, ttl_s: float, takeover: bool = False
    ) -> LeaseResult:
        """Take or renew ``holder``'s lease on (hkey, key) for ``ttl_s`` seconds, atomically.

        Granted when the key has no live lease, the lease is ``holder``'s own, or
        ``takeover`` is set; otherwise refused, naming the holder (``lease.decide``).
        Expiry is judged by the backend's clock (the Redis server's, the host's for SQLite).
        """
        ...

    def check(self) -> None:
        """One cheap round trip proving the registry can be used now; nothing is written.

        Raises:
            RegistryUnavailable: transient failure (server down, database locked).
            RegistryError: permanent until someone fixes it (password, unreadable file).
        """
        ...

    def describe(self) -> str:
        """The registry's URL with any secret removed."""
        ...


class RegistryBackend(Protocol):
    """What ``registries/factory.py`` needs of a backend class, which it imports by name.

    Each backend module ends with ``if TYPE_CHECKING: _backend: RegistryBackend =
    FooRegistry``, so ``mypy --strict`` checks both class methods and, through
    ``from_url``'s return type, that an instance fits ``Registry``.
    """

    def check_url(self, url: str) -> None:
        """Parse ``url`` without any I/O; raise ``ConfigError`` naming what is wrong."""
        ...

    def from_url(self, url: str) -> Registry:
        """Open the registry (connecting lazily is fine)."""
        ...
