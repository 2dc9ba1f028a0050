"""Backend URLs: the small parsing and redaction rules every store and registry shares.

Blob stores and registries are chosen by URL (docs/BACKENDS.md). A URL may carry a password
(``redis://:pw@host``) or S3 keys (``s3://KEY:SECRET@bucket``), so anything that puts a
URL into a log line, an error message or ``describe()`` goes through ``redact_url``.
Backend modules parse their own URLs with ``split_url``/``query_params`` and raise
``ConfigError`` with the caller-supplied config key (``STORAGE.BLOBS`` or
``STORAGE.REGISTRY``), so the error names the key an operator has to fix.
"""

from __future__ import annotations

import importlib
from collections.abc import Mapping
from pathlib import Path
from typing import Any
from urllib.parse import SplitResult, parse_qs, urlsplit

from .errors import ConfigError

# Query parameters whose values are secrets, whatever the backend.
_SECRET_PARAMS = frozenset(
    {"password", "secret", "secret_key", "aws_secret_access_key", "token", "session_token"}
)
_MASK = "***"


def redact_url(url: str) -> str:
    """Return ``url`` with its password and secret query values replaced by ``***``.

    Never raises: a URL too broken to parse is reduced to its scheme, since the broken
    part might be the secret.
    """
    if "://" not in url:
        # Not a URL; it could still be "user:secret@host" typed without a scheme.
        return _MASK if "@" in url else url
    try:
        parts = urlsplit(url)
        _ = parts.port  # raises ValueError on a malformed port
    except ValueError:
        scheme = url.split("://", 1)[0] if "://" in url else ""
        return f"{scheme}://{_MASK}" if scheme else _MASK
    netloc = parts.netloc
    if "@" in netloc:
        userinfo, hostport = netloc.rsplit("@", 1)
        user = userinfo.split(":", 1)[0]
        # s3://KEY:SECRET@bucket: the access key id is not secret, the secret is.
        netloc = f"{user}:{_MASK}@{hostport}" if ":" in userinfo else f"{_MASK}@{hostport}"
        if not user:
            netloc = f":{_MASK}@{hostport}"
    query = "&".join(_redact_pair(pair) for pair in parts.query.split("&")) if parts.query else ""
    return join_url(parts._replace(netloc=netloc, query=query))


def join_url(parts: SplitResult) -> str:
    """Rebuild a URL keeping ``scheme://`` even with no host (``sqlite:///p``).

    ``urlunsplit`` drops the ``//`` of an empty host for schemes it does not know.
    """
    url = f"{parts.scheme}://{parts.netloc}{parts.path}"
    url += f"?{parts.query}" if parts.query else ""
    return url + (f"#{parts.fragment}" if parts.fragment else "")


def _redact_pair(pair: str) -> str:
    name, sep, _value = pair.partition("=")
    return f"{name}{sep}{_MASK}" if name.lower() in _SECRET_PARAMS and sep else pair


def split_url(url: str, *, key: str, schemes: tuple[str, ...]) -> SplitResult:
    """Parse ``url`` and check its scheme is one of ``schemes``.

    Raises:
        ConfigError: "<key>: ..." for a non-URL, a wrong scheme or a malformed port.
    """
    if not isinstance(url, str) or "://" not in url:
        raise ConfigError(f"{key}: must be a URL like {schemes[0]}://..., got {redact_url(url)!r}")
    try:
        parts = urlsplit(url)
        _ = parts.port
    except ValueError as exc:
        raise ConfigError(f"{key}: malformed URL {redact_url(url)}: {exc}") from exc
    if parts.scheme not in schemes:
        raise ConfigError(f"{key}: expected a {'/'.join(schemes)} URL, got {redact_url(url)}")
    if parts.fragment:
        raise ConfigError(f"{key}: URL must not have a #fragment: {redact_url(url)}")
    return parts


def query_params(parts: SplitResult, *, key: str, allowed: tuple[str, ...]) -> dict[str, str]:
    """The query parameters of a parsed URL, each given at most once and all in ``allowed``.

    Raises:
        ConfigError: an unknown, repeated or empty parameter (the message lists ``allowed``).
    """
    url = redact_url(join_url(parts))
    try:
        raw = parse_qs(parts.query, keep_blank_values=True, strict_parsing=bool(parts.query))
    except ValueError as exc:
        raise ConfigError(f"{key}: malformed query string in {url}") from exc
    params: dict[str, str] = {}
    for name, values in raw.items():
        if name not in allowed:
            known = ", ".join(allowed) or "none"
            raise ConfigError(f"{key}: unknown URL parameter {name!r} in {url} (known: {known})")
        if len(values) != 1 or not values[0]:
            raise ConfigError(f"{key}: URL parameter {name!r} must be given once, non-empty")
        params[name] = values[0]
    return params


def absolute_path(parts: SplitResult, *, key: str, example: str) -> Path:
    """The absolute local path of a ``scheme:///abs/path`` URL.

    Relative paths are refused: they would depend on the runner's working directory.

    Raises:
        ConfigError: a host part, a relative or empty path.
    """
    url = redact_url(join_url(parts))
    if parts.netloc:
        raise ConfigError(
            f"{key}: {url} names a host {parts.netloc!r}; "
            f"use an absolute path with three slashes, like {example}"
        )
    if not parts.path.startswith("/") or parts.path == "/":
        raise ConfigError(f"{key}: {url} needs an absolute path, like {example}")
    return Path(parts.path)


def load_backend_class(
    url: str,
    *,
    key: str,
    known: Mapping[str, str],
    extras: Mapping[str, tuple[str, str]],
    example: str,
) -> Any:
    """Import the backend class for ``url``'s scheme from a ``scheme -> "module:Class"`` table.

    Args:
        url: the configured URL.
        key: the config key for messages (``STORAGE.BLOBS``/``STORAGE.REGISTRY``).
        known: the factory's scheme table.
        extras: scheme -> (pip extra, module it needs), for the install hint.
        example: example URLs for the "not a URL" message.

    Raises:
        ConfigError: not a URL, unknown scheme (lists the known ones), missing extra.
    """
    scheme = urlsplit(url).scheme if isinstance(url, str) and "://" in url else ""
    if not scheme:
        raise ConfigError(f"{key}: must be a URL like {example}, got {redact_url(str(url))!r}")
    target = known.get(scheme)
    if target is None:
        names = ", ".join(f"{s}://" for s in known)
        raise ConfigError(f"{key}: unknown scheme {scheme!r} in {redact_url(url)}; known: {names}")
    module_name, class_name = target.split(":")
    try:
        module = importlib.import_module(module_name)
    except ImportError as exc:
        extra, needs = extras.get(scheme, (scheme, exc.name or "a dependency"))
        raise ConfigError(
            f"{key}: {scheme} backend needs {needs}: pip install 'container_apps[{extra}]'"
        ) from exc
    return getattr(module, class_name)
