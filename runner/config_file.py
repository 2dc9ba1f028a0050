"""Reading a runner config file: JSON (duplicate keys refused) or YAML (README, "Running an app").

Turns the file into the raw object ``RunnerConfig.parse`` validates; every read or
syntax problem is a one-line ``ConfigError`` naming the file, line and column. Between
the two, ``${VAR}`` references and ``*_FILE`` keys are resolved (``config_secrets.py``),
and the values they bring in are masked in every config error.
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from ..errors import ConfigError
from .config_secrets import Secrets, expand_config
from .runner_config import RunnerConfig

YAML_SUFFIXES = (".yaml", ".yml")


def load_runner_config(path: Path, *, environ: Mapping[str, str] | None = None) -> RunnerConfig:
    """Read and validate a runner config file (JSON, or YAML for .yaml/.yml).

    ``environ`` (default ``os.environ``) supplies the ``${VAR}`` values.

    Raises:
        ConfigError: the file cannot be read or parsed, or lists every invalid key.
    """
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"{path}: cannot read config file: {exc}") from None
    if not text.strip():
        raise ConfigError(
            f"{path}: the config file is empty",
            hint="write a JSON object with at least INSTANCE_ID and IMAGE",
        )
    if path.suffix.lower() in YAML_SUFFIXES:
        raw = _parse_yaml(path, text)
    else:
        raw = _parse_json(path, text)
    secrets = Secrets()
    raw = expand_config(
        raw,
        environ=os.environ if environ is None else environ,
        base_dir=path.parent,
        secrets=secrets,
    )
    try:
        return RunnerConfig.parse(raw)
    except ConfigError as exc:  # a message may quote a value it refuses: mask the secrets
        hint = secrets.scrub(exc.hint) if exc.hint else None
        raise ConfigError([secrets.scrub(p) for p in exc.problems], hint=hint) from None


def _parse_json(path: Path, text: str) -> Any:
    duplicates: list[str] = []

    def no_duplicates(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
        seen: dict[str, Any] = {}
        for key, value in pairs:
            if key in seen:
                duplicates.append(key)
            seen[key] = value
        return seen

    try:
        raw = json.loads(text, object_pairs_hook=no_duplicates)
    except json.JSONDecodeError as exc:
        raise ConfigError(
            f"{path}: invalid JSON at line {exc.lineno} column {exc.colno}: {exc.msg}"
        ) from None
    if duplicates:
        raise ConfigError(
            [f"{key}: duplicate key (only the last value would count)" for key in duplicates],
            hint="keep one entry per key",
        )
    return raw


def _parse_yaml(path: Path, text: str) -> Any:
    try:
        import yaml  # type: ignore[import-untyped]
    except ImportError:
        raise ConfigError(
            f"{path}: YAML configs need PyYAML",
            hint="pip install 'container_apps[yaml]', or use JSON",
        ) from None
    try:
        return yaml.safe_load(text)
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark
        where = f" at line {mark.line + 1} column {mark.column + 1}" if mark else ""
        problem = exc.problem or exc.context or "syntax error"
        raise ConfigError(f"{path}: invalid YAML{where}: {problem}") from None
    except yaml.YAMLError as exc:
        raise ConfigError(f"{path}: invalid YAML: {' '.join(str(exc).split())}") from None
