"""An app swapping ``volume-sync/`` for a symlink can never redirect the runner.

README, "Safety rules".

The attacker thread exchanges the real control directory with a symlink to a directory
outside the volume in a tight loop (``renameat2(RENAME_EXCHANGE)``, as an app in the
container could), while the provider answers requests. inotify on the outside directory
sees every open, read, write, rename and unlink there, however short-lived.
"""

from __future__ import annotations

import ctypes
import errno
import json
import os
import struct
import threading
import time
from pathlib import Path

import pytest
from container_apps.errors import CarError
from container_apps.fsutil import atomic_write_json
from container_apps.sync import constants as C
from container_apps.tests.support.provider_rig import NOW, make_rig

_LIBC = ctypes.CDLL(None, use_errno=True)
_AT_FDCWD = -100
_RENAME_EXCHANGE = 2
_IN_ALL_EVENTS = 0x00000FFF  # access, modify, attrib, close, open, moves, create, delete
_IN_NONBLOCK = os.O_NONBLOCK
_DECOY = {"archive_paths": ["/app/data"], "request_id": "decoy"}


def _exchange(a: Path, b: Path) -> None:
    if _LIBC.renameat2(_AT_FDCWD, bytes(a), _AT_FDCWD, bytes(b), _RENAME_EXCHANGE) != 0:
        err = ctypes.get_errno()
        raise OSError(err, os.strerror(err))


class _Watch:
    """Every inotify event on one directory (and the entries in it)."""

    def __init__(self, directory: Path) -> None:
        self.fd = _LIBC.inotify_init1(_IN_NONBLOCK)
        assert self.fd >= 0, os.strerror(ctypes.get_errno())
        assert _LIBC.inotify_add_watch(self.fd, bytes(directory), _IN_ALL_EVENTS) >= 0

    def events(self) -> list[tuple[int, str]]:
        out: list[tuple[int, str]] = []
        while True:
            try:
                buf = os.read(self.fd, 65536)
            except BlockingIOError:
                return out
            offset = 0
            while offset < len(buf):
                _wd, mask, _cookie, size = struct.unpack_from("iIII", buf, offset)
                name = buf[offset + 16 : offset + 16 + size].rstrip(b"\0").decode()
                out.append((mask, name))
                offset += 16 + size

    def close(self) -> None:
        os.close(self.fd)


class _Swapper(threading.Thread):
    """Exchanges the control dir and a symlink to ``outside`` until stopped."""

    def __init__(self, control_dir: Path, link: Path) -> None:
        super().__init__(daemon=True)
        self.control_dir, self.link = control_dir, link
        self.stop = threading.Event()
        self.swaps = 0

    def run(self) -> None:
        while not self.stop.is_set():
            _exchange(self.control_dir, self.link)
            self.swaps += 1

    def restore(self) -> None:
        """Leave the real directory at its own name again."""
        if self.control_dir.is_symlink():
            _exchange(self.control_dir, self.link)


class _Attack:
    """The outside directory (baited with control-file names), the link and the swapper."""

    def __init__(self, control_dir: Path, tmp_path: Path) -> None:
        self.control_dir = control_dir
        self.outside = tmp_path / "outside"
        self.outside.mkdir()
        for name in (C.REQUEST_FILE, C.PROCESSING_FILE, C.RESPONSE_FILE, C.INVALID_FILE):
            (self.outside / name).write_text(json.dumps(_DECOY))  # bait for path-based ops
        (self.outside / C.LAST_APPLY_FILE).write_text("{}")
        self.before = self._outside_files()
        link = tmp_path / "volume-sync.swap"
        link.symlink_to(self.outside)
        # The app's own handle on its directory: its requests always land in the real one.
        self.app_dir = os.open(control_dir, os.O_RDONLY | os.O_DIRECTORY)
        self._watch = _Watch(self.outside)
        self.swapper = _Swapper(control_dir, link)
        self.events: list[tuple[int, str]] = []

    def _outside_files(self) -> dict[str, bytes]:
        return {p.name: p.read_bytes() for p in self.outside.iterdir()}

    def write_request(self, body: str) -> None:
        flags = os.O_WRONLY | os.O_CREAT | os.O_TRUNC
        fd = os.open(C.REQUEST_FILE, flags, 0o644, dir_fd=self.app_dir)
        os.write(fd, body.encode())
        os.close(fd)

    def running(self, started: float) -> bool:
        return time.monotonic() < started + 2.5 or self.swapper.swaps < 1000

    def __enter__(self) -> _Attack:
        self.swapper.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.swapper.stop.set()
        self.swapper.join(timeout=5)
        self.swapper.restore()
        self.events = self._watch.events()
        self._watch.close()
        os.close(self.app_dir)

    def assert_nothing_escaped(self) -> None:
        assert self.swapper.swaps >= 1000
        assert self.events == [], f"the runner touched the outside directory: {self.events[:5]}"
        assert self._outside_files() == self.before
        leftovers = [p.name for p in self.control_dir.iterdir() if p.name.endswith(".tmp")]
        assert leftovers == []


def test_swapping_the_control_dir_for_a_symlink_never_redirects_the_provider(
    tmp_path: Path,
) -> None:
    rig = make_rig(tmp_path)
    bodies = [
        json.dumps({"archive_paths": ["/app/data"], "request_id": "ok"}),
        "{broken",
        json.dumps({"archive_paths": ["/etc"]}),
    ]
    outcomes: list[str] = []
    with _Attack(rig.control_dir, tmp_path) as attack:
        started, i = time.monotonic(), 0
        while attack.running(started):
            attack.write_request(bodies[i % len(bodies)])
            outcome = rig.publisher.publish_pending(NOW + i)  # a tick never raises
            outcomes.append("none" if outcome is None else outcome.status)
            if i % 7 == 0:
                rig.publisher.recover()
            i += 1
    attack.assert_nothing_escaped()
    # Requests were answered through the race, not just skipped.
    assert "ok" in outcomes and "error" in outcomes


def test_swapping_the_control_dir_never_redirects_last_apply_json(tmp_path: Path) -> None:
    control_dir = tmp_path / "volume-sync"
    control_dir.mkdir()
    written = refused = 0
    with _Attack(control_dir, tmp_path) as attack:
        started = time.monotonic()
        while attack.running(started):
            try:  # what the consumer's ApplyReporter does, which logs a refusal
                atomic_write_json(control_dir / C.LAST_APPLY_FILE, {"cid": "b"}, mode=0o644)
                written += 1
            except CarError:
                refused += 1
    attack.assert_nothing_escaped()
    assert written > 0 and refused > 0


def test_exchange_helper_really_swaps(tmp_path: Path) -> None:
    real = tmp_path / "real"
    real.mkdir()
    link = tmp_path / "link"
    link.symlink_to(tmp_path)
    _exchange(real, link)
    assert real.is_symlink() and link.is_dir() and not link.is_symlink()
    _exchange(real, link)
    assert real.is_dir() and not real.is_symlink()
    with pytest.raises(OSError) as info:
        _exchange(tmp_path / "missing", link)
    assert info.value.errno == errno.ENOENT
