"""RedisRegistry specifics on a real redis-server: layout, namespaces, errors, redaction."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from urllib.parse import urlsplit

import pytest
import redis
from container_apps.errors import RegistryError, RegistryUnavailable
from container_apps.registries.redis import RedisRegistry
from container_apps.tests.support.servers import free_port

pytestmark = pytest.mark.redis
HKEY = "CHAINSTORE_SYNC"


@pytest.fixture
def raw(redis_url: str) -> Iterator[redis.Redis]:
    client = redis.Redis.from_url(redis_url, decode_responses=True)
    try:
        yield client
    finally:
        client.close()


def test_layout_is_hset_hkey_key_in_the_namespace(
    redis_registry_url: str, raw: redis.Redis
) -> None:
    reg = RedisRegistry.from_url(redis_registry_url)
    namespace = redis_registry_url.split("namespace=")[1]
    reg.hset(HKEY, "app", '{"cid": "b"}')
    assert raw.hget(f"{namespace}:{HKEY}", "app") == '{"cid": "b"}'
    assert raw.hget(HKEY, "app") is None


def test_layout_without_namespace_is_the_bare_hkey(redis_url: str, raw: redis.Redis) -> None:
    hkey = f"CAR_TEST_{uuid.uuid4().hex}"
    try:
        RedisRegistry.from_url(redis_url).hset(hkey, "app", "v")
        assert raw.hget(hkey, "app") == "v"
    finally:
        raw.delete(hkey)


def test_non_utf8_value_written_by_another_tool_is_read_not_raised(
    redis_registry_url: str, redis_url: str
) -> None:
    # Registry content is untrusted: bad bytes must reach the consumer's record parser
    # (which refuses them as malformed), not escape as a UnicodeDecodeError.
    namespace = redis_registry_url.split("namespace=")[1]
    client = redis.Redis.from_url(redis_url)
    try:
        client.hset(f"{namespace}:{HKEY}", "app", b'{"cid": "\xff"}')
    finally:
        client.close()
    assert RedisRegistry.from_url(redis_registry_url).hget(HKEY, "app") == '{"cid": "\ufffd"}'


def test_record_written_by_another_tool_is_read(redis_registry_url: str, raw: redis.Redis) -> None:
    namespace = redis_registry_url.split("namespace=")[1]
    raw.hset(f"{namespace}:{HKEY}", "app", '{"cid": "by-hand"}')
    assert RedisRegistry.from_url(redis_registry_url).hget(HKEY, "app") == '{"cid": "by-hand"}'


def test_namespaces_are_isolated(redis_url: str, raw: redis.Redis) -> None:
    a, b = (f"iso{uuid.uuid4().hex[:8]}" for _ in range(2))
    try:
        reg_a = RedisRegistry.from_url(f"{redis_url}?namespace={a}")
        reg_b = RedisRegistry.from_url(f"{redis_url}?namespace={b}")
        reg_a.hset(HKEY, "app", "from-a")
        assert reg_b.hget(HKEY, "app") is None
        reg_b.hset(HKEY, "app", "from-b")
        assert reg_a.hget(HKEY, "app") == "from-a"
    finally:
        raw.delete(f"{a}:{HKEY}", f"{b}:{HKEY}")


def test_wrong_credentials_are_a_permanent_error_with_a_hint(redis_url: str) -> None:
    parts = urlsplit(redis_url)
    url = f"redis://nosuchuser:s3cret-pw@{parts.hostname}:{parts.port}/0"
    with pytest.raises(RegistryError) as info:
        RedisRegistry.from_url(url).hset(HKEY, "app", "v")
    assert not isinstance(info.value, RegistryUnavailable)
    message = str(info.value)
    assert "authentication failed" in message
    assert "s3cret-pw" not in message
    assert "nosuchuser:***@" in message
    assert "\n" not in message


def test_unreachable_server_is_transient_and_names_the_redacted_url() -> None:
    url = f"redis://:hunter2@127.0.0.1:{free_port()}/0"
    with pytest.raises(RegistryUnavailable) as info:
        RedisRegistry.from_url(url).hget(HKEY, "app")
    message = str(info.value)
    assert "hunter2" not in message
    assert "127.0.0.1" in message
    assert "\n" not in message


def test_describe_redacts_the_password() -> None:
    reg = RedisRegistry.from_url("rediss://user:topsecret@127.0.0.1:6380/2?namespace=prod")
    assert reg.describe() == "rediss://user:***@127.0.0.1:6380/2?namespace=prod"
    assert reg.config.tls and reg.config.db == 2 and reg.config.password == "topsecret"


def test_check_of_an_unreachable_server_is_transient_and_redacted() -> None:
    url = f"redis://:hunter2@127.0.0.1:{free_port()}/0"
    with pytest.raises(RegistryUnavailable) as info:
        RedisRegistry.from_url(url).check()
    assert "hunter2" not in str(info.value) and "cannot reach" in str(info.value)


def test_check_with_wrong_credentials_is_permanent(redis_url: str) -> None:
    parts = urlsplit(redis_url)
    url = f"redis://nosuchuser:s3cret-pw@{parts.hostname}:{parts.port}/0"
    with pytest.raises(RegistryError) as info:
        RedisRegistry.from_url(url).check()
    assert not isinstance(info.value, RegistryUnavailable)
    assert "authentication failed" in str(info.value)
