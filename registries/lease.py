"""Leases: one writer per sync key, as a compare-and-set on the registry.

A provider publishes a key's record only while it holds that key's lease (README, "One
writer per key"). A lease is a small JSON value ``{"node_id", "instance_id",
"expires_at"}`` stored under ``(LEASE_HKEY, key)``, a hash of its own, so the older
runner, which reads records from ``CHAINSTORE_SYNC`` only, never sees it and a lease can
never be mistaken for a record (docs/BACKENDS.md, "Storage layouts").

``decide`` is the whole rule; each backend runs it atomically against the value it holds
(SQLite in a ``BEGIN IMMEDIATE`` transaction, memory under its lock, Redis as the same
logic in a server-side script using the server's clock):

- no lease, an expired one, an unreadable one, or our own: ours now, until now + ttl;
- another holder's live lease: refused, naming that holder and when its lease ends;
  with ``takeover`` ours anyway, and the result names the holder we displaced.

Holders are node id *and* instance id: two runners on one host share a node id.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from typing import Any

LEASE_HKEY = "CHAINSTORE_LEASES"


@dataclass(frozen=True, slots=True)
class LeaseHolder:
    """Who wants or holds a lease: a runner instance on a node."""

    node_id: str
    instance_id: str

    def describe(self) -> str:
        """``node N instance I``, for messages."""
        return f"node {self.node_id} instance {self.instance_id}"


@dataclass(frozen=True, slots=True)
class Lease:
    """A holder and the wall-clock time (epoch seconds) its lease ends."""

    holder: LeaseHolder
    expires_at: float

    def to_json(self) -> str:
        """The stored value (docs/BACKENDS.md, "Storage layouts")."""
        return json.dumps(
            {
                "node_id": self.holder.node_id,
                "instance_id": self.holder.instance_id,
                "expires_at": self.expires_at,
            },
            sort_keys=True,
        )

    @classmethod
    def from_json(cls, text: str | None) -> Lease | None:
        """The lease in a stored value; None when absent or not a lease (treated as free).

        Registry content is untrusted: a value that is not a well-formed lease must not
        block every provider of the key forever, so it counts as no lease at all.
        """
        if text is None:
            return None
        try:
            raw: Any = json.loads(text)
        except ValueError:
            return None
        if not isinstance(raw, dict):
            return None
        node, instance, expires = raw.get("node_id"), raw.get("instance_id"), raw.get("expires_at")
        if not (isinstance(node, str) and isinstance(instance, str)):
            return None
        if isinstance(expires, bool) or not isinstance(expires, int | float):
            return None
        if not math.isfinite(expires):
            return None
        return cls(LeaseHolder(node, instance), float(expires))


@dataclass(frozen=True, slots=True)
class LeaseResult:
    """The outcome of one ``acquire_lease``.

    ``lease`` is the lease in force afterwards: ours when ``acquired``, else the holder's.
    ``displaced`` is the other holder whose live lease a takeover ended (None otherwise);
    ``expired`` is another holder's lease that had already ended (None otherwise).
    """

    acquired: bool
    lease: Lease
    displaced: Lease | None = None
    expired: Lease | None = None


def decide(
    current: Lease | None, holder: LeaseHolder, now: float, ttl_s: float, takeover: bool
) -> LeaseResult:
    """The lease rule (module docstring); pure, so every backend applies the same one."""
    mine = Lease(holder, now + ttl_s)
    if current is None or current.holder == holder:
        return LeaseResult(True, mine)
    if current.expires_at <= now:
        return LeaseResult(True, mine, expired=current)
    if takeover:
        return LeaseResult(True, mine, displaced=current)
    return LeaseResult(False, current)


def check_ttl(ttl_s: float) -> None:
    """Refuse a lease length that would make no sense (a caller bug, not user input)."""
    if not (math.isfinite(ttl_s) and ttl_s > 0):
        raise ValueError(f"lease ttl must be a positive number of seconds, got {ttl_s!r}")
