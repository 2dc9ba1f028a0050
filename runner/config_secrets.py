"""Secrets outside the config file: ``${VAR}`` expansion and ``*_FILE`` keys (README,
"Secrets outside the config").

A Redis password could only be written into the URL inside the config file, and
``${REDIS_PASSWORD}`` was taken literally. Before validation, the loader now

- expands ``${VAR}`` in every string value of the config (keys are left alone) from the
  environment; ``$$`` is a literal ``$``; a ``$`` followed by anything else is kept as
  written. An unset variable is a config error naming it and the key;
- replaces ``STORAGE.BLOBS_FILE`` / ``STORAGE.REGISTRY_FILE`` with ``STORAGE.BLOBS`` /
  ``STORAGE.REGISTRY`` read from that file (one URL, surrounding whitespace ignored; a
  relative path is relative to the config file). The file must be a regular file no
  group or other user may read or write (``chmod 600``), like the key files. Giving both
  the key and its ``_FILE`` form is an error.

Every value so obtained is a secret as far as messages go: ``Secrets.scrub`` replaces it
by ``***`` in config errors (a validation message may quote the value it refuses).
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..errors import ConfigError
from ..fsutil import OwnerOnlyFileError, read_owner_only

MASK = "***"
# $$, ${NAME}, or a "${" that does not form a valid reference (reported as an error).
_TOKEN = re.compile(r"\$\$|\$\{([A-Za-z_][A-Za-z0-9_]*)\}|\$\{[^}]*\}?")
# The ``_FILE`` keys of the STORAGE block and the key each one provides.
FILE_KEYS: Mapping[str, str] = {"BLOBS_FILE": "BLOBS", "REGISTRY_FILE": "REGISTRY"}
# Expanded values shorter than this are not masked: "***" in place of every "1" or "on"
# would make messages unreadable and hides no secret worth the name.
MIN_MASKED_CHARS = 4


@dataclass(slots=True)
class Secrets:
    """Values taken from the environment or from secret files while loading one config."""

    values: set[str] = field(default_factory=set)

    def add(self, value: str) -> None:
        if len(value) >= MIN_MASKED_CHARS:
            self.values.add(value)

    def scrub(self, text: str) -> str:
        """``text`` with every secret value replaced by ``***`` (longest first)."""
        for value in sorted(self.values, key=len, reverse=True):
            text = text.replace(value, MASK)
        return text


def expand_config(raw: Any, *, environ: Mapping[str, str], base_dir: Path, secrets: Secrets) -> Any:
    """``raw`` with ``${VAR}`` expanded everywhere and the ``*_FILE`` keys read.

    Raises:
        ConfigError: every unset variable or malformed reference (naming the key), and
            every ``_FILE`` key that cannot be used, at once.
    """
    problems: list[str] = []
    expanded = _expand(raw, "", environ, secrets, problems)
    if isinstance(expanded, dict) and isinstance(expanded.get("STORAGE"), dict):
        expanded["STORAGE"] = _read_file_keys(expanded["STORAGE"], base_dir, secrets, problems)
    if problems:
        raise ConfigError(problems)
    return expanded


def _expand(
    value: Any, where: str, environ: Mapping[str, str], secrets: Secrets, problems: list[str]
) -> Any:
    if isinstance(value, str):
        return _expand_string(value, where or "config", environ, secrets, problems)
    if isinstance(value, dict):
        return {
            k: _expand(v, f"{where}.{k}" if where else str(k), environ, secrets, problems)
            for k, v in value.items()
        }
    if isinstance(value, list):
        return [
            _expand(v, f"{where}[{i}]", environ, secrets, problems) for i, v in enumerate(value)
        ]
    return value


def _expand_string(
    text: str, where: str, environ: Mapping[str, str], secrets: Secrets, problems: list[str]
) -> str:
    def substitute(match: re.Match[str]) -> str:
        token, name = match.group(0), match.group(1)
        if token == "$$":
            return "$"
        if name is None:
            problems.append(
                f"{where}: {token!r} is not a variable reference: write ${{NAME}} "
                "(letters, digits, '_'), or $$ for a literal $"
            )
            return token
        if name not in environ:
            problems.append(
                f"{where}: environment variable {name} is not set (used as ${{{name}}})"
            )
            return token
        secrets.add(environ[name])
        return environ[name]

    return _TOKEN.sub(substitute, text)


def _read_file_keys(
    storage: dict[str, Any], base_dir: Path, secrets: Secrets, problems: list[str]
) -> dict[str, Any]:
    """The STORAGE block with each ``X_FILE`` replaced by ``X`` read from that file."""
    result = {k: v for k, v in storage.items() if k not in FILE_KEYS}
    for file_key, key in FILE_KEYS.items():
        if file_key not in storage:
            continue
        where = f"STORAGE.{file_key}"
        name = storage[file_key]
        if not isinstance(name, str) or not name:
            problems.append(f"{where}: must be a file path (a non-empty string)")
            continue
        if storage.get(key) is not None:
            problems.append(f"{where}: give STORAGE.{key} or {where}, not both")
            continue
        try:
            value = read_secret_file(base_dir / name, where)
        except ConfigError as exc:
            problems.extend(exc.problems)
            continue
        secrets.add(value)
        result[key] = value
    return result


def read_secret_file(path: Path, where: str) -> str:
    """The stripped text of a secret file that only its owner may read or write.

    Raises:
        ConfigError: missing, not a regular file, group/world accessible, unreadable,
            not UTF-8, or empty; the message names ``where`` and the path, never the content.
    """
    try:
        raw = read_owner_only(path, None, follow_symlinks=True)
    except OwnerOnlyFileError as exc:
        if exc.kind == "not_regular":
            raise ConfigError(f"{where}: {path} is not a regular file") from None
        if exc.kind == "shared":
            raise ConfigError(
                f"{where}: {path} is accessible to group or others (mode {exc.detail}); "
                f"a secret file must be mode 0600 (chmod 600 {path})"
            ) from None
        raise ConfigError(f"{where}: cannot read {path}: {exc.detail}") from None
    try:
        text = raw.decode("utf-8").strip()
    except UnicodeDecodeError as exc:
        raise ConfigError(f"{where}: cannot read {path}: {type(exc).__name__}") from None
    if not text:
        raise ConfigError(f"{where}: {path} is empty")
    return text
