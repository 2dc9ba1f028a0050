"""Pack payloads (zstd or raw) and the PackWriter's layout, roll-over and clean-up."""

from __future__ import annotations

import hashlib
from pathlib import Path

import pytest
import zstandard
from container_apps.stores.cid import cid_for_file
from container_apps.sync.chunks import constants as K
from container_apps.sync.chunks.packs import (
    ChunkDecodeError,
    PackWriter,
    decode_chunk,
    encode_chunk,
)
from container_apps.tests.support.random_data import MiB, random_bytes, text_bytes

CCTX = zstandard.ZstdCompressor(level=K.ZSTD_LEVEL)


def test_compressible_chunk_is_stored_as_a_smaller_zstd_frame() -> None:
    raw = text_bytes(MiB)
    payload, compressed = encode_chunk(raw, CCTX)
    assert compressed and len(payload) < len(raw) // 4
    assert zstandard.frame_content_size(payload) == len(raw)
    assert decode_chunk(payload, len(raw), True) == raw


def test_incompressible_chunk_is_kept_raw_and_flagged() -> None:
    raw = random_bytes(MiB)
    payload, compressed = encode_chunk(raw, CCTX)
    assert not compressed and bytes(payload) == raw
    assert decode_chunk(payload, len(raw), False) == raw


@pytest.mark.parametrize(
    ("payload", "raw_length", "compressed", "why"),
    [
        (b"abc", 4, False, "stored chunk is 3 bytes"),
        (CCTX.compress(b"a" * 100), 99, True, "announces 100 bytes"),
        (CCTX.compress(text_bytes(1000))[:-5], 1000, True, "cannot be decoded"),
        (zstandard.ZstdCompressor(write_content_size=False).compress(b"b" * 100), 50, True, ""),
        (zstandard.ZstdCompressor(write_content_size=False).compress(b"b" * 100), 150, True, ""),
    ],
)
def test_decode_refuses_payloads_that_are_not_the_announced_chunk(
    payload: bytes, raw_length: int, compressed: bool, why: str
) -> None:
    with pytest.raises(ChunkDecodeError) as info:
        decode_chunk(payload, raw_length, compressed)
    assert why in str(info.value)


def test_pack_is_magic_then_payloads_named_by_its_cid(tmp_path: Path) -> None:
    packs = PackWriter(tmp_path / "packs")
    first = packs.append(b"one")
    second = packs.append(b"second")
    (path,) = packs.finish()
    assert path.read_bytes() == K.PACK_MAGIC + b"one" + b"second"
    assert path.name == cid_for_file(path) == first[0].cid == second[0].cid
    assert (first[1], second[1]) == (len(K.PACK_MAGIC), len(K.PACK_MAGIC) + 3)
    assert packs.stored_bytes == 9


def test_a_new_pack_starts_once_the_target_size_is_reached(tmp_path: Path) -> None:
    packs = PackWriter(tmp_path / "packs", target_bytes=100)
    slots = [packs.append(bytes([n]) * 60)[0] for n in range(5)]
    paths = packs.finish()
    assert [p.stat().st_size for p in paths] == [8 + 120, 8 + 120, 8 + 60]
    assert [s.cid for s in slots] == [paths[0].name] * 2 + [paths[1].name] * 2 + [paths[2].name]
    for path in paths:
        assert path.name == cid_for_file(path)
    assert sorted(p.name for p in (tmp_path / "packs").iterdir()) == sorted(p.name for p in paths)


def test_abort_removes_finished_and_open_packs(tmp_path: Path) -> None:
    packs = PackWriter(tmp_path / "packs", target_bytes=100)
    for n in range(3):
        packs.append(bytes([n]) * 60)
    packs.abort()
    packs.abort()
    assert list((tmp_path / "packs").iterdir()) == []


def test_identical_payloads_give_identical_packs(tmp_path: Path) -> None:
    names = []
    for run in ("a", "b"):
        packs = PackWriter(tmp_path / run)
        packs.append(b"same")
        names.append(packs.finish()[0].name)
    assert names[0] == names[1]
    assert hashlib.sha256(K.PACK_MAGIC + b"same").hexdigest() in _hex_of(names[0])


def _hex_of(cid: str) -> str:
    from container_apps.stores.cid import sha256_from_cid

    return sha256_from_cid(cid) or ""


class _SpyCompressor:
    """Records how many bytes each compress() call was given."""

    def __init__(self) -> None:
        self.seen: list[int] = []

    def compress(self, data: bytes) -> bytes:
        self.seen.append(len(data))
        return CCTX.compress(data)


def test_a_random_chunk_is_kept_raw_after_compressing_only_a_probe() -> None:
    spy = _SpyCompressor()
    raw = random_bytes(MiB)
    payload, compressed = encode_chunk(raw, spy)  # type: ignore[arg-type]
    assert (bytes(payload), compressed) == (raw, False)
    assert spy.seen == [K.PROBE_BYTES]


def test_a_compressible_chunk_is_compressed_in_full_after_its_probe() -> None:
    spy = _SpyCompressor()
    raw = text_bytes(MiB)
    _, compressed = encode_chunk(raw, spy)  # type: ignore[arg-type]
    assert compressed and spy.seen == [K.PROBE_BYTES, MiB]


def test_small_chunks_are_never_probed() -> None:
    spy = _SpyCompressor()
    raw = random_bytes(4 * K.PROBE_BYTES - 1)
    _, compressed = encode_chunk(raw, spy)  # type: ignore[arg-type]
    assert not compressed and spy.seen == [len(raw)]


def test_packs_hashed_on_an_executor_get_the_same_cids(tmp_path: Path) -> None:
    from concurrent.futures import ThreadPoolExecutor

    with ThreadPoolExecutor(2) as pool:
        packs = PackWriter(tmp_path / "pool", target_bytes=100, executor=pool)
        slots = [packs.append(bytes([n]) * 60)[0] for n in range(5)]
        paths = packs.finish()
    inline = PackWriter(tmp_path / "inline", target_bytes=100)
    for n in range(5):
        inline.append(bytes([n]) * 60)
    assert [p.name for p in paths] == [p.name for p in inline.finish()]
    assert all(s.cid is not None for s in slots)


def test_abort_while_packs_are_being_hashed_removes_them(tmp_path: Path) -> None:
    from concurrent.futures import ThreadPoolExecutor

    with ThreadPoolExecutor(1) as pool:
        packs = PackWriter(tmp_path / "packs", target_bytes=100, executor=pool)
        for n in range(4):
            packs.append(bytes([n]) * 60)
        packs.abort()
    assert list((tmp_path / "packs").iterdir()) == []
