"""open_store / open_registry: URL validation, lazy imports, install hints, wrapping, set-up."""

from __future__ import annotations

import ast
import importlib
import sys
from pathlib import Path

import pytest
from container_apps.errors import ConfigError, RegistryError, RegistryUnavailable, StoreError
from container_apps.registries.base import Registry
from container_apps.registries.factory import (
    KNOWN_REGISTRIES,
    default_registry_url,
    open_registry,
    validate_registry_url,
)
from container_apps.registries.lazy import LazyRegistry
from container_apps.registries.retrying import RetryingRegistry
from container_apps.registries.sqlite import SqliteRegistry
from container_apps.retry_policy import RetryPolicy
from container_apps.stores.base import BlobStore
from container_apps.stores.factory import (
    KNOWN_STORES,
    default_store_url,
    open_store,
    validate_store_url,
)
from container_apps.stores.lazy import LazyStore
from container_apps.stores.local import FileBlobStore
from container_apps.stores.retrying import RetryingStore
from container_apps.tests.support.servers import free_port

BAD_STORE_URLS = [
    "",
    "just-a-path",
    "/abs/path/without/scheme",
    "file://relative/dir",
    "file://",
    "file:///",
    "file:///dir?x=1",
    "file:///dir#frag",
    "s3://",
    "s3://Bad_Bucket/x",
    "s3://ab",
    "s3://bucket/a//b",
    "s3://bucket/../x",
    "s3://bucket?endpoint_url=ftp://x",
    "s3://bucket?endpoint_url=http://h&endpoint_url=http://i",
    "s3://bucket?region=",
    "s3://bucket?colour=blue",
    "s3://KEYONLY@bucket",
    "s3://bucket:notaport/x",
]
BAD_REGISTRY_URLS = [
    "",
    "registry.sqlite",
    "sqlite://relative.sqlite",
    "sqlite:///",
    "sqlite:///r.sqlite?mode=ro",
    "redis://",
    "redis://127.0.0.1:6379/zero",
    "redis://127.0.0.1:notaport/0",
    "redis://127.0.0.1:6379/0?namespace=",
    "redis://127.0.0.1:6379/0?db=1",
]


@pytest.mark.parametrize("url", BAD_STORE_URLS)
def test_malformed_store_urls_are_one_line_config_errors(url: str, tmp_path: Path) -> None:
    with pytest.raises(ConfigError) as info:
        open_store(url, cache_dir=tmp_path)
    message = str(info.value)
    assert message.startswith("STORAGE.BLOBS: ")
    assert "\n" not in message


@pytest.mark.parametrize("url", BAD_REGISTRY_URLS)
def test_malformed_registry_urls_are_one_line_config_errors(url: str) -> None:
    with pytest.raises(ConfigError) as info:
        open_registry(url)
    message = str(info.value)
    assert message.startswith("STORAGE.REGISTRY: ")
    assert "\n" not in message


def test_unknown_store_scheme_lists_the_known_ones() -> None:
    with pytest.raises(ConfigError) as info:
        validate_store_url("ipfs://QmSomething")
    assert "unknown scheme 'ipfs'" in str(info.value)
    assert "file://, s3://" in str(info.value)


def test_unknown_registry_scheme_lists_the_known_ones() -> None:
    with pytest.raises(ConfigError) as info:
        validate_registry_url("etcd://127.0.0.1:2379")
    assert "sqlite://, redis://, rediss://" in str(info.value)


def test_secrets_never_appear_in_config_errors() -> None:
    with pytest.raises(ConfigError) as info:
        validate_store_url("s3://AKIA:sup3rsecret@bucket?colour=blue")
    assert "sup3rsecret" not in str(info.value)
    with pytest.raises(ConfigError) as info2:
        validate_registry_url("redis://:sup3rsecret@127.0.0.1:6379/zero")
    assert "sup3rsecret" not in str(info2.value)


def test_missing_boto3_gives_the_install_hint(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "boto3", None)  # makes `import boto3` fail
    monkeypatch.delitem(sys.modules, "container_apps.stores.s3", raising=False)
    with pytest.raises(ConfigError) as info:
        validate_store_url("s3://bucket/prefix")
    assert "pip install 'container_apps[s3]'" in str(info.value)
    assert "boto3" in str(info.value)


def test_missing_redis_py_gives_the_install_hint(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "redis", None)
    monkeypatch.delitem(sys.modules, "container_apps.registries.redis", raising=False)
    with pytest.raises(ConfigError) as info:
        validate_registry_url("redis://127.0.0.1:6379/0")
    assert "pip install 'container_apps[redis]'" in str(info.value)


def test_scheme_tables_are_read_only() -> None:
    with pytest.raises(TypeError):
        KNOWN_STORES["ftp"] = "x:Y"  # type: ignore[index]
    with pytest.raises(TypeError):
        KNOWN_REGISTRIES["ftp"] = "x:Y"  # type: ignore[index]


# Every backend and the Protocol-level type its module's TYPE_CHECKING line must give it:
# the factory loads classes by name, so only that line makes mypy --strict check one.
CONFORMANCE = {
    **{target: "StoreBackend" for target in KNOWN_STORES.values()},
    **{target: "RegistryBackend" for target in KNOWN_REGISTRIES.values()},
    "container_apps.stores.memory:MemoryBlobStore": "type[BlobStore]",
    "container_apps.registries.memory:MemoryRegistry": "type[Registry]",
}


def _conformance_lines(source: str) -> set[tuple[str, str]]:
    """(annotation, class) of every ``name: T = Class`` under ``if TYPE_CHECKING:``."""
    found = set()
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.If) and ast.unparse(node.test) == "TYPE_CHECKING":
            for stmt in node.body:
                if isinstance(stmt, ast.AnnAssign) and isinstance(stmt.value, ast.Name):
                    found.add((ast.unparse(stmt.annotation), stmt.value.id))
    return found


@pytest.mark.parametrize("target", sorted(CONFORMANCE))
def test_every_backend_has_a_conformance_line_mypy_checks(target: str) -> None:
    module_name, class_name = target.split(":")
    source = Path(importlib.import_module(module_name).__file__ or "").read_text()
    assert (CONFORMANCE[target], class_name) in _conformance_lines(source)


def test_the_conformance_scan_needs_the_type_checking_block() -> None:
    planted = "x: StoreBackend = A\nif TYPE_CHECKING:\n    _b: StoreBackend = B\n"
    assert _conformance_lines(planted) == {("StoreBackend", "B")}


def test_defaults_are_the_embedded_backends_under_data_shared(tmp_path: Path) -> None:
    assert default_store_url(tmp_path) == f"file://{tmp_path}/shared/blobs"
    assert default_registry_url(tmp_path) == f"sqlite://{tmp_path}/shared/registry.sqlite"
    store = open_store(default_store_url(tmp_path), cache_dir=tmp_path / "dl")
    registry = open_registry(default_registry_url(tmp_path))
    assert isinstance(store, RetryingStore) and isinstance(store.inner, LazyStore)
    assert isinstance(registry, RetryingRegistry) and isinstance(registry.inner, LazyRegistry)
    assert isinstance(store, BlobStore) and isinstance(registry, Registry)
    assert not (tmp_path / "shared").exists()  # opening does no I/O
    store.check()
    registry.check()
    assert isinstance(store.inner.opened(), FileBlobStore)
    assert isinstance(registry.inner.opened(), SqliteRegistry)
    assert (tmp_path / "shared" / "blobs").is_dir() and (tmp_path / "dl").is_dir()
    assert (tmp_path / "shared" / "registry.sqlite").is_file()


def test_a_backend_that_cannot_be_set_up_fails_its_calls_and_is_set_up_once_repaired(
    tmp_path: Path,
) -> None:
    path = tmp_path / "registry.sqlite"
    path.write_bytes(b"not a database" * 100)
    registry = open_registry(f"sqlite://{path}")  # no error: nothing is read at open
    with pytest.raises(RegistryError) as info:
        registry.hget("H", "k")
    assert "not a database" in str(info.value) and "move it aside" in str(info.value)
    with pytest.raises(RegistryError):
        registry.check()
    path.unlink()  # the operator moved it aside
    registry.check()
    assert registry.hset("H", "k", "v") and registry.hget("H", "k") == "v"


def test_a_blob_dir_that_cannot_be_created_is_retried_at_the_next_call(tmp_path: Path) -> None:
    blocker = tmp_path / "blocker"
    blocker.write_text("a file where the parent directory should be")
    store = open_store(f"file://{blocker}/blobs", cache_dir=tmp_path / "dl")
    with pytest.raises(StoreError) as info:
        store.check()
    assert "cannot create blob directory" in str(info.value)
    blocker.unlink()
    store.check()
    assert (blocker / "blobs").is_dir()


def test_opened_store_round_trips_through_the_wrapper(tmp_path: Path) -> None:
    store = open_store(default_store_url(tmp_path), cache_dir=tmp_path / "dl")
    src = tmp_path / "a.bin"
    src.write_bytes(b"abc" * 1000)
    cid = store.put(src)
    assert store.get(cid).read_bytes() == src.read_bytes()
    assert store.describe() == f"file://{tmp_path}/shared/blobs"


@pytest.mark.parametrize(
    ("url", "secret"),
    [
        ("s3://AKIAXX:wJalrXUtnFEMI@bucket/p?endpoint_url=http://127.0.0.1:9", "wJalrXUtnFEMI"),
        ("redis://:pa55word@127.0.0.1:6379/0", "pa55word"),
        ("rediss://admin:pa55word@127.0.0.1:6379/1?namespace=x", "pa55word"),
    ],
)
def test_describe_of_opened_backends_redacts_secrets(url: str, secret: str, tmp_path: Path) -> None:
    backend = open_store(url, cache_dir=tmp_path) if url.startswith("s3") else open_registry(url)
    assert secret not in backend.describe()
    assert "***" in backend.describe()


@pytest.mark.redis
def test_unreachable_redis_gives_up_after_the_retry_policy() -> None:
    sleeps: list[float] = []
    policy = RetryPolicy(attempts=4, initial_delay=0.2, max_delay=2.0, sleep=sleeps.append)
    registry = open_registry(f"redis://127.0.0.1:{free_port()}/0", policy=policy)
    with pytest.raises(RegistryUnavailable) as info:
        registry.hset("H", "k", "v")
    assert sleeps == [0.2, 0.4, 0.8]
    assert "cannot reach" in str(info.value)
