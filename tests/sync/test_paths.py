"""Container path -> host path rules, in order, first failure wins.

docs/FORMAT.md, "Archive paths".
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from container_apps.errors import RequestRejected
from container_apps.sync.paths import PathResolver, ResolvedPath
from container_apps.volumes.binding import VolumeBinding


@pytest.fixture
def roots(tmp_path: Path) -> dict[str, Path]:
    out = {}
    for name in ("data", "sub", "legacy", "files", "system"):
        out[name] = tmp_path / "host" / name
        out[name].mkdir(parents=True)
    return out


@pytest.fixture
def resolver(roots: dict[str, Path]) -> PathResolver:
    return PathResolver(
        [
            VolumeBinding("data", "fixed", roots["data"], "/app/data"),
            VolumeBinding("sub", "fixed", roots["sub"], "/app/data/sub"),
            VolumeBinding("legacy", "legacy", roots["legacy"], "/legacy"),
            VolumeBinding("files", "file", roots["files"], "/app/conf"),
            VolumeBinding("r1en_system", "system", roots["system"], "/r1en_system"),
        ]
    )


def _code(resolver: PathResolver, path: object, *, read: bool = False) -> str:
    with pytest.raises(RequestRejected) as info:
        (resolver.resolve_for_read if read else resolver.resolve)(path)
    return info.value.code


@pytest.mark.parametrize("bad", [None, 5, "", ["/app/data"], b"/app/data"])
def test_resolve_rejects_non_string_or_empty_path(resolver: PathResolver, bad: object) -> None:
    assert _code(resolver, bad) == "path_not_string"


def test_resolve_rejects_nul_character(resolver: PathResolver) -> None:
    assert _code(resolver, "/app/data/a\x00b") == "path_not_string"


@pytest.mark.parametrize(
    "bad", ["/app/data/../data", "/app/data/..", "../app/data", "/app/data/x/../y"]
)
def test_resolve_rejects_parent_traversal(resolver: PathResolver, bad: str) -> None:
    assert _code(resolver, bad) == "path_traversal"


def test_resolve_rejects_traversal_before_relative_check(resolver: PathResolver) -> None:
    # rule 2 comes before rule 3: a relative path with ".." reports the traversal
    assert _code(resolver, "app/../x") == "path_traversal"


def test_dot_dot_inside_a_name_is_not_traversal(resolver: PathResolver) -> None:
    assert resolver.resolve("/app/data/a..b").container_path == "/app/data/a..b"


@pytest.mark.parametrize("bad", ["app/data", "./app/data", "data"])
def test_resolve_rejects_relative_path(resolver: PathResolver, bad: str) -> None:
    assert _code(resolver, bad) == "path_not_absolute"


@pytest.mark.parametrize("bad", ["/", "/r1en_system", "/r1en_system/volume-sync", "//r1en_system/"])
def test_resolve_rejects_system_volume_and_its_ancestors(resolver: PathResolver, bad: str) -> None:
    assert _code(resolver, bad) == "path_system_volume"


def test_system_volume_prefix_lookalike_is_not_the_system_volume(roots: dict[str, Path]) -> None:
    r = PathResolver([VolumeBinding("x", "fixed", roots["data"], "/r1en_system2")])
    assert r.resolve("/r1en_system2/a").container_path == "/r1en_system2/a"


@pytest.mark.parametrize("bad", ["/etc/passwd", "/app", "/app/dataX", "/legacyfoo"])
def test_resolve_rejects_path_outside_every_bind(resolver: PathResolver, bad: str) -> None:
    assert _code(resolver, bad) == "path_not_in_volume"


def test_longest_bind_wins(resolver: PathResolver, roots: dict[str, Path]) -> None:
    got = resolver.resolve("/app/data/sub/f.txt")
    assert got.binding.name == "sub"
    assert got.host_path == roots["sub"] / "f.txt"


def test_longest_bind_wins_regardless_of_bind_order(roots: dict[str, Path]) -> None:
    binds = [
        VolumeBinding("sub", "fixed", roots["sub"], "/app/data/sub"),
        VolumeBinding("data", "fixed", roots["data"], "/app/data"),
    ]
    assert PathResolver(binds).resolve("/app/data/sub/x").binding.name == "sub"
    assert PathResolver(binds).resolve("/app/data/subx").binding.name == "data"


def test_longest_bind_wins_even_when_it_is_not_syncable(roots: dict[str, Path]) -> None:
    binds = [
        VolumeBinding("data", "fixed", roots["data"], "/app/data"),
        VolumeBinding("cfg", "file", roots["files"], "/app/data/cfg"),
    ]
    assert _code(PathResolver(binds), "/app/data/cfg/x") == "path_volume_not_syncable"


def test_resolve_normalises_trailing_slash_and_dots(resolver: PathResolver, roots: dict) -> None:
    got = resolver.resolve("/app//data/./x/")
    assert got == ResolvedPath("/app/data/x", roots["data"] / "x", got.binding)
    assert resolver.resolve("/app/data/").host_path == roots["data"]


@pytest.mark.parametrize("bad", ["/app/conf/settings.yml", "/app/conf"])
def test_resolve_rejects_file_volume(resolver: PathResolver, bad: str) -> None:
    assert _code(resolver, bad) == "path_volume_not_syncable"


def test_resolve_accepts_fixed_and_legacy_volumes(resolver: PathResolver, roots: dict) -> None:
    assert resolver.resolve("/legacy/a/b").host_path == roots["legacy"] / "a" / "b"
    assert resolver.resolve("/app/data/a").binding.kind == "fixed"


def test_allowed_root_check_is_anchored_not_substring(tmp_path: Path) -> None:
    allowed = tmp_path / "container_volumes" / "inst1_data"
    lookalike = tmp_path / "container_volumes" / "inst1_data_evil"
    r = PathResolver(
        [
            VolumeBinding("good", "legacy", allowed, "/good"),
            VolumeBinding("evil", "legacy", lookalike, "/evil"),
        ],
        allowed_roots=[allowed],
    )
    assert r.resolve("/good/x").binding.name == "good"
    assert _code(r, "/evil/x") == "path_volume_not_syncable"


def test_joined_host_path_must_stay_inside_root(roots: dict[str, Path]) -> None:
    # A bind at "/" makes every path contained; the host join still has to stay inside.
    r = PathResolver([VolumeBinding("all", "fixed", roots["data"], "/")])
    assert r.resolve("/x/y").host_path == roots["data"] / "x" / "y"


def test_error_messages_never_name_host_paths(resolver: PathResolver, roots: dict) -> None:
    os.symlink("/etc", roots["data"] / "link")
    cases = ["/etc", "/app/conf/x", "/app/data/link/passwd", "/app/data/missing"]
    for path in cases:
        with pytest.raises(RequestRejected) as info:
            resolver.resolve_for_read(path)
        assert str(roots["data"].parent) not in str(info.value)
        assert path in str(info.value) or info.value.code == "path_symlink"


# --- rule 8 -----------------------------------------------------------------------


def test_read_rejects_symlink_component_without_following(resolver: PathResolver, roots) -> None:
    secret = roots["data"].parent / "secret.txt"
    secret.write_text("TOP-SECRET")
    (roots["data"] / "dir").mkdir()
    os.symlink(secret, roots["data"] / "dir" / "leak")
    with pytest.raises(RequestRejected) as info:
        resolver.resolve_for_read("/app/data/dir/leak")
    assert info.value.code == "path_symlink"
    assert "/app/data/dir/leak" in str(info.value)
    assert "secret" not in str(info.value) and "TOP-SECRET" not in str(info.value)


def test_read_rejects_symlinked_directory_in_the_middle(resolver: PathResolver, roots) -> None:
    (roots["data"] / "real").mkdir()
    (roots["data"] / "real" / "f").write_text("x")
    os.symlink("real", roots["data"] / "alias")  # points inside the volume, still refused
    assert _code(resolver, "/app/data/alias/f", read=True) == "path_symlink"


def test_read_rejects_missing_path(resolver: PathResolver) -> None:
    assert _code(resolver, "/app/data/nope", read=True) == "path_not_found"


def test_read_accepts_real_files_and_dirs(resolver: PathResolver, roots: dict) -> None:
    (roots["data"] / "d").mkdir()
    (roots["data"] / "d" / "f").write_text("x")
    assert resolver.resolve_for_read("/app/data/d/f").host_path == roots["data"] / "d" / "f"
    assert resolver.resolve_for_read("/app/data").host_path == roots["data"]


def test_read_runs_rules_1_to_7_first(resolver: PathResolver) -> None:
    assert _code(resolver, "/app/../x", read=True) == "path_traversal"


def test_write_target_inside_root_passes(resolver: PathResolver, roots: dict) -> None:
    (roots["data"] / "d").mkdir()
    resolver.check_write_target(resolver.resolve("/app/data/d/new-file"))
    resolver.check_write_target(resolver.resolve("/app/data"))


def test_write_target_whose_parent_links_outside_is_rejected(resolver, roots, tmp_path) -> None:
    outside = tmp_path / "outside"
    outside.mkdir()
    os.symlink(outside, roots["data"] / "d")
    with pytest.raises(RequestRejected) as info:
        resolver.check_write_target(resolver.resolve("/app/data/d/f"))
    assert info.value.code == "path_symlink"
    assert str(outside) not in str(info.value)


def test_write_target_that_is_a_link_outside_is_rejected(resolver, roots, tmp_path) -> None:
    os.symlink(tmp_path / "elsewhere", roots["data"] / "f")
    assert _rejects_write(resolver, "/app/data/f") == "path_symlink"


def test_write_target_link_created_after_resolve_is_caught(resolver, roots, tmp_path) -> None:
    resolved = resolver.resolve("/app/data/late")
    resolver.check_write_target(resolved)
    os.symlink(tmp_path, roots["data"] / "late")  # app races between checks
    with pytest.raises(RequestRejected):
        resolver.check_write_target(resolved)


def test_write_target_not_lexically_inside_root_is_rejected(resolver, roots) -> None:
    forged = ResolvedPath(
        "/app/data/x", roots["data"].parent / "x", resolver.resolve("/app/data").binding
    )
    with pytest.raises(RequestRejected) as info:
        resolver.check_write_target(forged)
    assert info.value.code == "path_outside_volume"


def _rejects_write(resolver: PathResolver, path: str) -> str:
    with pytest.raises(RequestRejected) as info:
        resolver.check_write_target(resolver.resolve(path))
    return info.value.code
