"""request.json semantics -> SyncRequest or RequestRejected(code) (docs/FORMAT.md)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from container_apps.errors import RequestRejected
from container_apps.sync import constants as C
from container_apps.sync.paths import PathResolver
from container_apps.sync.request import parse_request
from container_apps.volumes.binding import VolumeBinding


@pytest.fixture
def resolver(tmp_path: Path) -> PathResolver:
    root = tmp_path / "data"
    (root / "a").mkdir(parents=True)
    (root / "b").mkdir()
    return PathResolver([VolumeBinding("data", "fixed", root, "/app/data")])


def _parse(body: Any, resolver: PathResolver, *, allow_online: bool = False):
    return parse_request(body, allow_online=allow_online, resolver=resolver)


def _code(body: Any, resolver: PathResolver, **kw: Any) -> str:
    with pytest.raises(RequestRejected) as info:
        _parse(body, resolver, **kw)
    assert info.value.stage == "validation"
    return info.value.code


def test_minimal_request_gets_defaults(resolver: PathResolver) -> None:
    req = _parse({"archive_paths": ["/app/data/"]}, resolver)
    assert req.archive_paths == ("/app/data",)
    assert req.echo_paths == ["/app/data/"]  # echoed as written
    assert req.metadata == {}
    assert req.provider_capture == "offline" and req.consumer_apply == "offline_restart"
    assert req.request_id is None


def test_full_request_and_unknown_fields_ignored(resolver: PathResolver) -> None:
    body = {
        "archive_paths": ["/app/data/a", "/app/data/b", "/app/data/a/"],
        "metadata": {"epoch": 1},
        "runtime": {"provider_capture": "offline", "consumer_apply": "online_restart"},
        "request_id": "r-1",
        "future_field": {"x": 1},
    }
    req = _parse(body, resolver)
    assert req.archive_paths == ("/app/data/a", "/app/data/b")
    assert req.echo_paths == ["/app/data/a", "/app/data/b", "/app/data/a/"]
    assert req.metadata == {"epoch": 1}
    assert req.runtime == {"provider_capture": "offline", "consumer_apply": "online_restart"}
    assert req.request_id == "r-1"


@pytest.mark.parametrize("body", [[], "x", 1, None, True])
def test_non_object_body_is_rejected(resolver: PathResolver, body: Any) -> None:
    assert _code(body, resolver) == "request_not_object"


@pytest.mark.parametrize("paths", [None, [], "/app/data", {"a": 1}])
def test_archive_paths_must_be_a_non_empty_list(resolver: PathResolver, paths: Any) -> None:
    body = {} if paths is None else {"archive_paths": paths}
    assert _code(body, resolver) == "archive_paths_invalid"


def test_more_than_64_archive_paths_are_rejected(resolver: PathResolver) -> None:
    body = {"archive_paths": ["/app/data/a"] * (C.MAX_ARCHIVE_PATHS + 1)}
    assert _code(body, resolver) == "archive_paths_too_many"


def test_exactly_64_archive_paths_are_accepted(resolver: PathResolver) -> None:
    assert _parse({"archive_paths": ["/app/data/a"] * C.MAX_ARCHIVE_PATHS}, resolver)


def test_each_archive_path_is_resolved_for_reading(resolver: PathResolver, tmp_path) -> None:
    (tmp_path / "data" / "link").symlink_to(tmp_path)
    assert _code({"archive_paths": ["/app/data/a", "/app/data/link"]}, resolver) == "path_symlink"
    assert _code({"archive_paths": ["/app/data/../x"]}, resolver) == "path_traversal"
    assert _code({"archive_paths": ["/app/data/missing"]}, resolver) == "path_not_found"


@pytest.mark.parametrize("metadata", [[1], "x", 3])
def test_metadata_must_be_an_object(resolver: PathResolver, metadata: Any) -> None:
    body = {"archive_paths": ["/app/data"], "metadata": metadata}
    assert _code(body, resolver) == "metadata_not_object"


def test_metadata_over_16_kib_is_rejected(resolver: PathResolver) -> None:
    body = {"archive_paths": ["/app/data"], "metadata": {"k": "x" * C.MAX_METADATA_BYTES}}
    assert _code(body, resolver) == "metadata_too_large"


def test_metadata_just_under_16_kib_is_accepted(resolver: PathResolver) -> None:
    metadata = {"k": "x" * (C.MAX_METADATA_BYTES - 10)}  # '{"k":"' + '"}' = 8 bytes
    assert _parse({"archive_paths": ["/app/data"], "metadata": metadata}, resolver)


def test_online_capture_requires_local_opt_in(resolver: PathResolver) -> None:
    body = {"archive_paths": ["/app/data"], "runtime": {"provider_capture": "online"}}
    assert _code(body, resolver) == "online_capture_not_allowed"
    assert _parse(body, resolver, allow_online=True).provider_capture == "online"


@pytest.mark.parametrize("capture", ["live", None, 1])
def test_unknown_provider_capture_is_rejected(resolver: PathResolver, capture: Any) -> None:
    body = {"archive_paths": ["/app/data"], "runtime": {"provider_capture": capture}}
    assert _code(body, resolver) == "provider_capture_invalid"


def test_unknown_consumer_apply_is_rejected(resolver: PathResolver) -> None:
    body = {"archive_paths": ["/app/data"], "runtime": {"consumer_apply": "hot"}}
    assert _code(body, resolver) == "consumer_apply_invalid"


def test_runtime_must_be_an_object(resolver: PathResolver) -> None:
    assert _code({"archive_paths": ["/app/data"], "runtime": "x"}, resolver) == "runtime_not_object"


def test_request_id_must_be_a_string(resolver: PathResolver) -> None:
    assert (
        _code({"archive_paths": ["/app/data"], "request_id": 5}, resolver) == "request_id_invalid"
    )


@pytest.mark.parametrize(
    ("metadata", "reason"),
    [
        (json.loads("[" * 40 + "]" * 40), "nested deeper than 32 levels"),
        ({"id": 10**64}, "more than 64 digits"),
        ({"x": float("inf")}, "not finite"),
    ],
)
def test_metadata_a_consumer_would_refuse_is_rejected(
    resolver: PathResolver, metadata: Any, reason: str
) -> None:
    # The same bounds as a record's metadata (records.metadata_problems): a provider
    # never publishes a snapshot that every consumer refuses.
    body = {"archive_paths": ["/app/data"], "metadata": {"m": metadata}}
    with pytest.raises(RequestRejected) as info:
        _parse(body, resolver)
    assert info.value.code == "metadata_too_complex"
    assert reason in str(info.value)


def test_metadata_at_the_record_bounds_is_accepted(resolver: PathResolver) -> None:
    metadata = {"deep": json.loads("[" * 31 + "]" * 31), "id": 10**63}
    assert _parse({"archive_paths": ["/app/data"], "metadata": metadata}, resolver)
