"""Open a registry by URL: the scheme table, lazy imports, and the retry wrapper.

``KNOWN_REGISTRIES`` maps a URL scheme to ``"module:Class"``, imported only when a URL
uses it (redis-py is an optional extra). Every registry returned is
``RetryingRegistry(LazyRegistry(backend))``: opening checks the URL only, and the backend
is set up by its first call, so a registry file that is garbage or read-only at start is
an outage like any other (``registries/lazy.py``). Each backend class provides
``from_url(url)`` and ``check_url(url)`` (parsing only, no I/O).
"""

from __future__ import annotations

from pathlib import Path
from types import MappingProxyType

from ..backend_urls import load_backend_class
from ..retry_policy import RetryPolicy
from .base import Registry, RegistryBackend
from .lazy import LazyRegistry
from .retrying import RetryingRegistry

__all__ = [
    "KNOWN_REGISTRIES",
    "default_registry_url",
    "open_registry",
    "validate_registry_url",
]

URL_KEY = "STORAGE.REGISTRY"
KNOWN_REGISTRIES = MappingProxyType(
    {
        "sqlite": "container_apps.registries.sqlite:SqliteRegistry",
        "redis": "container_apps.registries.redis:RedisRegistry",
        "rediss": "container_apps.registries.redis:RedisRegistry",
    }
)
_EXTRAS = MappingProxyType({"redis": ("redis", "redis-py"), "rediss": ("redis", "redis-py")})


def _registry_class(url: str) -> RegistryBackend:
    """The backend class for ``url``; its module's TYPE_CHECKING line proves the type."""
    cls: RegistryBackend = load_backend_class(
        url,
        key=URL_KEY,
        known=KNOWN_REGISTRIES,
        extras=_EXTRAS,
        example="sqlite:///path/registry.sqlite or redis://127.0.0.1:6379/0",
    )
    return cls


def validate_registry_url(url: str) -> None:
    """Check ``url`` without touching the network or the disk.

    Raises:
        ConfigError: "STORAGE.REGISTRY: ..." for a malformed URL, an unknown scheme (with
            the known schemes listed) or a missing optional dependency (with the hint).
    """
    _registry_class(url).check_url(url)


def open_registry(url: str, *, policy: RetryPolicy | None = None) -> Registry:
    """Open the registry at ``url``, wrapped in the retry policy; no I/O until first use.

    Args:
        url: a ``sqlite:///`` or ``redis://`` / ``rediss://`` URL (docs/BACKENDS.md).
        policy: retry policy; the default suits production, tests inject a fast one.

    Returns:
        A ``RetryingRegistry`` around a ``LazyRegistry`` around the backend. Its first
        call (or ``check()``) sets the backend up and raises ``RegistryError`` if that
        fails (e.g. a sqlite file that is not a database); the next call tries again.

    Raises:
        ConfigError: the URL is invalid (see ``validate_registry_url``).
    """
    validate_registry_url(url)
    cls = _registry_class(url)
    return RetryingRegistry(LazyRegistry(lambda: cls.from_url(url), url), policy)


def default_registry_url(data_root: Path) -> str:
    """The embedded default: ``sqlite://<data>/shared/registry.sqlite`` (docs/FORMAT.md)."""
    return f"sqlite://{data_root.absolute() / 'shared' / 'registry.sqlite'}"
