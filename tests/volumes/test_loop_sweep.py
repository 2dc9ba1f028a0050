"""tests/support/fixtures_loop.py: the session-end sweep cleans leftovers under a base dir only."""

from __future__ import annotations

import pytest
from container_apps.tests.support.fixtures_loop import MakeLoopVolume, sweep_loop_leftovers
from container_apps.volumes.loopback import LoopbackVolume
from container_apps.volumes.sizes import parse_size

from .conftest import LOG


@pytest.mark.loopdev
def test_sweep_unmounts_and_detaches_only_under_base(make_loop_volume: MakeLoopVolume) -> None:
    outside = make_loop_volume("outside")
    outside.provision()
    base = outside.image_path.parent.parent / "crashed"
    leaked = LoopbackVolume(  # made without the fixture, as a crashed test would leave it
        "leak",
        image_path=base / "images" / "leak.img",
        mount_point=base / "mounts" / "leak",
        meta_path=base / "meta" / "leak.json",
        size_bytes=parse_size("8M"),
        log=LOG,
    )
    try:
        leaked.provision()
        device = leaked.device
        cleaned = sweep_loop_leftovers(base)
        assert cleaned == [f"mount {leaked.mount_point}", f"loop {device}"]
        assert not leaked.is_mounted and leaked.device is None
        assert outside.is_mounted and outside.device is not None
    finally:
        leaked.destroy()
