"""Key files: `car keys generate` writes them safely; SIGNING_KEY_FILE/TRUSTED_KEYS are checked."""

from __future__ import annotations

import os
import stat
from pathlib import Path

import pytest
from container_apps.errors import ConfigError
from container_apps.sync.config import SyncConfig
from container_apps.sync.key_files import KeyFileError, generate_key_files, load_signing_key
from container_apps.sync.signing import RecordSigner
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.serialization import (
    BestAvailableEncryption,
    Encoding,
    NoEncryption,
    PrivateFormat,
)


def _mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def test_generate_writes_a_0600_private_key_and_its_public_line(tmp_path: Path) -> None:
    out = tmp_path / "k"
    old = os.umask(0)  # even with no umask, the private key is never readable by others
    try:
        line = generate_key_files(out)
    finally:
        os.umask(old)
    assert _mode(out) == 0o600
    assert (tmp_path / "k.pub").read_text() == line + "\n"
    assert line.startswith("car-ed25519:")
    assert RecordSigner(load_signing_key(out)).public_key == line


def test_generate_refuses_to_overwrite_either_file_without_force(tmp_path: Path) -> None:
    out = tmp_path / "k"
    first = generate_key_files(out)
    before = out.read_bytes()
    with pytest.raises(KeyFileError) as caught:
        generate_key_files(out)
    assert "already exists" in str(caught.value) and "--force" in str(caught.value)
    (tmp_path / "k.pub").unlink()
    with pytest.raises(KeyFileError):  # the private key alone still blocks
        generate_key_files(out)
    assert out.read_bytes() == before
    out.unlink()
    (tmp_path / "k.pub").write_text(first)
    with pytest.raises(KeyFileError) as caught:  # and the public key alone
        generate_key_files(out)
    assert "k.pub" in str(caught.value) and not out.exists()


def test_generate_with_force_replaces_both_files_keeping_mode_0600(tmp_path: Path) -> None:
    out = tmp_path / "k"
    first = generate_key_files(out)
    second = generate_key_files(out, force=True)
    assert second != first and _mode(out) == 0o600
    assert (tmp_path / "k.pub").read_text().strip() == second
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".")] == []


def test_generate_into_a_missing_directory_is_one_clear_error(tmp_path: Path) -> None:
    with pytest.raises(KeyFileError) as caught:
        generate_key_files(tmp_path / "nope" / "k")
    assert "nope" in str(caught.value)


@pytest.mark.parametrize("mode", [0o640, 0o604, 0o644, 0o660])
def test_a_key_readable_by_group_or_others_is_refused(tmp_path: Path, mode: int) -> None:
    out = tmp_path / "k"
    generate_key_files(out)
    out.chmod(mode)
    with pytest.raises(KeyFileError) as caught:
        load_signing_key(out)
    assert f"{mode:04o}" in str(caught.value) and "chmod 600" in str(caught.value)


def _pem(key: object, encryption: object = None) -> bytes:
    return key.private_bytes(  # type: ignore[attr-defined, no-any-return]
        Encoding.PEM, PrivateFormat.PKCS8, encryption or NoEncryption()
    )


@pytest.mark.parametrize(
    ("content", "words"),
    [
        (b"not a key\n", "not an unencrypted PEM private key"),
        (b"", "not an unencrypted PEM private key"),
        (
            _pem(Ed25519PrivateKey.generate(), BestAvailableEncryption(b"pw")),
            "not an unencrypted PEM private key",
        ),
        (_pem(rsa.generate_private_key(public_exponent=65537, key_size=1024)), "not an Ed25519"),
        (b"x" * 70_000, "too large"),
    ],
    ids=["garbage", "empty", "encrypted", "rsa", "huge"],
)
def test_a_file_that_is_not_an_ed25519_private_key_is_refused(
    tmp_path: Path, content: bytes, words: str
) -> None:
    out = tmp_path / "k"
    out.write_bytes(content)
    out.chmod(0o600)
    with pytest.raises(KeyFileError) as caught:
        load_signing_key(out)
    assert words in str(caught.value)


def test_missing_or_directory_key_file_is_refused(tmp_path: Path) -> None:
    with pytest.raises(KeyFileError) as caught:
        load_signing_key(tmp_path / "missing")
    assert "cannot read" in str(caught.value)
    with pytest.raises(KeyFileError) as caught:
        load_signing_key(tmp_path)
    assert "not a regular file" in str(caught.value)


def _sync(**extra: object) -> dict[str, object]:
    return {"ENABLED": True, "KEY": "k", "TYPE": "provider", **extra}


def test_config_accepts_a_good_key_and_trusted_keys(tmp_path: Path) -> None:
    out = tmp_path / "k"
    line = generate_key_files(out)
    cfg = SyncConfig.parse(_sync(SIGNING_KEY_FILE=str(out), TRUSTED_KEYS=[f" {line}\n"]))
    assert cfg.signing_key_file == str(out) and cfg.trusted_keys == [line]
    assert SyncConfig.parse(_sync()).trusted_keys is None


def test_config_refuses_a_group_readable_signing_key_naming_the_key(tmp_path: Path) -> None:
    out = tmp_path / "k"
    generate_key_files(out)
    out.chmod(0o640)
    with pytest.raises(ConfigError) as caught:
        SyncConfig.parse(_sync(SIGNING_KEY_FILE=str(out)))
    [problem] = caught.value.problems
    assert problem.startswith("SYNC.SIGNING_KEY_FILE: ") and "readable by group" in problem


@pytest.mark.parametrize(
    ("value", "words"),
    [
        ([], "empty list trusts no key"),
        (["car-ed25519:zz"], "item 0"),
        ("car-ed25519:AAAA", "must be null or a list"),
        ([5], "must be null or a list"),
    ],
)
def test_config_refuses_bad_trusted_keys(value: object, words: str) -> None:
    with pytest.raises(ConfigError) as caught:
        SyncConfig.parse(_sync(TYPE="consumer", TRUSTED_KEYS=value))
    assert any(p.startswith("SYNC.TRUSTED_KEYS") and words in p for p in caught.value.problems)
