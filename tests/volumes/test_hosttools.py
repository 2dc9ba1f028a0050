"""volumes/hosttools.py: tool failures become VolumeErrors; kernel state is parsed right."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest
from container_apps.errors import VolumeError
from container_apps.volumes import hosttools

MOUNTINFO = (
    "22 1 8:1 / / rw,relatime shared:1 - ext4 /dev/sda1 rw\n"
    "43 27 7:0 / /tmp/m\\040p rw,nosuid,nodev,relatime - ext4 /dev/loop0 rw\n"
    "44 27 7:1 / /srv/x rw shared:5 master:2 - ext4 /dev/loop1 rw\n"
    "garbage line\n"
)


def test_parse_mountinfo_unescapes_paths_and_skips_optional_fields() -> None:
    mounts = hosttools.parse_mountinfo(MOUNTINFO)
    assert [(m.source, m.target, m.fs_type) for m in mounts] == [
        ("/dev/sda1", Path("/"), "ext4"),
        ("/dev/loop0", Path("/tmp/m p"), "ext4"),
        ("/dev/loop1", Path("/srv/x"), "ext4"),
    ]


def test_parse_losetup_json_strips_deleted_marker_and_handles_empty_output() -> None:
    text = (
        '{"loopdevices": [{"name": "/dev/loop0", "back-file": "/a b.img (deleted)"},'
        ' {"name": "/dev/loop1", "back-file": null}]}'
    )
    devices = hosttools.parse_losetup_json(text)
    assert [(d.name, d.back_file) for d in devices] == [
        ("/dev/loop0", Path("/a b.img")),
        ("/dev/loop1", None),
    ]
    assert hosttools.parse_losetup_json("") == []


def test_run_failure_names_tool_exit_code_and_stderr(tmp_path: Path) -> None:
    script = (
        "import sys; print('noise'); sys.stderr.write('line1\\nbad thing happened\\n'); exit(3)"
    )
    with pytest.raises(VolumeError) as info:
        hosttools.run(
            [sys.executable, "-c", script], image=tmp_path / "x.img", device="/dev/loop9", hint="h"
        )
    err = info.value
    assert f"{sys.executable} -c failed (exit 3): line1 | bad thing happened" == err.message
    assert (err.image, err.device, err.hint) == (str(tmp_path / "x.img"), "/dev/loop9", "h")


def test_run_accepts_listed_exit_codes() -> None:
    result = hosttools.run([sys.executable, "-c", "exit(2)"], ok_codes=(0, 2))
    assert result.returncode == 2


def test_run_missing_tool_is_a_volume_error_with_install_hint() -> None:
    with pytest.raises(VolumeError) as info:
        hosttools.run(["no-such-tool-car-test", "x"])
    assert info.value.message == "no-such-tool-car-test not found"
    assert "e2fsprogs" in (info.value.hint or "")


def test_summarize_keeps_last_lines_and_truncates() -> None:
    assert hosttools.summarize("") == "no output"
    long = "x" * 1000
    summary = hosttools.summarize(f"a\nb\nc\n{long}")
    assert summary.startswith("...") and len(summary) == 303
