"""Reusing a previous snapshot's chunks only when their packs are still in the store.

A capture that starts from the previous index (and from the other kept ones) names their
packs in the new index instead of storing those chunks again (docs/FORMAT.md, "Publishing
(provider)"). If one of those packs is gone from the store (deleted by hand or by another
tool, a damaged disk), the new snapshot would name chunks nobody can fetch: a wrong
snapshot. So before reusing anything, each pack is looked at once: its first 8 bytes,
one ranged read on every backend (``BlobStore.get_range``: a seek on ``file://``, a
ranged GET on S3), must be the pack magic. A pack missing, cut short or not a pack makes
the capture a full one, and the log says which.
"""

from __future__ import annotations

from collections.abc import Iterable

from ..errors import StoreError, StoreUnavailable
from ..stores.base import BlobStore
from .chunks.constants import PACK_MAGIC


def missing_packs(store: BlobStore, packs: Iterable[str]) -> list[str]:
    """The packs of ``packs`` the store does not hold as packs, in the order given.

    Raises:
        StoreUnavailable: the store could not be asked (the capture cannot go on).
    """
    missing: list[str] = []
    for pack in dict.fromkeys(packs):
        try:
            head = store.get_range(pack, 0, len(PACK_MAGIC))
        except StoreUnavailable:
            raise
        except StoreError:  # not found, or shorter than the magic
            missing.append(pack)
            continue
        if head != PACK_MAGIC:
            missing.append(pack)
    return missing
