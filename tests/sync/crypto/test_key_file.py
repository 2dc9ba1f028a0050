"""SYNC.ENCRYPTION_KEY_FILE: only a private file of exactly 32 bytes is a key; tar.gz is
never encrypted (the older runner's consumers read it)."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from container_apps.errors import ConfigError
from container_apps.sync.config import SyncConfig
from container_apps.sync.crypto.keys import derive_keys, load_keys

BASE = {"ENABLED": True, "KEY": "k", "TYPE": "provider"}


def _key(tmp_path: Path, data: bytes = b"\x01" * 32, mode: int = 0o600) -> Path:
    path = tmp_path / "sync.key"
    path.write_bytes(data)
    os.chmod(path, mode)
    return path


def _problems(extra: dict[str, object]) -> list[str]:
    with pytest.raises(ConfigError) as info:
        SyncConfig.parse({**BASE, **extra})
    return info.value.problems


def test_a_private_32_byte_file_is_accepted(tmp_path: Path) -> None:
    path = _key(tmp_path)
    cfg = SyncConfig.parse({**BASE, "ENCRYPTION_KEY_FILE": str(path)})
    assert cfg.encryption_key_file == str(path)
    assert load_keys(path) == derive_keys(b"\x01" * 32)


@pytest.mark.parametrize(
    ("data", "mode", "why"),
    [
        (b"\x01" * 32, 0o640, "mode 0640"),
        (b"\x01" * 32, 0o604, "mode 0604"),
        (b"\x01" * 31, 0o600, "holds 31 bytes, not 32"),
        (b"\x01" * 33, 0o600, "holds 33 bytes, not 32"),
    ],
)
def test_a_shared_or_wrong_sized_file_is_a_config_error(
    tmp_path: Path, data: bytes, mode: int, why: str
) -> None:
    path = _key(tmp_path, data, mode)
    (problem,) = _problems({"ENCRYPTION_KEY_FILE": str(path)})
    assert problem.startswith("SYNC.ENCRYPTION_KEY_FILE") and why in problem
    with pytest.raises(ConfigError, match=why):
        load_keys(path)


def test_a_missing_file_is_a_config_error(tmp_path: Path) -> None:
    (problem,) = _problems({"ENCRYPTION_KEY_FILE": str(tmp_path / "nope")})
    assert "SYNC.ENCRYPTION_KEY_FILE" in problem and "cannot be read" in problem


def test_tar_gz_with_a_key_is_refused_naming_the_older_runner(tmp_path: Path) -> None:
    path = _key(tmp_path)
    problems = _problems({"ENCRYPTION_KEY_FILE": str(path), "ARCHIVE_FORMAT": "tar.gz"})
    assert any("ENCRYPTION_KEY_FILE" in p and "older runner" in p for p in problems)


def test_subkeys_differ_per_purpose_and_hide_in_repr() -> None:
    keys = derive_keys(b"\x02" * 32)
    assert len({keys.content, keys.chunk_id}) == 2 and b"\x02" * 32 not in (keys.content,)
    assert "content" not in repr(keys) and "key_id" in repr(keys)
