"""The loop->loop baselines on real ext4 loop volumes."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
from container_apps.bench.baselines import cp_loop_to_loop, untar_into
from container_apps.bench.common import generate, tar_zstd, tree_bytes
from container_apps.tests.support.fixtures_loop import MakeLoopVolume
from container_apps.tests.support.parts import unavailable

pytestmark = [pytest.mark.loopdev]


def test_copy_and_untar_take_turns_on_a_volume_that_holds_one_copy(
    tmp_path: Path, make_loop_volume: MakeLoopVolume
) -> None:
    if shutil.which("zstd") is None:
        unavailable("zstd", "apt-get install -y zstd")
    data = tmp_path / "data"
    generate(data, 24, 24)
    archive = tmp_path / "data.tar.zst"
    tar_zstd(data, archive)
    volume = make_loop_volume("dest", "40M")
    volume.provision()
    dest = volume.mount_point
    for _ in range(2):  # each one empties what the other left
        assert cp_loop_to_loop(data, dest) > 0
        assert tree_bytes(dest / "copy") == tree_bytes(data)
        assert untar_into(archive, dest) > 0
        assert tree_bytes(dest / "untar" / "data") == tree_bytes(data)
        assert not (dest / "copy").exists()
