"""The BlobStore protocol: content-addressed storage for snapshot archives (the R1FS role).

Every backend guarantees (tests/contracts/test_blob_store.py checks each one):
- ``put()`` is atomic: no reader ever sees a partial blob; the returned id is the CIDv1
  of the bytes (``stores/cid.py``), so the same content always gets the same id and
  concurrent puts of the same content are safe; a put replaces a corrupt stored copy
  (that is how a provider heals a blob).
- ``get()`` of an unknown id raises ``BlobNotFound``, never returns empty data.
- ``get()`` verifies the bytes against the id (or, for a foreign id, against the
  ``sha256`` the caller passes); a mismatch raises ``BlobCorrupt`` and deletes only the
  reader's own download, never the stored blob: the ``file://`` blob is every runner's
  copy and an S3 object is remote data, which a consumer never deletes. The blob's
  provider heals a corrupt blob by putting the same bytes again.
- ``get(..., max_bytes=N)`` refuses a blob bigger than N with ``BlobTooLarge`` before
  transferring it (a record cannot make a consumer fill its disk), deleting nothing.
- ``get_range(cid, offset, length)`` returns exactly ``length`` bytes starting at
  ``offset`` without keeping a local copy (file seek, S3 ranged GET); it does not verify
  them (a part cannot be checked against the whole blob's id): the caller checks what it
  reads, as chunked snapshots do with each chunk's digest. An unknown id raises
  ``BlobNotFound``; a range reaching past the end raises ``StoreError``, never short data.
- ``delete()`` of an unknown id is a no-op (retirement may race with itself).
- ``sweep_local()`` removes temp files of killed writers and private local copies not
  kept, never a stored blob or a temp file another process is still writing.
- Transient failures raise ``StoreUnavailable``; backends never retry themselves
  (``stores/retrying.py`` does).
- ``check()`` is one cheap round trip that proves the store can be used now (the bucket
  answers, the directory exists); the sync manager runs it at start and, while it
  fails, again with backoff.
"""

from __future__ import annotations

from collections.abc import Callable, Collection
from pathlib import Path
from typing import ClassVar, Protocol, runtime_checkable

# Called with (bytes_done, bytes_total or None) while a transfer runs.
Progress = Callable[[int, int | None], None]


@runtime_checkable
class BlobStore(Protocol):
    """Content-addressed blob storage; see the module docstring for the guarantees."""

    scheme: ClassVar[str]

    def put(self, src: Path, *, progress: Progress | None = None) -> str:
        """Store the file at ``src`` and return its CID.

        Raises:
            StoreUnavailable: transient failure; nothing was stored.
            StoreError: permanent failure.
        """
        ...

    def get(
        self,
        cid: str,
        *,
        sha256: str | None = None,
        max_bytes: int | None = None,
        progress: Progress | None = None,
    ) -> Path:
        """Return a local path holding the verified bytes of ``cid``.

        The path may be the store's own file (``file://``): callers must treat it as
        read-only and must not delete it except through ``delete(local=True)``.

        Raises:
            BlobNotFound: no such blob.
            BlobCorrupt: bytes do not match the id / ``sha256``; a downloaded copy was
                deleted, the stored blob is kept.
            BlobTooLarge: the blob is bigger than ``max_bytes``; nothing was transferred.
            StoreUnavailable: transient failure.
        """
        ...

    def get_range(self, cid: str, offset: int, length: int) -> bytes:
        """Return ``length`` bytes of ``cid`` from ``offset`` on, unverified.

        Callers bound ``length`` (memory) and verify the bytes themselves.

        Raises:
            BlobNotFound: no such blob.
            StoreError: invalid id, ``offset < 0``, ``length < 1``, or the range reaches
                past the end of the blob.
            StoreUnavailable: transient failure.
        """
        ...

    def delete(self, cid: str, *, remote: bool, local: bool) -> None:
        """Delete the remote blob and/or this node's local copy; unknown ids are a no-op.

        ``local=True`` never deletes a file other runners share (``file://`` store).
        """
        ...

    def check(self) -> None:
        """One cheap round trip proving the store can be used now; nothing is stored.

        Raises:
            StoreUnavailable: transient failure (service down, timeout).
            StoreError: permanent until someone fixes it (credentials, missing bucket).
        """
        ...

    def sweep_local(self, *, keep: Collection[str] = ()) -> list[str]:
        """Remove what killed processes left on this node; called once at a runner's start.

        Removes temp files whose writer is gone (``stores/tempfiles.py``: a put or
        download killed mid-way) and this node's private local copies except ``keep``.
        Never removes a stored blob, a shared file, or a temp file still being written
        (another runner's put in flight). Never raises: what cannot be removed is logged
        and left for the next sweep.

        Returns:
            The names removed.
        """
        ...

    def describe(self) -> str:
        """The store's URL with any secret removed, for logs and ``car sync status``."""
        ...


class StoreBackend(Protocol):
    """What ``stores/factory.py`` needs of a backend class, which it imports by name.

    Because the factory finds the class in a string table, mypy cannot see which class it
    returns; each backend module therefore ends with ``if TYPE_CHECKING: _backend:
    StoreBackend = FooBlobStore``. That line makes ``mypy --strict`` check both class
    methods and, through ``from_url``'s return type, that an instance fits ``BlobStore``.
    """

    def check_url(self, url: str) -> None:
        """Parse ``url`` without any I/O; raise ``ConfigError`` naming what is wrong."""
        ...

    def from_url(self, url: str, *, cache_dir: Path) -> BlobStore:
        """Open the store; ``cache_dir`` is this node's local download directory."""
        ...
