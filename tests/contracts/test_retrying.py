"""RetryingStore / RetryingRegistry: retry transient errors only, bounded, logged."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest
from container_apps.errors import (
    BlobNotFound,
    RegistryError,
    RegistryUnavailable,
    StoreError,
    StoreUnavailable,
)
from container_apps.registries.memory import MemoryRegistry
from container_apps.registries.retrying import RetryingRegistry
from container_apps.retry_policy import RetryPolicy
from container_apps.stores.memory import MemoryBlobStore
from container_apps.stores.retrying import RetryingStore
from container_apps.tests.support.faults import Fault, FaultyBlobStore, FaultyRegistry
from pytest_mock import MockerFixture


@pytest.fixture
def sleeps() -> list[float]:
    return []


@pytest.fixture
def policy(sleeps: list[float]) -> RetryPolicy:
    return RetryPolicy(attempts=4, initial_delay=0.2, max_delay=2.0, sleep=sleeps.append)


@pytest.fixture
def src(tmp_path: Path) -> Path:
    path = tmp_path / "a.bin"
    path.write_bytes(b"payload")
    return path


def test_transient_errors_are_retried_with_exponential_backoff(
    tmp_path: Path,
    src: Path,
    policy: RetryPolicy,
    sleeps: list[float],
    caplog: pytest.LogCaptureFixture,
) -> None:
    faulty = FaultyBlobStore(
        MemoryBlobStore(tmp_path / "c"),
        faults={"put": [StoreUnavailable("down 1"), StoreUnavailable("down 2"), None]},
    )
    with caplog.at_level(logging.DEBUG):
        cid = RetryingStore(faulty, policy).put(src)
    assert cid.startswith("bafkrei")
    assert faulty.count("put") == 3
    assert sleeps == [0.2, 0.4]
    faulty.assert_all_faults_fired()
    retries = [r for r in caplog.records if "retrying" in r.getMessage()]
    assert len(retries) == 2
    # DEBUG only: an outage spans many calls; its callers log it once per state change.
    assert {r.levelno for r in retries} == {logging.DEBUG}
    assert "put to memory://" in retries[0].getMessage()
    assert "down 1" in retries[0].getMessage()


def test_get_range_is_retried_on_transient_errors(
    tmp_path: Path, src: Path, policy: RetryPolicy, sleeps: list[float]
) -> None:
    inner = MemoryBlobStore(tmp_path / "c")
    cid = inner.put(src)
    faulty = FaultyBlobStore(inner, faults={"get_range": [StoreUnavailable("cut off"), None]})
    assert RetryingStore(faulty, policy).get_range(cid, 1, 3) == b"ayl"
    assert faulty.count("get_range") == 2
    assert sleeps == [0.2]
    faulty.assert_all_faults_fired()


def test_get_range_past_the_end_is_not_retried(
    tmp_path: Path, src: Path, policy: RetryPolicy, sleeps: list[float]
) -> None:
    inner = MemoryBlobStore(tmp_path / "c")
    cid = inner.put(src)
    faulty = FaultyBlobStore(inner)
    with pytest.raises(StoreError):
        RetryingStore(faulty, policy).get_range(cid, 5, 10)
    assert faulty.count("get_range") == 1
    assert sleeps == []


@pytest.mark.parametrize("error", [StoreError("denied"), BlobNotFound("bafkreix")])
def test_permanent_store_errors_are_not_retried(
    tmp_path: Path, policy: RetryPolicy, sleeps: list[float], error: StoreError
) -> None:
    faulty = FaultyBlobStore(MemoryBlobStore(tmp_path / "c"), faults={"get": [error]})
    with pytest.raises(type(error)) as info:
        RetryingStore(faulty, policy).get("bafkreix", sha256="0" * 64)
    assert info.value is error
    assert faulty.count("get") == 1
    assert sleeps == []


def test_gives_up_after_the_attempt_limit_with_the_last_error(
    tmp_path: Path, policy: RetryPolicy, sleeps: list[float]
) -> None:
    errors = [StoreUnavailable(f"down {i}") for i in range(4)]
    faulty = FaultyBlobStore(MemoryBlobStore(tmp_path / "c"), faults={"delete": list(errors)})
    with pytest.raises(StoreUnavailable) as info:
        RetryingStore(faulty, policy).delete("bafkreix", remote=True, local=True)
    assert info.value is errors[-1]
    assert faulty.count("delete") == 4
    assert sleeps == [0.2, 0.4, 0.8]


def test_backoff_is_capped_at_max_delay(tmp_path: Path, sleeps: list[float], src: Path) -> None:
    policy = RetryPolicy(attempts=6, initial_delay=0.5, max_delay=1.0, sleep=sleeps.append)
    faulty = FaultyBlobStore(
        MemoryBlobStore(tmp_path / "c"), faults={"put": [StoreUnavailable("x")] * 5}
    )
    RetryingStore(faulty, policy).put(src)
    assert sleeps == [0.5, 1.0, 1.0, 1.0, 1.0]


def test_total_time_bound_stops_retrying(tmp_path: Path, src: Path, mocker: MockerFixture) -> None:
    clock = iter(range(0, 1000, 20))  # every monotonic() read is 20 s later
    mocker.patch("tenacity.time.monotonic", side_effect=lambda: float(next(clock)))
    sleeps: list[float] = []
    policy = RetryPolicy(attempts=10, max_total=30.0, sleep=sleeps.append)
    faulty = FaultyBlobStore(
        MemoryBlobStore(tmp_path / "c"), faults={"put": [StoreUnavailable("x")] * 10}
    )
    with pytest.raises(StoreUnavailable):
        RetryingStore(faulty, policy).put(src)
    assert faulty.count("put") < 10


def test_registry_wrapper_retries_unavailable_and_not_permanent(
    policy: RetryPolicy, sleeps: list[float]
) -> None:
    faulty = FaultyRegistry(
        MemoryRegistry(),
        faults={
            "hset": [RegistryUnavailable("locked"), None],
            "hget": [RegistryError("bad password")],
            "hsync": [RegistryUnavailable("x"), RegistryUnavailable("y")],
        },
    )
    registry = RetryingRegistry(faulty, policy)
    assert registry.hset("H", "k", "v") is True
    with pytest.raises(RegistryError):
        registry.hget("H", "k")
    registry.hsync("H")
    assert (faulty.count("hset"), faulty.count("hget"), faulty.count("hsync")) == (2, 1, 3)
    faulty.assert_all_faults_fired()


def test_fault_after_call_applies_the_write_then_raises() -> None:
    inner = MemoryRegistry()
    faulty = FaultyRegistry(
        inner, faults={"hset": [Fault(RegistryUnavailable("ack lost"), after=True)]}
    )
    with pytest.raises(RegistryUnavailable):
        faulty.hset("H", "k", "v")
    assert inner.hget("H", "k") == "v"


def test_unfired_faults_fail_the_assertion(tmp_path: Path) -> None:
    faulty = FaultyBlobStore(MemoryBlobStore(tmp_path), faults={"put": [StoreUnavailable("x")]})
    with pytest.raises(AssertionError) as info:
        faulty.assert_all_faults_fired()
    assert "put" in str(info.value)
    with pytest.raises(ValueError):
        FaultyBlobStore(MemoryBlobStore(tmp_path), faults={"upload": []})
