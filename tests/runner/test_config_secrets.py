"""``${VAR}`` expansion and ``*_FILE`` keys in a runner config file (runner/config_secrets.py)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from container_apps.errors import ConfigError
from container_apps.runner.config_file import load_runner_config
from container_apps.runner.runner_config import RunnerConfig

BASE: dict[str, Any] = {"INSTANCE_ID": "app1", "IMAGE": "busybox:latest"}


def _load(tmp_path: Path, extra: dict[str, Any], env: dict[str, str] | None = None) -> RunnerConfig:
    path = tmp_path / "config.json"
    path.write_text(json.dumps({**BASE, **extra}))
    return load_runner_config(path, environ=env or {})


def _problems(tmp_path: Path, extra: dict[str, Any], env: dict[str, str] | None = None) -> str:
    with pytest.raises(ConfigError) as info:
        _load(tmp_path, extra, env)
    return str(info.value)


def _secret_file(path: Path, text: str, mode: int = 0o600) -> Path:
    path.write_text(text)
    path.chmod(mode)
    return path


def test_variables_are_expanded_in_every_string_value(tmp_path: Path) -> None:
    env = {"PW": "hunter2-pw", "IMG": "busybox:latest", "LEVEL": "debug"}
    cfg = _load(
        tmp_path,
        {
            "IMAGE": "${IMG}",
            "ENV": {"LOG": "level=${LEVEL}", "N": 3},
            "STORAGE": {"REGISTRY": "redis://:${PW}@127.0.0.1:6379/0"},
        },
        env,
    )
    assert cfg.image == "busybox:latest"
    assert cfg.env == {"LOG": "level=debug", "N": 3}
    assert cfg.storage.registry == "redis://:hunter2-pw@127.0.0.1:6379/0"


def test_an_unset_variable_is_a_config_error_naming_it_and_the_key(tmp_path: Path) -> None:
    message = _problems(tmp_path, {"STORAGE": {"REGISTRY": "redis://:${REDIS_PASSWORD}@h/0"}})
    assert "STORAGE.REGISTRY: environment variable REDIS_PASSWORD is not set" in message


def test_every_unset_variable_is_reported_at_once(tmp_path: Path) -> None:
    message = _problems(tmp_path, {"ENV": {"A": "${ONE}", "B": ["${TWO}"]}})
    assert "ENV.A: environment variable ONE" in message
    assert "ENV.B[0]: environment variable TWO" in message


def test_double_dollar_is_a_literal_dollar_and_a_lone_dollar_stays(tmp_path: Path) -> None:
    cfg = _load(tmp_path, {"ENV": {"PRICE": "$$5 and ${X}", "HOME_REF": "$HOME"}}, {"X": "y"})
    assert cfg.env == {"PRICE": "$5 and y", "HOME_REF": "$HOME"}
    cfg = _load(tmp_path, {"ENV": {"LITERAL": "$${NOT_EXPANDED}"}})
    assert cfg.env == {"LITERAL": "${NOT_EXPANDED}"}


def test_a_malformed_reference_is_an_error(tmp_path: Path) -> None:
    message = _problems(tmp_path, {"ENV": {"A": "${1BAD}", "B": "${OPEN"}})
    assert "ENV.A: '${1BAD}' is not a variable reference" in message
    assert "ENV.B: '${OPEN' is not a variable reference" in message


def test_registry_file_supplies_the_registry_url(tmp_path: Path) -> None:
    _secret_file(tmp_path / "registry.url", "redis://:from-file-pw@127.0.0.1:6379/0\n")
    cfg = _load(tmp_path, {"STORAGE": {"REGISTRY_FILE": "registry.url"}})  # relative: config dir
    assert cfg.storage.registry == "redis://:from-file-pw@127.0.0.1:6379/0"


def test_blobs_file_supplies_the_blob_store_url_with_an_expanded_path(tmp_path: Path) -> None:
    secret = _secret_file(tmp_path / "blobs.url", "s3://AKIA:s3-secret@bucket")
    cfg = _load(
        tmp_path,
        {"STORAGE": {"BLOBS_FILE": "${SECRETS}/blobs.url"}},
        {"SECRETS": str(secret.parent)},
    )
    assert cfg.storage.blobs == "s3://AKIA:s3-secret@bucket"


@pytest.mark.parametrize("mode", [0o640, 0o604, 0o620])
def test_a_secret_file_others_can_access_is_refused(tmp_path: Path, mode: int) -> None:
    path = _secret_file(tmp_path / "registry.url", "redis://:leaky-pw@h/0", mode)
    message = _problems(tmp_path, {"STORAGE": {"REGISTRY_FILE": str(path)}})
    assert f"STORAGE.REGISTRY_FILE: {path} is accessible to group or others" in message
    assert f"chmod 600 {path}" in message
    assert "leaky-pw" not in message


def test_file_key_problems(tmp_path: Path) -> None:
    _secret_file(tmp_path / "empty", "  \n")
    (tmp_path / "dir").mkdir(mode=0o700)
    both = {"REGISTRY": "sqlite:///x.sqlite", "REGISTRY_FILE": "x"}
    assert "give STORAGE.REGISTRY or STORAGE.REGISTRY_FILE, not both" in _problems(
        tmp_path, {"STORAGE": both}
    )
    assert "cannot read" in _problems(tmp_path, {"STORAGE": {"REGISTRY_FILE": "missing"}})
    assert "is empty" in _problems(tmp_path, {"STORAGE": {"REGISTRY_FILE": "empty"}})
    assert "not a regular file" in _problems(tmp_path, {"STORAGE": {"BLOBS_FILE": "dir"}})


def test_config_errors_never_quote_an_expanded_or_file_secret(tmp_path: Path) -> None:
    env = {"SECRET": "hunter2-env-secret"}
    message = _problems(tmp_path, {"IMAGE_PULL_POLICY": "${SECRET}"}, env)
    assert message.startswith("IMAGE_PULL_POLICY") and "hunter2-env-secret" not in message
    _secret_file(tmp_path / "registry.url", "redis://:file-secret@127.0.0.1:notaport/0")
    message = _problems(tmp_path, {"STORAGE": {"REGISTRY_FILE": "registry.url"}})
    assert message.startswith("STORAGE.REGISTRY") and "file-secret" not in message


def test_a_value_is_expanded_once_never_again(tmp_path: Path) -> None:
    # A variable's value that looks like a reference stays as it is: no second pass that
    # an environment value could use to pull in another variable.
    cfg = _load(tmp_path, {"ENV": {"A": "${OUTER}"}}, {"OUTER": "${INNER}$$", "INNER": "x"})
    assert cfg.env == {"A": "${INNER}$$"}


def test_yaml_configs_are_expanded_too(tmp_path: Path) -> None:
    path = tmp_path / "config.yaml"
    path.write_text("INSTANCE_ID: app1\nIMAGE: ${IMG}\nENV: {N: 3}\n")
    cfg = load_runner_config(path, environ={"IMG": "busybox:latest"})
    assert cfg.image == "busybox:latest" and cfg.env == {"N": 3}
