"""Preflight: record validation collecting every reason, digest checks, per-member rules."""

from __future__ import annotations

import json
import logging
import tarfile
from pathlib import Path

import pytest
from container_apps.errors import SnapshotInvalid
from container_apps.sync.config import SyncConfig
from container_apps.sync.journal import KIND_DIR, KIND_FILE, KIND_PARENT
from container_apps.sync.paths import PathResolver
from container_apps.sync.preflight import (
    ConsumerLimits,
    DigestMismatch,
    MemberValidator,
    validate_record,
    verify_archive,
)
from container_apps.sync.records import parse_record
from container_apps.tests.support.consumer_rig import MOUNT, build_snapshot, f, make_record
from container_apps.volumes.binding import VolumeBinding

LOG = logging.getLogger("test.preflight")


@pytest.fixture
def resolver(tmp_path: Path) -> PathResolver:
    (tmp_path / "vol").mkdir()
    return PathResolver([VolumeBinding("data", "legacy", tmp_path / "vol", MOUNT)])


@pytest.fixture
def archive(tmp_path: Path) -> Path:
    return build_snapshot(tmp_path / "a.tar.zst", [f("app/data/x", b"1")])


def test_validate_record_collects_every_reason_at_once(
    archive: Path, resolver: PathResolver
) -> None:
    record = make_record(
        archive,
        node_id="stranger",
        manifest_extra={
            "schema_version": 2,
            "archive_format": "tar.xz",
            "encryption": "rot13",
            "archive_paths": ["/srv/elsewhere"],
            "archive_size_bytes": 10**12,
            "unpacked_bytes": 10**13,
            "members": 10**7,
        },
    )
    limits = ConsumerLimits(
        max_archive_bytes=10**9,
        max_unpacked_bytes=4 * 10**9,
        max_members=10**6,
        trusted_node_ids=("p1",),
    )
    with pytest.raises(SnapshotInvalid) as info:
        validate_record(record, limits, resolver)
    joined = " | ".join(info.value.reasons)
    assert len(info.value.reasons) == 8, joined
    for word in (
        "schema_version",
        "archive_format",
        "encryption",
        "archive_paths",
        "MAX_ARCHIVE_BYTES",
        "MAX_UNPACKED_BYTES",
        "MAX_MEMBERS",
        "TRUSTED_NODE_IDS",
    ):
        assert word in joined
    assert str(resolver.resolve(MOUNT).host_path) not in joined  # container paths only


def test_validate_record_accepts_a_good_record(archive: Path, resolver: PathResolver) -> None:
    validate_record(
        make_record(archive), ConsumerLimits(trusted_node_ids=("provider-1",)), resolver
    )


def test_foreign_cid_without_archive_sha256_is_refused(
    archive: Path, resolver: PathResolver
) -> None:
    record = make_record(archive, with_sha=False, record_extra={"cid": "QmForeignId"})
    with pytest.raises(SnapshotInvalid, match="archive_sha256"):
        validate_record(record, ConsumerLimits(), resolver)


def test_limits_come_from_the_sync_config() -> None:
    cfg = SyncConfig.parse({"MAX_ARCHIVE_BYTES": 100, "MAX_MEMBERS": 7, "TRUSTED_NODE_IDS": ["a"]})
    limits = ConsumerLimits.from_config(cfg)
    assert (limits.max_archive_bytes, limits.max_unpacked_bytes, limits.max_members) == (
        100,
        400,
        7,
    )
    assert limits.trusted_node_ids == ("a",)


def test_verify_archive_refuses_size_mismatch(archive: Path) -> None:
    record = make_record(archive, manifest_extra={"archive_size_bytes": 1})
    with pytest.raises(DigestMismatch, match="bytes"):
        verify_archive(archive, record)


def test_verify_archive_refuses_sha_mismatch(archive: Path) -> None:
    record = make_record(archive, manifest_extra={"archive_sha256": "a" * 64})
    with pytest.raises(DigestMismatch, match="sha256"):
        verify_archive(archive, record)


def test_verify_archive_without_sha_uses_the_cid(archive: Path, tmp_path: Path) -> None:
    record = make_record(archive, with_sha=False)
    verify_archive(archive, record)
    other = build_snapshot(tmp_path / "b.tar.zst", [f("app/data/x", b"2")])
    other_record = make_record(
        other,
        with_sha=False,
        record_extra={"cid": record.cid},
        manifest_extra={"archive_size_bytes": other.stat().st_size},
    )
    with pytest.raises(DigestMismatch):
        verify_archive(other, other_record)


@pytest.fixture
def no_rehash(mocker):
    """Fail the test if preflight reads the archive to hash it."""
    return mocker.patch(
        "container_apps.sync.preflight.sha256_file", side_effect=AssertionError("re-hashed")
    )


@pytest.mark.parametrize("with_sha", [True, False])
def test_verify_archive_does_not_rehash_a_copy_the_store_verified_by_cid(
    archive: Path, no_rehash, with_sha: bool
) -> None:
    verify_archive(archive, make_record(archive, with_sha=with_sha), verified_by_store=True)
    no_rehash.assert_not_called()


def test_verify_archive_refuses_a_manifest_digest_differing_from_the_cid_without_rehash(
    archive: Path, no_rehash
) -> None:
    record = make_record(archive, manifest_extra={"archive_sha256": "a" * 64})
    with pytest.raises(DigestMismatch, match="sha256"):
        verify_archive(archive, record, verified_by_store=True)


def test_verify_archive_checks_the_size_of_a_store_verified_copy(archive: Path) -> None:
    record = make_record(archive, manifest_extra={"archive_size_bytes": 1})
    with pytest.raises(DigestMismatch, match="bytes"):
        verify_archive(archive, record, verified_by_store=True)


def test_verify_archive_rehashes_a_foreign_id_even_after_the_store(
    archive: Path, tmp_path: Path
) -> None:
    other = build_snapshot(tmp_path / "b.tar.zst", [f("app/data/x", b"2")])
    record = make_record(
        archive,
        record_extra={"cid": "foreign-id"},
        manifest_extra={"archive_size_bytes": other.stat().st_size},
    )
    with pytest.raises(DigestMismatch, match="sha256"):
        verify_archive(other, record, verified_by_store=True)


# --- members -------------------------------------------------------------------------


def _member(name: str, kind: bytes = tarfile.REGTYPE, size: int = 0) -> tarfile.TarInfo:
    info = tarfile.TarInfo(name)
    info.type = kind
    info.size = size
    return info


def _validator(resolver: PathResolver, **limits: int) -> MemberValidator:
    return MemberValidator((MOUNT + "/",), resolver, ConsumerLimits(**limits), LOG)


def test_member_with_parent_traversal_is_refused(resolver: PathResolver) -> None:
    with pytest.raises(SnapshotInvalid, match=r"'\.\.'"):
        _validator(resolver).check(0, _member("app/data/../../etc/passwd"))


def test_member_outside_manifest_archive_paths_is_refused(tmp_path: Path) -> None:
    (tmp_path / "v2").mkdir()
    resolver = PathResolver(
        [
            VolumeBinding("data", "legacy", tmp_path / "v", MOUNT),
            VolumeBinding("other", "legacy", tmp_path / "v2", "/app/other"),
        ]
    )
    with pytest.raises(SnapshotInvalid, match="outside the manifest"):
        _validator(resolver).check(0, _member("app/other/x"))


def test_member_that_maps_to_no_volume_is_refused(tmp_path: Path) -> None:
    resolver = PathResolver([VolumeBinding("data", "legacy", tmp_path, MOUNT)])
    validator = MemberValidator(("/",), resolver, ConsumerLimits(), LOG)
    with pytest.raises(SnapshotInvalid, match="not inside any mounted volume"):
        validator.check(0, _member("etc/passwd"))


@pytest.mark.parametrize(
    ("kind", "label"),
    [
        (tarfile.SYMTYPE, "symlink"),
        (tarfile.LNKTYPE, "hardlink"),
        (tarfile.FIFOTYPE, "fifo"),
        (tarfile.CHRTYPE, "device"),
    ],
)
def test_link_and_special_members_are_skipped_with_a_log_line(
    resolver: PathResolver, caplog: pytest.LogCaptureFixture, kind: bytes, label: str
) -> None:
    validator = _validator(resolver)
    with caplog.at_level(logging.INFO):
        assert validator.check(0, _member("app/data/l", kind)) == []
    assert validator.skipped == 1
    assert any(label in r.getMessage() and "skipped" in r.getMessage() for r in caplog.records)


def test_members_past_max_members_are_refused(resolver: PathResolver) -> None:
    validator = _validator(resolver, max_members=2)
    validator.check(0, _member("app/data/a"))
    validator.check(1, _member("app/data/b"))
    with pytest.raises(SnapshotInvalid, match="MAX_MEMBERS"):
        validator.check(2, _member("app/data/c"))


def test_first_header_past_max_unpacked_bytes_is_refused(resolver: PathResolver) -> None:
    validator = _validator(resolver, max_unpacked_bytes=100)
    with pytest.raises(SnapshotInvalid, match="MAX_UNPACKED_BYTES"):
        validator.check(0, _member("app/data/bomb", size=10**12))


def test_implicit_parent_dirs_are_planned_once(resolver: PathResolver) -> None:
    validator = _validator(resolver)
    first = validator.check(0, _member("app/data/a/b/x"))
    second = validator.check(1, _member("app/data/a/b/y"))
    assert [(o.kind, o.container_path) for o in first] == [
        (KIND_PARENT, "/app/data/a"),
        (KIND_PARENT, "/app/data/a/b"),
        (KIND_FILE, "/app/data/a/b/x"),
    ]
    assert [o.kind for o in second] == [KIND_FILE]


def test_dir_member_with_leading_dot_slash_is_normalised(resolver: PathResolver) -> None:
    ops = _validator(resolver).check(0, _member("./app/data/dir", tarfile.DIRTYPE))
    assert [(o.kind, o.container_path) for o in ops] == [(KIND_DIR, "/app/data/dir")]


def test_member_using_the_runner_reserved_name_is_refused(resolver: PathResolver) -> None:
    with pytest.raises(SnapshotInvalid, match="reserved"):
        _validator(resolver).check(0, _member("app/data/.car-sync-abc/x"))


def test_file_member_at_a_volume_root_is_refused(resolver: PathResolver) -> None:
    with pytest.raises(SnapshotInvalid, match="volume root"):
        _validator(resolver).check(0, _member("app/data"))


# --- member fields that reach a syscall (issue 9, item 12) ------------------------------

NAN = float("nan")
INF = float("inf")


@pytest.mark.parametrize(
    ("field", "value", "kind"),
    [
        ("mtime", NAN, tarfile.REGTYPE),
        ("mtime", INF, tarfile.REGTYPE),
        ("mtime", -INF, tarfile.DIRTYPE),
        ("mtime", 1e300, tarfile.REGTYPE),
        ("mtime", -1e300, tarfile.DIRTYPE),
        ("mtime", 2**63, tarfile.REGTYPE),
        ("mode", -1, tarfile.REGTYPE),
        ("mode", 2**40, tarfile.DIRTYPE),
        ("size", -5, tarfile.REGTYPE),
        ("uid", -1, tarfile.REGTYPE),
        ("uid", 10**20, tarfile.REGTYPE),
        ("gid", 2**32, tarfile.DIRTYPE),
        ("mtime", NAN, tarfile.SYMTYPE),  # even a member that would be skipped
    ],
)
def test_member_field_out_of_range_is_refused_naming_field_and_member(
    resolver: PathResolver, field: str, value: float, kind: bytes
) -> None:
    member = _member("app/data/x", kind)
    setattr(member, field, value)
    with pytest.raises(SnapshotInvalid) as info:
        _validator(resolver).check(0, member)
    assert info.value.stage == "extract"
    assert f"{field} " in str(info.value) and "/app/data/x" in str(info.value)


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("mtime", 0),
        ("mtime", -86_400),  # before 1970: legal in tar and ext4
        ("mtime", 1_764_300_000.5),
        ("mtime", 2**33),
        ("mode", 0o7777),
        ("mode", 0o100644),  # file-type bits, as Docker's Go tar writer sets them
        ("uid", 65534),
        ("gid", 2**32 - 2),
        ("size", 0),
    ],
)
def test_member_fields_in_range_are_accepted(
    resolver: PathResolver, field: str, value: float
) -> None:
    member = _member("app/data/x")
    setattr(member, field, value)
    assert [o.kind for o in _validator(resolver).check(0, member)] == [KIND_FILE]


def test_an_encrypted_record_is_refused_without_a_key_and_accepted_with_one() -> None:
    resolver = PathResolver([VolumeBinding("data", "legacy", Path("/tmp/v"), "/app/data")])
    record = parse_record(
        json.dumps(
            {
                "cid": "bafkreihdwdcefgh4dqkjv67uzcmw7ojee6xedzdetojuzjevtenxquvyku",
                "version": 1,
                "timestamp": 1.0,
                "node_id": "n",
                "manifest": {
                    "schema_version": 1,
                    "archive_paths": ["/app/data"],
                    "archive_format": "chunked",
                    "archive_size_bytes": 10,
                    "encryption": "aes256gcm-stream-v1",
                },
            }
        )
    )
    with pytest.raises(SnapshotInvalid, match=r"no SYNC\.ENCRYPTION_KEY_FILE") as info:
        validate_record(record, ConsumerLimits(), resolver)
    assert info.value.stage == "validation"
    validate_record(record, ConsumerLimits(), resolver, can_decrypt=True)
