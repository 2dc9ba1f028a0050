"""volumes/specs.py: FIXED_SIZE_VOLUMES / FILE_VOLUMES entries (README, "Config keys")."""

from __future__ import annotations

from typing import Any

import pytest
from container_apps.validation import format_validation_error
from container_apps.volumes.specs import (
    FileVolumeSpec,
    FixedVolumeSpec,
    normalize_container_path,
    validate_volume_name,
)
from pydantic import BaseModel, ValidationError

PREFIX = "FIXED_SIZE_VOLUMES.data"


def problems(model: type[BaseModel], raw: dict[str, Any], prefix: str = PREFIX) -> list[str]:
    with pytest.raises(ValidationError) as info:
        model.model_validate(raw)
    return format_validation_error(model, info.value, prefix=prefix)


def test_fixed_spec_reads_spec_keys_and_defaults() -> None:
    spec = FixedVolumeSpec.model_validate({"SIZE": "100M", "MOUNTING_POINT": "/data/"})
    assert spec.size_bytes == 100 * 1024**2
    assert spec.mounting_point == "/data"
    assert spec.fs_type == "ext4"
    assert (spec.owner_uid, spec.owner_gid, spec.force_recreate) == (None, None, False)


def test_fixed_spec_accepts_python_names_too() -> None:
    spec = FixedVolumeSpec(size="1G", mounting_point="/x", owner_uid=1000, force_recreate=True)
    assert (spec.size_bytes, spec.owner_uid, spec.force_recreate) == (1024**3, 1000, True)


def test_fixed_spec_is_frozen() -> None:
    spec = FixedVolumeSpec(size="1G", mounting_point="/x")
    with pytest.raises(ValidationError):
        spec.size = "2G"  # type: ignore[misc]


def test_bad_size_is_reported_with_description_and_value() -> None:
    lines = problems(FixedVolumeSpec, {"SIZE": "10Q", "MOUNTING_POINT": "/d"})
    assert lines == [
        f'{PREFIX}.SIZE: must be a size string like "100M", "1G", "512K" or a byte count, '
        'at least 1M, got "10Q"'
    ]


def test_size_below_minimum_and_numeric_size_are_errors() -> None:
    assert problems(FixedVolumeSpec, {"SIZE": "512K", "MOUNTING_POINT": "/d"})[0].startswith(
        f"{PREFIX}.SIZE: must be a size string"
    )
    lines = problems(FixedVolumeSpec, {"SIZE": 1048576, "MOUNTING_POINT": "/d"})
    assert lines[0].endswith("got 1048576")


@pytest.mark.parametrize("path", ["data", "./data", "/", "//", "/a/../b", "/r1en_system/x", ""])
def test_bad_mounting_point_is_reported_with_description(path: str) -> None:
    lines = problems(FixedVolumeSpec, {"SIZE": "16M", "MOUNTING_POINT": path})
    assert len(lines) == 1
    assert lines[0].startswith(f"{PREFIX}.MOUNTING_POINT: must be an absolute container path")
    assert lines[0].endswith(f"got {path!r}".replace("'", '"'))


def test_string_false_for_force_recreate_is_an_error() -> None:
    lines = problems(
        FixedVolumeSpec, {"SIZE": "16M", "MOUNTING_POINT": "/d", "FORCE_RECREATE": "false"}
    )
    assert lines == [f'{PREFIX}.FORCE_RECREATE: must be a JSON boolean (true/false), got "false"']


def test_every_problem_is_reported_at_once() -> None:
    raw = {"SIZE": "10Q", "MOUNTING_POINT": "rel", "OWNER_UID": -1, "FS_TYPE": "xfs", "SIZ": 1}
    lines = problems(FixedVolumeSpec, raw)
    keys = [line.split(":")[0] for line in lines]
    assert keys == [
        f"{PREFIX}.SIZE",
        f"{PREFIX}.MOUNTING_POINT",
        f"{PREFIX}.FS_TYPE",
        f"{PREFIX}.OWNER_UID",
        f"{PREFIX}.SIZ",
    ]
    assert lines[-1] == f"{PREFIX}.SIZ: unknown key (did you mean SIZE?)"


def test_owner_ids_must_be_non_negative_integers() -> None:
    base = {"SIZE": "16M", "MOUNTING_POINT": "/d"}
    assert problems(FixedVolumeSpec, {**base, "OWNER_GID": "1000"}) == [
        f'{PREFIX}.OWNER_GID: must be null or an integer group id >= 0, got "1000"'
    ]
    assert FixedVolumeSpec.model_validate({**base, "OWNER_UID": 0}).owner_uid == 0


def test_file_spec_uses_lower_case_keys() -> None:
    spec = FileVolumeSpec.model_validate({"content": "x=1\n", "mounting_point": "/etc/app.conf"})
    assert (spec.content, spec.mounting_point) == ("x=1\n", "/etc/app.conf")


def test_file_spec_rejects_relative_path_and_missing_content() -> None:
    lines = problems(FileVolumeSpec, {"mounting_point": "app.conf"}, prefix="FILE_VOLUMES.cfg")
    assert lines[0] == "FILE_VOLUMES.cfg.content: required"
    assert lines[1].startswith("FILE_VOLUMES.cfg.mounting_point: must be an absolute")


@pytest.mark.parametrize(("raw", "norm"), [("/a/./b//c/", "/a/b/c"), ("//x", "/x")])
def test_normalize_container_path_normalises(raw: str, norm: str) -> None:
    assert normalize_container_path(raw) == norm


@pytest.mark.parametrize("name", ["data", "app-data_1.v2", "X"])
def test_validate_volume_name_accepts_safe_names(name: str) -> None:
    assert validate_volume_name(name) == name


@pytest.mark.parametrize("name", ["", "../x", "a/b", ".hidden", "-x", "a" * 65, "r1en_system"])
def test_validate_volume_name_rejects_unsafe_or_reserved_names(name: str) -> None:
    with pytest.raises(ValueError) as info:
        validate_volume_name(name)
    assert repr(name) in str(info.value)
