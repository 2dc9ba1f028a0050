"""Open a blob store by URL: the scheme table, lazy imports, and the retry wrapper.

``KNOWN_STORES`` maps a URL scheme to ``"module:Class"``; the module is imported only
when a URL uses it, so boto3 is needed only by an ``s3://`` deployment, and a missing
extra becomes a one-line ``ConfigError`` with the pip command (G3). Every store
returned is ``RetryingStore(LazyStore(backend))``: opening checks the URL only, and the
backend is set up by its first call, so one that cannot be set up at start is an outage
like any other (``stores/lazy.py``). Each backend class provides
``from_url(url, *, cache_dir)`` and ``check_url(url)`` (parsing only, no I/O).
"""

from __future__ import annotations

from pathlib import Path
from types import MappingProxyType

from ..backend_urls import load_backend_class, redact_url
from ..errors import StoreError
from ..retry_policy import RetryPolicy
from .base import BlobStore, StoreBackend
from .lazy import LazyStore
from .retrying import RetryingStore

URL_KEY = "STORAGE.BLOBS"
KNOWN_STORES = MappingProxyType(
    {
        "file": "container_apps.stores.local:FileBlobStore",
        "s3": "container_apps.stores.s3:S3BlobStore",
    }
)
# scheme -> (pip extra, module it needs); the hint names our extra (borgstore wording).
_EXTRAS = MappingProxyType({"s3": ("s3", "boto3")})


def _store_class(url: str) -> StoreBackend:
    """The backend class for ``url``; its module's TYPE_CHECKING line proves the type."""
    cls: StoreBackend = load_backend_class(
        url,
        key=URL_KEY,
        known=KNOWN_STORES,
        extras=_EXTRAS,
        example="file:///dir or s3://bucket/prefix",
    )
    return cls


def validate_store_url(url: str) -> None:
    """Check ``url`` without touching the network or the disk.

    Raises:
        ConfigError: "STORAGE.BLOBS: ..." for a malformed URL, an unknown scheme (with the
            known schemes listed) or a missing optional dependency (with the install hint).
    """
    _store_class(url).check_url(url)


def open_store(url: str, *, cache_dir: Path, policy: RetryPolicy | None = None) -> BlobStore:
    """Open the store at ``url``, wrapped in the retry policy; no I/O until first use.

    Args:
        url: a ``file://`` or ``s3://`` URL (docs/BACKENDS.md, "URL formats").
        cache_dir: this node's local download directory (created at first use).
        policy: retry policy; the default suits production, tests inject a fast one.

    Returns:
        A ``RetryingStore`` around a ``LazyStore`` around the backend. Its first call (or
        ``check()``) sets the backend up and raises ``StoreError`` if that fails (e.g.
        the directory cannot be created); the next call tries again.

    Raises:
        ConfigError: the URL is invalid (see ``validate_store_url``).
    """
    validate_store_url(url)
    return RetryingStore(LazyStore(lambda: _set_up(url, cache_dir), url), policy)


def _set_up(url: str, cache_dir: Path) -> BlobStore:
    try:
        cache_dir.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise StoreError(
            f"cannot create the download directory {cache_dir} for {redact_url(url)}: "
            f"{exc.strerror}"
        ) from exc
    return _store_class(url).from_url(url, cache_dir=cache_dir)


def default_store_url(data_root: Path) -> str:
    """The embedded default: ``file://<data>/shared/blobs`` (docs/FORMAT.md, "Host-side layout")."""
    return f"file://{data_root.absolute() / 'shared' / 'blobs'}"
