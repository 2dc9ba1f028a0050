"""Run a command on a real pseudo-terminal of a given size and return what it printed.

``car sync history`` lays out differently on a terminal than in a pipe; CliRunner is
never a terminal, so the terminal layout is tested through a pty whose window size is
set with TIOCSWINSZ (the same ioctl a terminal emulator uses).
"""

from __future__ import annotations

import fcntl
import os
import pty
import struct
import subprocess
import termios


def run_on_pty(argv: list[str], *, columns: int, rows: int = 24, timeout: float = 60) -> str:
    """``argv``'s stdout+stderr as printed on a ``columns``-wide terminal (CRLF made LF)."""
    master, slave = pty.openpty()
    fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", rows, columns, 0, 0))
    env = {k: v for k, v in os.environ.items() if k not in ("COLUMNS", "LINES")}
    try:
        proc = subprocess.Popen(argv, stdin=slave, stdout=slave, stderr=slave, env=env)
        os.close(slave)
        chunks: list[bytes] = []
        while True:
            try:
                chunk = os.read(master, 65536)
            except OSError:  # EIO: the child closed its side
                break
            if not chunk:
                break
            chunks.append(chunk)
        proc.wait(timeout=timeout)
    finally:
        os.close(master)
    return b"".join(chunks).decode().replace("\r\n", "\n")
