"""Test data made on the spot: deterministic bytes and files of any size.

Two kinds of file, because tests want different things from them: ``write_random`` is
cheap to write (blob-store tests move tens of MiB through every backend) and compresses
well; ``write_incompressible`` costs a random generator per byte but gives compression
nothing to gain, as chunked-snapshot memory tests need.
"""

from __future__ import annotations

import hashlib
import random
from pathlib import Path

MiB = 1024 * 1024


def random_bytes(size: int, seed: int = 1) -> bytes:
    """Deterministic incompressible bytes (so tests do not depend on os.urandom)."""
    return random.Random(seed).randbytes(size)


def text_bytes(size: int, seed: int = 2) -> bytes:
    """Deterministic compressible text."""
    rng = random.Random(seed)
    words = [b"alpha", b"beta", b"gamma", b"delta", b"epsilon", b"zeta", b"eta", b"theta"]
    line = b" ".join(rng.choice(words) for _ in range(16)) + b"\n"
    return (line * (size // len(line) + 1))[:size]


def write_random(path: Path, size: int, seed: bytes = b"") -> Path:
    """A file of ``size`` bytes, written in 1 MiB blocks (no big buffers).

    Another ``seed`` gives other bytes, and each 1 MiB block differs from the others (an
    S3 multipart mix-up would show), but a block repeats one digest: it compresses well.
    """
    block = hashlib.sha256(seed + b"block").digest() * (MiB // 32)
    with open(path, "wb") as out:
        left, n = size, 0
        while left > 0:
            # Vary each block so multipart parts differ (a part mix-up would show).
            chunk = n.to_bytes(8, "big") + block[8 : min(left, MiB)]
            out.write(chunk[: min(left, MiB)])
            left -= min(left, MiB)
            n += 1
    return path


def write_incompressible(path: Path, size: int, seed: int = 3) -> Path:
    """A big random file written in 1 MiB blocks (no big buffer in the test itself)."""
    rng = random.Random(seed)
    with open(path, "wb") as out:
        left = size
        while left:
            n = min(left, MiB)
            out.write(rng.randbytes(n))
            left -= n
    return path
