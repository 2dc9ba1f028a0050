"""The Registry contract (registries/base.py), one test per guarantee, on every backend.

``registry_pair`` gives two independent handles on the same backend (two runners): what
one writes, the other must read after ``hsync``.
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable
from pathlib import Path

import pytest
from container_apps.registries.base import Registry
from container_apps.registries.lease import LEASE_HKEY, LeaseHolder
from container_apps.registries.memory import MemoryRegistry
from container_apps.registries.sqlite import SqliteRegistry

HKEY = "CHAINSTORE_SYNC"

Opener = Callable[[], Registry]


@pytest.fixture(params=["memory", "sqlite", pytest.param("redis", marks=pytest.mark.redis)])
def open_handle(request: pytest.FixtureRequest, tmp_path: Path) -> Opener:
    """A function returning a new handle on one shared backend instance."""
    if request.param == "memory":
        shared = MemoryRegistry()
        return lambda: shared
    if request.param == "sqlite":
        url = f"sqlite://{tmp_path}/registry.sqlite"
        return lambda: SqliteRegistry.from_url(url)
    from container_apps.registries.redis import RedisRegistry

    url = request.getfixturevalue("redis_registry_url")
    return lambda: RedisRegistry.from_url(url)


@pytest.fixture
def registry(open_handle: Opener) -> Registry:
    return open_handle()


def test_hset_acks_and_hget_returns_the_value(registry: Registry) -> None:
    assert registry.hset(HKEY, "app-a", '{"cid": "x"}') is True
    assert registry.hget(HKEY, "app-a") == '{"cid": "x"}'


def test_hget_of_missing_key_or_hkey_returns_none(registry: Registry) -> None:
    registry.hset(HKEY, "present", "1")
    assert registry.hget(HKEY, "absent") is None
    assert registry.hget("NO_SUCH_HKEY", "present") is None


def test_hset_overwrites_and_last_writer_wins(open_handle: Opener) -> None:
    first, second = open_handle(), open_handle()
    assert first.hset(HKEY, "app", "v1")
    assert second.hset(HKEY, "app", "v2")
    first.hsync(HKEY)
    assert first.hget(HKEY, "app") == "v2"
    assert first.hset(HKEY, "app", "v3")
    second.hsync(HKEY)
    assert second.hget(HKEY, "app") == "v3"


def test_concurrent_hsets_of_one_key_leave_one_written_value(open_handle: Opener) -> None:
    written = {f"value-{i}" for i in range(8)}
    handles = [open_handle() for _ in written]
    threads = [
        threading.Thread(target=h.hset, args=(HKEY, "race", v))
        for h, v in zip(handles, sorted(written), strict=True)
    ]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    reader = open_handle()
    reader.hsync(HKEY)
    assert reader.hget(HKEY, "race") in written


def test_another_handle_sees_a_write_after_hsync(open_handle: Opener) -> None:
    writer, reader = open_handle(), open_handle()
    writer.hset(HKEY, "app", "published")
    reader.hsync(HKEY)
    assert reader.hget(HKEY, "app") == "published"


def test_hkeys_are_independent(registry: Registry) -> None:
    registry.hset("H1", "k", "one")
    registry.hset("H2", "k", "two")
    assert registry.hget("H1", "k") == "one"
    assert registry.hget("H2", "k") == "two"


def test_values_round_trip_unchanged(registry: Registry) -> None:
    record = json.dumps(
        {"cid": "bafkrei…", "metadata": {"note": "ünïcödé ✓", "pad": "x" * 200_000}}
    )
    registry.hset(HKEY, "big", record)
    assert registry.hget(HKEY, "big") == record


def test_hsync_of_unknown_hkey_is_harmless(registry: Registry) -> None:
    registry.hsync("NEVER_WRITTEN")
    assert registry.hget("NEVER_WRITTEN", "k") is None


def test_describe_names_the_backend(registry: Registry) -> None:
    assert registry.describe().startswith(f"{registry.scheme}://")


def test_check_of_a_usable_registry_passes_and_writes_nothing(registry: Registry) -> None:
    registry.check()
    assert registry.hget(HKEY, "anything") is None
    registry.hset(HKEY, "app", "v")
    registry.check()
    assert registry.hget(HKEY, "app") == "v"


# --- leases (registries/lease.py): one writer per key ----------------------------------
A = LeaseHolder("node-a", "inst-1")
B = LeaseHolder("node-b", "inst-2")


def test_a_free_key_is_leased_to_the_first_holder_until_now_plus_ttl(registry: Registry) -> None:
    before = time.time()
    result = registry.acquire_lease(LEASE_HKEY, "app", A, 30)
    assert result.acquired and result.lease.holder == A
    assert before + 29 < result.lease.expires_at < time.time() + 31
    assert result.displaced is None and result.expired is None


def test_the_holder_renews_its_own_lease(registry: Registry) -> None:
    first = registry.acquire_lease(LEASE_HKEY, "app", A, 30)
    time.sleep(0.05)
    again = registry.acquire_lease(LEASE_HKEY, "app", A, 30)
    assert again.acquired and again.lease.expires_at > first.lease.expires_at


def test_another_holder_is_refused_and_told_who_holds_it_until_when(open_handle: Opener) -> None:
    held = open_handle().acquire_lease(LEASE_HKEY, "app", A, 30)
    refused = open_handle().acquire_lease(LEASE_HKEY, "app", B, 30)
    assert not refused.acquired
    assert refused.lease == held.lease


def test_the_same_node_with_another_instance_is_another_holder(registry: Registry) -> None:
    registry.acquire_lease(LEASE_HKEY, "app", A, 30)
    twin = LeaseHolder(A.node_id, "inst-other")
    assert not registry.acquire_lease(LEASE_HKEY, "app", twin, 30).acquired


def test_takeover_displaces_a_live_lease_and_the_old_holder_is_then_refused(
    open_handle: Opener,
) -> None:
    old, new = open_handle(), open_handle()
    old.acquire_lease(LEASE_HKEY, "app", A, 30)
    taken = new.acquire_lease(LEASE_HKEY, "app", B, 30, takeover=True)
    assert taken.acquired and taken.displaced is not None and taken.displaced.holder == A
    renew = old.acquire_lease(LEASE_HKEY, "app", A, 30)
    assert not renew.acquired and renew.lease.holder == B


def test_an_expired_lease_goes_to_the_next_holder(open_handle: Opener) -> None:
    open_handle().acquire_lease(LEASE_HKEY, "app", A, 0.2)
    time.sleep(0.4)
    result = open_handle().acquire_lease(LEASE_HKEY, "app", B, 30)
    assert result.acquired and result.expired is not None and result.expired.holder == A


def test_leases_are_per_key_and_never_visible_as_records(registry: Registry) -> None:
    registry.acquire_lease(LEASE_HKEY, "app", A, 30)
    assert registry.acquire_lease(LEASE_HKEY, "other-app", B, 30).acquired
    assert registry.hget(HKEY, "app") is None  # the record hash is untouched


def test_a_value_that_is_not_a_lease_counts_as_free(registry: Registry) -> None:
    registry.hset(LEASE_HKEY, "app", "not json {")
    assert registry.acquire_lease(LEASE_HKEY, "app", A, 30).acquired


def test_concurrent_acquires_by_different_holders_grant_exactly_one(open_handle: Opener) -> None:
    holders = [LeaseHolder(f"node-{i % 3}", f"inst-{i}") for i in range(16)]
    handles = [open_handle() for _ in holders]
    results: list[bool] = []
    start = threading.Barrier(len(holders))

    def race(handle: Registry, holder: LeaseHolder) -> None:
        start.wait()
        results.append(handle.acquire_lease(LEASE_HKEY, "race", holder, 30).acquired)

    threads = [
        threading.Thread(target=race, args=pair) for pair in zip(handles, holders, strict=True)
    ]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sorted(results) == [False] * 15 + [True]
